package tasker_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/queue"
	storepg "github.com/tasker-go/tasker/store/postgres"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

const fixable = `name: chain
namespace: test
version: 1.0.0
steps:
  - {name: first, handler: demo.add}
  - {name: middle, handler: test.gate, depends_on: [first]}
  - {name: last, handler: test.echo, depends_on: [middle]}
---
name: blocked
namespace: test
version: 1.0.0
steps:
  - {name: broken, handler: test.gate}
  - {name: slow, handler: test.hold}
  - {name: next, handler: test.echo, depends_on: [broken]}
`

// fixableHandlers: test.gate fails permanently until open is set, then
// returns {"value": 42}; test.echo returns the result of its dependency;
// test.hold runs until release is closed.
func fixableHandlers(open *atomic.Bool, release <-chan struct{}) map[string]tasker.Handler {
	return map[string]tasker.Handler{
		"test.gate": tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
			if !open.Load() {
				return nil, taskertype.Permanent(errors.New("the gate is closed"))
			}
			return demo.Value{Value: 42}, nil
		}),
		"test.echo": tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
			for _, r := range in.Results {
				return r, nil
			}
			return nil, taskertype.Permanent(errors.New("test.echo has no dependency"))
		}),
		"test.hold": tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
			select {
			case <-release:
				return "released", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}),
	}
}

// taskPath returns the states a task went through, in order.
func (h *harness) taskPath(info *tasker.TaskInfo) []string {
	h.t.Helper()
	log, err := h.eng.Transitions(h.t.Context(), info.Task.ID)
	must(h.t, err)
	var path []string
	for _, tr := range log {
		if tr.StepID.String() == "00000000-0000-0000-0000-000000000000" {
			path = append(path, tr.Event+":"+tr.To)
		}
	}
	return path
}

