package tasker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/template"
)

const priorityTemplates = `name: gate
namespace: test
version: 1.0.0
steps:
  - {name: hold, handler: test.gate}
---
name: ranked
namespace: test
version: 1.0.0
steps:
  - {name: first, handler: test.record}
  - {name: second, handler: test.record, depends_on: [first]}
---
name: flaky
namespace: test
version: 1.0.0
steps:
  - {name: try, handler: test.flaky, retry: {max_attempts: 2, backoff: none}}
`

// priorityEngine is an engine with one worker slot, held by a gate task
// until release is closed, whose test.record handler appends the task's
// "label" to the returned log as each step runs. Its test.flaky handler
// fails a task's first attempt, retryable after flakyRetry, once it has
// logged "label.failed" and failing is closed; it logs as test.record does
// when it succeeds.
func priorityEngine(t *testing.T, backend string, aging time.Duration) (eng *tasker.Engine, release, started, failing chan struct{}, log func() []string) {
	t.Helper()
	var tpls []*template.Template
	for i, doc := range strings.Split(priorityTemplates, "\n---\n") {
		tpl, err := template.Parse(fmt.Sprintf("prio-%d.yaml", i), []byte(doc))
		must(t, err)
		tpls = append(tpls, tpl)
	}
	cfg := database(t, backend)
	cfg.Templates, cfg.WorkerConcurrency, cfg.PriorityAging = tpls, 1, aging
	eng, err := tasker.Open(t.Context(), cfg)
	must(t, err)
	release, started, failing = make(chan struct{}), make(chan struct{}, 1), make(chan struct{})
	var (
		mu  sync.Mutex
		ran []string
	)
	must(t, eng.RegisterHandler("test.gate", tasker.HandlerFunc(func(ctx context.Context, _ *tasker.StepInput) (any, error) {
		started <- struct{}{}
		select {
		case <-release:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})))
	// record logs the step of in under its task's label; with flaky, it
	// logs the label's first attempt as failed and says it is to fail.
	failed := map[string]bool{}
	record := func(in *tasker.StepInput, flaky bool) (fail bool, err error) {
		var c struct{ Label string }
		if err := json.Unmarshal(in.Context, &c); err != nil {
			return false, err
		}
		mu.Lock()
		defer mu.Unlock()
		if flaky && !failed[c.Label] {
			failed[c.Label] = true
			ran = append(ran, c.Label+".failed")
			return true, nil
		}
		ran = append(ran, c.Label+"."+in.StepName)
		return false, nil
	}
	must(t, eng.RegisterHandler("test.record", tasker.HandlerFunc(func(_ context.Context, in *tasker.StepInput) (any, error) {
		_, err := record(in, false)
		return nil, err
	})))
	must(t, eng.RegisterHandler("test.flaky", tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
		fail, err := record(in, true)
		if !fail || err != nil {
			return nil, err
		}
		select {
		case <-failing:
			return nil, tasker.RetryAfter(errors.New("the first attempt fails"), flakyRetry)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})))
	must(t, eng.Start(t.Context()))
	stopAtCleanup(t, eng)
	return eng, release, started, failing, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ran)
	}
}

// TestPriorityOrdersClaims: while the only worker slot is busy, tasks of
// several priorities wait; the slot then runs their first steps highest
// priority first. (A task's second step becomes ready only once
// orchestration has read the first one's result, by which time the slot
// may have taken the next first step: their order is not asserted.)
func TestPriorityOrdersClaims(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		eng, release, started, _, ran := priorityEngine(t, backend, time.Hour)
		gate, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "gate"})
		must(t, err)
		<-started
		var tasks []*tasker.Task
		for _, p := range []int{0, 5, -2, 3} {
			task, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "ranked",
				Context: map[string]string{"label": fmt.Sprint("p", p)}, Priority: p})
			must(t, err)
			tasks = append(tasks, task)
		}
		close(release)
		waitAll(t, eng, append(tasks, gate))
		want := []string{"p5.first", "p3.first", "p0.first", "p-2.first"}
		got := slices.DeleteFunc(ran(), func(s string) bool { return !strings.HasSuffix(s, ".first") })
		if !slices.Equal(got, want) {
			t.Fatalf("steps ran in the order %v, want %v (by priority; an hour of aging per point)", got, want)
		}
	})
}