func TestAFixedFailedStepLetsItsTaskGoOn(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		var open atomic.Bool
		release := make(chan struct{})
		defer close(release)
		h := newHarnessOn(t, backend, fixable, fixableHandlers(&open, release))
		ctx := t.Context()

		// failed runs the chain until its middle step fails for good.
		failed := func(t *testing.T) *tasker.TaskInfo {
			t.Helper()
			open.Store(false)
			info := h.run("chain", map[string]int{"value": 1})
			if info.Task.State != "error" || h.step(info, "middle").State != "error" || h.step(info, "last").State != "pending" {
				t.Fatalf("task %s, middle %s, last %s; want the task in error at its middle step",
					info.Task.State, h.step(info, "middle").State, h.step(info, "last").State)
			}
			if p := strings.Join(h.taskPath(info), ","); !strings.Contains(p, "blocked_by_failures,give_up:error") {
				t.Fatalf("task path %s, want blocked_by_failures then error", p)
			}
			return info
		}
		// resumed waits for the task and checks that it went on from error.
		resumed := func(t *testing.T, info *tasker.TaskInfo, wantLast string) {
			t.Helper()
			info = h.wait(info.Task)
			last := h.step(info, "last")
			if info.Task.State != "complete" || last.State != "complete" || string(last.Result) != wantLast {
				t.Fatalf("task %s, last %s with result %s; want complete, last complete with %s", info.Task.State, last.State, last.Result, wantLast)
			}
			if p := h.taskPath(info); !slices.Contains(p, "resume:evaluating_results") {
				t.Errorf("task path %v, want a resume to evaluating_results", p)
			}
		}

		t.Run("resolving the failed step runs its dependent with a null result", func(t *testing.T) {
			info := failed(t)
			must(t, h.eng.ResolveStep(ctx, info.Task.ID, "middle"))
			resumed(t, info, "null")
		})

		t.Run("completing the failed step runs its dependent with the given result", func(t *testing.T) {
			info := failed(t)
			must(t, h.eng.CompleteStep(ctx, info.Task.ID, "middle", json.RawMessage(`{"value":7}`)))
			resumed(t, info, `{"value":7}`)
		})

		t.Run("resetting the failed step runs it again, then its dependent", func(t *testing.T) {
			info := failed(t)
			open.Store(true)
			must(t, h.eng.ResetStep(ctx, info.Task.ID, "middle"))
			resumed(t, info, `{"value":42}`)
			info = h.wait(info.Task)
			if m := h.step(info, "middle"); m.Attempts != 1 || string(m.Result) != `{"value":42}` {
				t.Errorf("middle: %d attempts, result %s; want one attempt after the reset, with its result", m.Attempts, m.Result)
			}
		})

		t.Run("a blocked task whose failed step is resolved resumes while its other branch runs", func(t *testing.T) {
			open.Store(false)
			sub, err := h.eng.Subscribe(tasker.EventFilter{Kinds: []string{tasker.EventTaskTransition}, To: []string{"blocked_by_failures"}}, 16)
			must(t, err)
			defer sub.Close()
			task, err := h.eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "blocked"})
			must(t, err)
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			for blocked := false; !blocked; {
				select {
				case e := <-sub.C():
					blocked = e.TaskID == task.ID
				case <-wctx.Done():
					t.Fatal("the task never got blocked by its failed step")
				}
			}
			must(t, h.eng.ResolveStep(ctx, task.ID, "broken"))
			info, err := h.eng.Task(ctx, task.ID)
			must(t, err)
			if info.Task.State == "error" || info.Task.State == "blocked_by_failures" {
				t.Fatalf("task %s after its failed step was resolved, want it going on", info.Task.State)
			}
			release <- struct{}{}
			info = h.wait(task)
			if info.Task.State != "complete" || h.step(info, "next").State != "complete" {
				t.Fatalf("task %s, next %s; want both complete", info.Task.State, h.step(info, "next").State)
			}
			if p := strings.Join(h.taskPath(info), ","); !strings.Contains(p, "permanent_failure:blocked_by_failures,resume:evaluating_results") {
				t.Errorf("task path %s, want blocked_by_failures, then resume", p)
			}
		})

		t.Run("a task in error with another failed step stays in error", func(t *testing.T) {
			info := failed(t)
			must(t, h.eng.ResolveStep(ctx, info.Task.ID, "last"))
			info, err := h.eng.Task(ctx, info.Task.ID)
			must(t, err)
			if info.Task.State != "error" {
				t.Fatalf("task %s, want error: its middle step is still failed", info.Task.State)
			}
		})

		t.Run("an action the step's state refuses is an invalid-input error naming the state", func(t *testing.T) {
			info := failed(t)
			err := h.eng.ResetStep(ctx, info.Task.ID, "first")
			if !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), "complete") {
				t.Errorf("resetting a complete step: %v, want ErrInvalid naming its state", err)
			}
		})

		t.Run("the steps of a task resolved by hand no longer change", func(t *testing.T) {
			info := failed(t)
			must(t, h.eng.ResolveTask(ctx, info.Task.ID))
			err := h.eng.ResetStep(ctx, info.Task.ID, "middle")
			if !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), "resolved_manually") {
				t.Errorf("resetting the failed step of a resolved task: %v, want ErrInvalid naming the task's state", err)
			}
			info, err = h.eng.Task(ctx, info.Task.ID)
			must(t, err)
			if m := h.step(info, "middle"); m.State != "error" {
				t.Errorf("middle %s, want error: the record of what failed", m.State)
			}
		})
	})
}

const racing = `name: racing
namespace: test
version: 1.0.0
steps:
  - name: a
    handler: demo.flaky
    retry: {max_attempts: 3, backoff: none}
  - {name: b, handler: demo.sleep, depends_on: [a]}
  - name: c
    handler: demo.flaky
    retry: {max_attempts: 3, backoff: none}
`

// TestOperatorActionsRacingWorkersFailOnlyForAReason races operators
// against the workers running the same tasks on PostgreSQL: an action may
// be refused because of the state the task or step is in (ErrInvalid, naming
// it), never because a worker moved a row in the meantime.
func TestOperatorActionsRacingWorkersFailOnlyForAReason(t *testing.T) {
	if os.Getenv(pgtest.EnvURL) == "" {
		t.Skipf("set %s to race operators against workers on PostgreSQL", pgtest.EnvURL)
	}
	// Orchestration in one engine, the workers in another, as in a
	// cluster: the workers then record outcomes without orchestration's
	// lock on the task.
	_, url := pgtest.Schema(t)
	tpl, err := template.Parse("racing.yaml", []byte(racing))
	must(t, err)
	var engines []*tasker.Engine
	for _, workers := range []bool{false, true} {
		eng, err := tasker.Open(t.Context(), tasker.Config{DatabaseURL: url, AutoMigrate: true, Templates: []*template.Template{tpl},
			DisableWorkers: !workers, DisableOrchestration: workers, WorkerNamespaces: []string{"test"},
			DefaultIdentityStrategy: tasker.IdentityAlwaysUnique}) // the same task many times
		must(t, err)
		for name, h := range demo.Handlers() {
			must(t, eng.RegisterHandler(name, h))
		}
		must(t, eng.Start(t.Context()))
		stopAtCleanup(t, eng)
		engines = append(engines, eng)
	}
	h := &harness{t: t, eng: engines[0]}
	ctx := t.Context()
	const (
		ops      = 1000
		parallel = 4
	)
	var (
		done, refused atomic.Int64
		mu            sync.Mutex
		spurious      []error // the first few
		tasks         []*tasker.Task
	)
	steps := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for g := range parallel {
		wg.Go(func() {
			var mine []*tasker.Task
			for i := 0; done.Add(1) <= ops; i++ {
				if i%3 == 0 {
					task, err := h.eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "racing",
						Context: map[string]int{"fail_times": 1, "sleep_ms": 2}})
					if err != nil {
						t.Error(err)
						return
					}
					mine = append(mine, task)
				}
				task := mine[(i*7+g)%len(mine)]
				step := steps[(i+g)%len(steps)]
				var err error
				switch (i / 3) % 3 {
				case 0:
					err = h.eng.ResolveStep(ctx, task.ID, step)
				case 1:
					err = h.eng.ResetStep(ctx, task.ID, step)
				default:
					if i%9 == 8 {
						err = h.eng.CancelTask(ctx, task.ID)
					} else {
						err = h.eng.ResolveStep(ctx, task.ID, step)
					}
				}
				switch {
				case err == nil:
				case errors.Is(err, taskertype.ErrInvalid) && namesAState(err):
					refused.Add(1)
				default:
					mu.Lock()
					if len(spurious) < 10 {
						spurious = append(spurious, err)
					}
					mu.Unlock()
				}
			}
			mu.Lock()
			tasks = append(tasks, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, err := range spurious {
		t.Errorf("spurious operator error: %v", err)
	}
	t.Logf("%d operations on %d tasks, %d refused for the state they found", ops, len(tasks), refused.Load())
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, task := range tasks {
		if _, err := h.eng.WaitTask(wctx, task.ID); err != nil {
			t.Fatalf("task %s did not finish: %v", task.ID, err)
		}
	}
}

// TestAnUnprocessableResultIsSetAsideAndListed: a result message that can
// never be processed is a dead letter, counted in Stats and listed by
// DeadLetters, on both backends.
func TestAnUnprocessableResultIsSetAsideAndListed(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		ctx := t.Context()
		var (
			cfg tasker.Config
			q   queue.Queue
		)
		if backend == "postgres" {
			_, url := pgtest.Schema(t)
			s, err := storepg.Open(ctx, storepg.Config{URL: url, AutoMigrate: true})
			must(t, err)
			t.Cleanup(func() { s.Close() })
			cfg, q = tasker.Config{Store: s, Queue: s.Queue()}, s.Queue()
		} else {
			s, err := storesqlite.Open(ctx, storesqlite.Config{Path: filepath.Join(t.TempDir(), "t.db")})
			must(t, err)
			t.Cleanup(func() { s.Close() })
			cfg, q = tasker.Config{Store: s, Queue: s.Queue()}, s.Queue()
		}
		cfg.DisableWorkers = true
		eng, err := tasker.Open(ctx, cfg)
		must(t, err)
		must(t, eng.Start(ctx))
		stopAtCleanup(t, eng)
		id, err := q.MessageSend(ctx, &queue.SendParams{Queue: queue.ResultsQueue, Body: []byte("not a result")})
		must(t, err)
		deadline := time.Now().Add(20 * time.Second)
		for eng.Stats().DeadLettered == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the unprocessable message was never set aside")
			}
			time.Sleep(5 * time.Millisecond)
		}
		ds, err := eng.DeadLetters(ctx, tasker.DeadLetterListParams{Queue: queue.ResultsQueue})
		must(t, err)
		if len(ds) != 1 || ds[0].MessageID != id || ds[0].ReadCount != 1 || string(ds[0].Body) != "not a result" ||
			!strings.Contains(ds[0].Reason, "cannot be processed") {
			t.Fatalf("dead letters %+v, want the message, set aside at its first delivery with the reason", ds)
		}
	})
}

// namesAState reports whether err names a task or step state.
func namesAState(err error) bool {
	for _, s := range taskertype.TaskStates {
		if strings.Contains(err.Error(), string(s)) {
			return true
		}
	}
	for _, s := range taskertype.StepStates {
		if strings.Contains(err.Error(), string(s)) {
			return true
		}
	}
	return false
}