// flakyRetry is how long test.flaky's failed attempt waits for its retry.
const flakyRetry = time.Second

// TestOlderTasksStepsAreClaimedFirst: a step's message waits from its
// task's creation (queue.SendParams.Since), so a retried step of a task
// goes before a step of a newer task of the same priority that became
// ready before the retry did: the slot finishes the task begun first.
func TestOlderTasksStepsAreClaimedFirst(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		eng, release, started, failing, ran := priorityEngine(t, backend, time.Hour)
		older, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "flaky",
			Context: map[string]string{"label": "older"}})
		must(t, err)
		// While the older task's first attempt holds the only slot, the
		// gate's step waits for it; the attempt then fails, and the gate
		// takes the slot (the retry is not due for a second).
		waitUntil(t, func() bool { return slices.Contains(ran(), "older.failed") })
		gate, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "gate"})
		must(t, err)
		waitUntil(t, func() bool { return stepQueueDepth(t, eng) == 1 })
		close(failing)
		<-started
		// The newer task's step waits, and then the older task's retry is
		// due: both wait for the slot.
		newer, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "ranked",
			Context: map[string]string{"label": "newer"}})
		must(t, err)
		waitUntil(t, func() bool { return stepQueueDepth(t, eng) == 2 })
		if got := ran(); slices.Contains(got, "newer.first") {
			t.Fatalf("steps ran in the order %v before the gate was released", got)
		}
		close(release)
		waitAll(t, eng, []*tasker.Task{gate, older, newer})
		got := ran()
		if i, j := slices.Index(got, "older.try"), slices.Index(got, "newer.first"); i < 0 || j < 0 || i > j {
			t.Fatalf("steps ran in the order %v, want older.try before newer.first (the older task's step waits from its task's creation)", got)
		}
	})
}

// stepQueueDepth is the messages waiting in the step queue of namespace
// test: visible, not claimed.
func stepQueueDepth(t *testing.T, eng *tasker.Engine) int64 {
	t.Helper()
	depths, err := eng.QueueDepths(t.Context())
	must(t, err)
	for _, d := range depths {
		if d.Queue == queue.StepQueue("test") {
			return d.Depth
		}
	}
	return 0
}

// TestPriorityAgingPreventsStarvation: with an aging step far below the
// wait, a task of priority 0 created long before tasks of priority 1 runs
// first: it has waited more than the point it lacks is worth.
func TestPriorityAgingPreventsStarvation(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		eng, release, started, _, ran := priorityEngine(t, backend, time.Millisecond)
		gate, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "gate"})
		must(t, err)
		<-started
		old, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "ranked",
			Context: map[string]string{"label": "old"}, Priority: 0})
		must(t, err)
		time.Sleep(50 * time.Millisecond) // 50 aging steps
		urgent, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "ranked",
			Context: map[string]string{"label": "urgent"}, Priority: 1})
		must(t, err)
		close(release)
		waitAll(t, eng, []*tasker.Task{gate, old, urgent})
		if got := ran(); len(got) < 1 || got[0] != "old.first" {
			t.Fatalf("steps ran in the order %v, want old.first first (it waited 50 aging steps for a 1-point gap)", got)
		}
	})
}

func waitAll(t *testing.T, eng *tasker.Engine, tasks []*tasker.Task) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, task := range tasks {
		if _, err := eng.WaitTask(ctx, task.ID); err != nil {
			t.Fatalf("wait for task %s: %v", task.ID, err)
		}
	}
}
