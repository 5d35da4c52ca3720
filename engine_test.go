package tasker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/internal/statemanager"
	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/queue/rabbitmq/amqptest"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness is an engine on a fresh database with the demo handlers.
type harness struct {
	t   *testing.T
	eng *tasker.Engine
}

// backends returns the backends the engine tests run on: the embedded
// SQLite always, PostgreSQL when its test database is configured (always in
// CI).
func backends() []string {
	b := []string{"sqlite"}
	if os.Getenv(pgtest.EnvURL) != "" {
		b = append(b, "postgres")
		if os.Getenv(amqptest.EnvURL) != "" {
			b = append(b, "rabbitmq")
		}
	}
	return b
}

// onBackends runs test once per backend, each with a fresh database.
func onBackends(t *testing.T, test func(t *testing.T, backend string)) {
	for _, b := range backends() {
		t.Run(b, func(t *testing.T) { test(t, b) })
	}
}

// database returns the Config fields that put an engine on a fresh
// database of the backend.
func database(t *testing.T, backend string) tasker.Config {
	if backend == "postgres" {
		_, url := pgtest.Schema(t)
		return tasker.Config{DatabaseURL: url, AutoMigrate: true, DefaultIdentityStrategy: tasker.IdentityAlwaysUnique}
	}
	if backend == "rabbitmq" {
		// PostgreSQL for the store, RabbitMQ for the queues (under a
		// prefix of the test's own), the store's messages through its
		// outbox: what --messaging rabbitmq opens.
		_, url := pgtest.Schema(t)
		prefix := amqptest.Prefix()
		amqptest.DeletePrefix(t, prefix)
		return tasker.Config{DatabaseURL: url, AutoMigrate: true, Messaging: tasker.MessagingRabbitMQ, AMQPURL: amqptest.URL(t), AMQPPrefix: prefix,
			DefaultIdentityStrategy: tasker.IdentityAlwaysUnique}
	}
	// The tests create the same task more than once as separate tasks: the
	// identity tests (identity_test.go) set the default back to strict.
	return tasker.Config{DatabasePath: filepath.Join(t.TempDir(), "t.db"), DefaultIdentityStrategy: tasker.IdentityAlwaysUnique}
}

func newHarness(t *testing.T, templates string, handlers map[string]tasker.Handler) *harness {
	t.Helper()
	return newHarnessOn(t, "sqlite", templates, handlers)
}

func newHarnessOn(t *testing.T, backend, templates string, handlers map[string]tasker.Handler) *harness {
	t.Helper()
	var tpls []*template.Template
	for i, doc := range strings.Split(templates, "\n---\n") {
		tpl, err := template.Parse(fmt.Sprintf("test-%d.yaml", i), []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		tpls = append(tpls, tpl)
	}
	cfg := database(t, backend)
	cfg.Templates = tpls
	eng, err := tasker.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range demo.Handlers() {
		if _, ok := handlers[name]; !ok {
			must(t, eng.RegisterHandler(name, h))
		}
	}
	for name, h := range handlers {
		must(t, eng.RegisterHandler(name, h))
	}
	must(t, eng.Start(t.Context()))
	stopAtCleanup(t, eng)
	return &harness{t: t, eng: eng}
}

// stopAtCleanup stops eng when the test ends.
func stopAtCleanup(t *testing.T, eng *tasker.Engine) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := eng.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// run creates a task and waits for it to finish.
func (h *harness) run(name string, taskCtx any) *tasker.TaskInfo {
	h.t.Helper()
	task, err := h.eng.CreateTask(h.t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: name, Context: taskCtx})
	must(h.t, err)
	return h.wait(task)
}

func (h *harness) wait(task *tasker.Task) *tasker.TaskInfo {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), 20*time.Second)
	defer cancel()
	if _, err := h.eng.WaitTask(ctx, task.ID); err != nil {
		h.t.Fatal(err)
	}
	info, err := h.eng.Task(h.t.Context(), task.ID)
	must(h.t, err)
	return info
}

func (h *harness) step(info *tasker.TaskInfo, name string) *tasker.Step {
	h.t.Helper()
	for _, s := range info.Steps {
		if s.Name == name {
			return s
		}
	}
	h.t.Fatalf("no step %s", name)
	return nil
}

// stepEvents returns the events of a step's transitions, in order.
func (h *harness) stepEvents(info *tasker.TaskInfo, name string) []string {
	h.t.Helper()
	log, err := h.eng.Transitions(h.t.Context(), info.Task.ID)
	must(h.t, err)
	id := h.step(info, name).ID
	var evs []string
	for _, tr := range log {
		if tr.StepID == id {
			evs = append(evs, tr.Event)
		}
	}
	return evs
}

func value(t *testing.T, s *tasker.Step) int64 {
	t.Helper()
	var v demo.Value
	if err := json.Unmarshal(s.Result, &v); err != nil {
		t.Fatalf("step %s result %s: %v", s.Name, s.Result, err)
	}
	return v.Value
}

const shapes = `name: diamond
namespace: test
version: 1.0.0
steps:
  - {name: start, handler: demo.add}
  - {name: left, handler: demo.square, depends_on: [start]}
  - {name: right, handler: demo.add, depends_on: [start]}
  - {name: join, handler: demo.sum, depends_on: [left, right]}
`

func TestADiamondRunsEachStepOnceAndJoinsTheBranches(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		h := newHarnessOn(t, backend, shapes, nil)
		info := h.run("diamond", map[string]int{"value": 3})
		if info.Task.State != "complete" {
			t.Fatalf("task %s", info.Task.State)
		}
		// start = 4, left = 16, right = 5, join = 21
		if got := value(t, h.step(info, "join")); got != 21 {
			t.Errorf("join = %d, want 21", got)
		}
		for _, s := range info.Steps {
			want := []string{"create", "enqueue", "start", "succeed", "complete"}
			if got := h.stepEvents(info, s.Name); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("step %s went through %v, want %v", s.Name, got, want)
			}
			if s.Attempts != 1 {
				t.Errorf("step %s took %d attempts", s.Name, s.Attempts)
			}
		}
		if info.Task.FinishedAt.IsZero() {
			t.Error("a complete task has no finish time")
		}
	})
}

const retrying = `name: retrying
namespace: test
version: 1.0.0
steps:
  - name: flaky
    handler: demo.flaky
    retry: {max_attempts: 3, backoff: linear, base: 10ms, cap: 50ms, jitter: 0}
  - {name: after, handler: demo.noop, depends_on: [flaky]}
---
name: retry_after
namespace: test
version: 1.0.0
steps:
  - name: slow_to_recover
    handler: test.retry_after
    retry: {max_attempts: 2, backoff: exponential, base: 1h, cap: 2h}
---
name: give_up
namespace: test
version: 1.0.0
steps:
  - name: flaky
    handler: demo.flaky
    retry: {max_attempts: 2, backoff: none}
---
name: permanent
namespace: test
version: 1.0.0
steps:
  - {name: broken, handler: demo.fail}
  - {name: slow, handler: demo.sleep}
  - {name: never, handler: demo.noop, depends_on: [broken, slow]}
---
name: panics
namespace: test
version: 1.0.0
steps:
  - {name: boom, handler: test.panic}
---
name: times_out
namespace: test
version: 1.0.0
steps:
  - name: hang
    handler: demo.sleep
    timeout: 50ms
    retry: {max_attempts: 1}
---
name: late
namespace: test
version: 1.0.0
steps:
  - name: late
    handler: test.late
    timeout: 50ms
    retry: {max_attempts: 1}
---
name: nil_error
namespace: test
version: 1.0.0
steps:
  - name: odd
    handler: test.nil_error
    retry: {max_attempts: 1}
`

func retryingHandlers(calls *atomic.Int32) map[string]tasker.Handler {
	return map[string]tasker.Handler{
		"test.retry_after": tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
			if calls.Add(1) == 1 {
				return nil, tasker.RetryAfter(errors.New("rate limited"), 20*time.Millisecond)
			}
			return "ok", nil
		}),
		"test.panic": tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
			panic("the handler broke")
		}),
		"test.late": tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
			time.Sleep(150 * time.Millisecond) // ignores ctx, returns within the grace
			return "too late", nil
		}),
		"test.nil_error": tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
			var e *tasker.HandlerError // a typed nil: a non-nil error whose Error method sees nil
			return nil, e
		}),
	}
}

func TestFailures(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		var calls atomic.Int32
		h := newHarnessOn(t, backend, retrying, retryingHandlers(&calls))

		t.Run("a retryable failure is retried after its backoff until it succeeds", func(t *testing.T) {
			info := h.run("retrying", map[string]int{"fail_times": 2})
			if info.Task.State != "complete" {
				t.Fatalf("task %s", info.Task.State)
			}
			flaky := h.step(info, "flaky")
			// A success on a retry leaves no failure behind; the log keeps them.
			if flaky.Attempts != 3 || flaky.Failure != nil {
				t.Errorf("flaky: %d attempts, failure %+v; want 3 attempts and no failure left", flaky.Attempts, flaky.Failure)
			}
			want := "create,enqueue,start,fail,schedule_retry,retry,enqueue,start,fail,schedule_retry,retry,enqueue,start,succeed,complete"
			if got := strings.Join(h.stepEvents(info, "flaky"), ","); got != want {
				t.Errorf("flaky went through\n %s\nwant\n %s", got, want)
			}
			log, _ := h.eng.Transitions(t.Context(), info.Task.ID)
			var waited bool
			for _, tr := range log {
				waited = waited || (tr.StepID.String() == "00000000-0000-0000-0000-000000000000" && tr.To == "waiting_for_retry")
			}
			if !waited {
				t.Error("the task never waited for the retry")
			}
		})

		t.Run("a retry-after from the handler replaces the backoff", func(t *testing.T) {
			start := time.Now()
			info := h.run("retry_after", nil)
			if info.Task.State != "complete" || time.Since(start) > 10*time.Second {
				t.Fatalf("task %s after %v: the hour of backoff was not replaced by the retry-after", info.Task.State, time.Since(start))
			}
		})

		t.Run("a step out of attempts fails the task", func(t *testing.T) {
			info := h.run("give_up", map[string]int{"fail_times": 5})
			if info.Task.State != "error" {
				t.Fatalf("task %s, want error", info.Task.State)
			}
			if s := h.step(info, "flaky"); s.State != "error" || s.Attempts != 2 {
				t.Errorf("flaky: %s after %d attempts, want error after 2", s.State, s.Attempts)
			}
		})

		t.Run("a permanent failure blocks the task, which ends in error once the running branch finishes", func(t *testing.T) {
			info := h.run("permanent", map[string]int{"sleep_ms": 50})
			if info.Task.State != "error" {
				t.Fatalf("task %s, want error", info.Task.State)
			}
			if s := h.step(info, "broken"); s.State != "error" || s.Attempts != 1 || s.Failure.Retryable {
				t.Errorf("broken: %s, %d attempts, %+v; want a permanent error after 1 attempt", s.State, s.Attempts, s.Failure)
			}
			if s := h.step(info, "slow"); s.State != "complete" {
				t.Errorf("the running branch was %s, want complete", s.State)
			}
			if s := h.step(info, "never"); s.State != "pending" {
				t.Errorf("the blocked join is %s, want pending", s.State)
			}
			log, _ := h.eng.Transitions(t.Context(), info.Task.ID)
			var path []string
			for _, tr := range log {
				if tr.StepID.String() == "00000000-0000-0000-0000-000000000000" {
					path = append(path, tr.To)
				}
			}
			if p := strings.Join(path, ","); !strings.Contains(p, "blocked_by_failures") || !strings.HasSuffix(p, "error") {
				t.Errorf("task path %s, want blocked_by_failures then error", p)
			}
		})

		t.Run("a panic is a permanent failure", func(t *testing.T) {
			info := h.run("panics", nil)
			s := h.step(info, "boom")
			if info.Task.State != "error" || s.Failure == nil || s.Failure.Kind != "panic" || !strings.Contains(s.Failure.Message, "the handler broke") {
				t.Fatalf("task %s, failure %+v; want error with a panic failure", info.Task.State, s.Failure)
			}
		})

		t.Run("a result that arrives after the timeout is a timeout", func(t *testing.T) {
			info := h.run("late", nil)
			s := h.step(info, "late")
			if info.Task.State != "error" || s.Failure == nil || s.Failure.Kind != "timeout" || s.Result != nil {
				t.Fatalf("task %s, failure %+v, result %s; want error with a timeout failure and no result", info.Task.State, s.Failure, s.Result)
			}
		})

		t.Run("an odd error value fails the step instead of hanging it", func(t *testing.T) {
			info := h.run("nil_error", nil)
			if s := h.step(info, "odd"); info.Task.State != "error" || s.Failure == nil {
				t.Fatalf("task %s, failure %+v; want error", info.Task.State, s.Failure)
			}
		})

		t.Run("a step past its timeout fails with a timeout", func(t *testing.T) {
			info := h.run("times_out", map[string]int{"sleep_ms": 5000})
			s := h.step(info, "hang")
			if info.Task.State != "error" || s.Failure == nil || s.Failure.Kind != "timeout" || !s.Failure.Retryable {
				t.Fatalf("task %s, failure %+v; want error with a retryable timeout failure", info.Task.State, s.Failure)
			}
		})
	})
}

const operated = `name: operated
namespace: test
version: 1.0.0
steps:
  - {name: first, handler: demo.fail}
  - {name: second, handler: demo.noop, depends_on: [first]}
---
name: slow
namespace: test
version: 1.0.0
steps:
  - {name: wait, handler: demo.sleep}
  - {name: after, handler: demo.noop, depends_on: [wait]}
`

func TestOperators(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		h := newHarnessOn(t, backend, operated, nil)
		ctx := t.Context()

		t.Run("a failed step resolved by hand lets its task finish", func(t *testing.T) {
			info := h.run("operated", nil)
			if info.Task.State != "error" {
				t.Fatalf("task %s, want error", info.Task.State)
			}
			must(t, h.eng.ResolveStep(ctx, info.Task.ID, "first"))
			info = h.wait(info.Task)
			if info.Task.State != "complete" || h.step(info, "first").State != "resolved_manually" || h.step(info, "second").State != "complete" {
				t.Fatalf("after resolve and reset: task %s, first %s, second %s", info.Task.State, h.step(info, "first").State, h.step(info, "second").State)
			}
		})

		t.Run("a step completed by hand carries the given result", func(t *testing.T) {
			info := h.run("operated", nil)
			must(t, h.eng.CompleteStep(ctx, info.Task.ID, "first", json.RawMessage(`{"value": 7}`)))
			info = h.wait(info.Task)
			if info.Task.State != "complete" || string(h.step(info, "first").Result) != `{"value": 7}` {
				t.Fatalf("task %s, first result %s", info.Task.State, h.step(info, "first").Result)
			}
		})

		t.Run("a cancelled task cancels its steps and discards the running step's result", func(t *testing.T) {
			task, err := h.eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "slow", Context: map[string]int{"sleep_ms": 300}})
			must(t, err)
			waitForStep(t, h.eng, task, "wait", "in_progress")
			must(t, h.eng.CancelTask(ctx, task.ID))
			info := h.wait(task)
			if info.Task.State != "cancelled" || h.step(info, "wait").State != "cancelled" || h.step(info, "after").State != "cancelled" {
				t.Fatalf("task %s, steps %s %s; want all cancelled", info.Task.State, h.step(info, "wait").State, h.step(info, "after").State)
			}
			time.Sleep(400 * time.Millisecond) // the handler returns meanwhile
			info, err = h.eng.Task(ctx, task.ID)
			must(t, err)
			if info.Task.State != "cancelled" || h.step(info, "wait").State != "cancelled" || h.step(info, "wait").Result != nil {
				t.Fatalf("after the handler returned: task %s, step %s with result %s", info.Task.State, h.step(info, "wait").State, h.step(info, "wait").Result)
			}
			if err := h.eng.CancelTask(ctx, task.ID); !errors.Is(err, taskertype.ErrInvalid) {
				t.Errorf("cancelling a cancelled task: %v, want ErrInvalid", err)
			}
		})

		t.Run("a task resolved by hand cancels its unfinished steps and keeps its failed one", func(t *testing.T) {
			info := h.run("operated", nil)
			must(t, h.eng.ResolveTask(ctx, info.Task.ID))
			info = h.wait(info.Task)
			if info.Task.State != "resolved_manually" || h.step(info, "first").State != "error" || h.step(info, "second").State != "cancelled" {
				t.Fatalf("task %s, first %s, second %s", info.Task.State, h.step(info, "first").State, h.step(info, "second").State)
			}
			if err := h.eng.ResolveTask(ctx, info.Task.ID); !errors.Is(err, taskertype.ErrInvalid) {
				t.Errorf("resolving a resolved task: %v, want ErrInvalid", err)
			}
		})

		t.Run("operator errors name what was wrong", func(t *testing.T) {
			info := h.run("operated", nil)
			err := h.eng.ResolveStep(ctx, info.Task.ID, "nope")
			if !errors.Is(err, taskertype.ErrNotFound) || !strings.Contains(err.Error(), "first") {
				t.Errorf("resolving an unknown step: %v, want ErrNotFound listing the steps", err)
			}
			done := h.run("slow", map[string]int{"sleep_ms": 1})
			if err := h.eng.ResetTask(ctx, done.Task.ID); !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), "complete") {
				t.Errorf("resetting a complete task: %v, want ErrInvalid naming its state", err)
			}
		})
	})
}

func waitForStep(t *testing.T, eng *tasker.Engine, task *tasker.Task, step, state string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		info, err := eng.Task(t.Context(), task.ID)
		must(t, err)
		for _, s := range info.Steps {
			if s.Name == step && string(s.State) == state {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("step %s never reached %s", step, state)
}

func TestBadInputCreatesNothing(t *testing.T) {
	h := newHarness(t, shapes+"\n---\n"+`name: schema
namespace: test
version: 1.0.0
context_schema:
  type: object
  required: [value]
  properties: {value: {type: integer}}
steps:
  - {name: a, handler: demo.noop}
---
name: unknown_handler
namespace: test
version: 2.0.0
steps:
  - {name: a, handler: nobody.registered.this}
`, nil)
	ctx := t.Context()
	cases := []struct {
		name   string
		params tasker.CreateTaskParams
		want   []string
	}{
		{"an unknown template lists what exists", tasker.CreateTaskParams{Namespace: "test", Name: "nope"}, []string{"nope", "diamond"}},
		{"an unknown version lists the versions", tasker.CreateTaskParams{Namespace: "test", Name: "diamond", Version: "9.9.9"}, []string{"9.9.9", "1.0.0"}},
		{"a context that fails the schema says where", tasker.CreateTaskParams{Namespace: "test", Name: "schema", Context: map[string]string{"value": "three"}}, []string{"value"}},
		{"a context that is not JSON is refused", tasker.CreateTaskParams{Namespace: "test", Name: "diamond", Context: "{not json"}, []string{"not valid JSON"}},
		{"a context that is not an object is refused", tasker.CreateTaskParams{Namespace: "test", Name: "diamond", Context: "[1, 2]"}, []string{"object"}},
		{"a handler nobody registered is named", tasker.CreateTaskParams{Namespace: "test", Name: "unknown_handler"}, []string{"nobody.registered.this", "RegisterHandler"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.eng.CreateTask(ctx, c.params)
			if err == nil {
				t.Fatal("created a task from bad input")
			}
			if !errors.Is(err, taskertype.ErrInvalid) && !errors.Is(err, taskertype.ErrNotFound) {
				t.Errorf("error %v is neither ErrInvalid nor ErrNotFound", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	tasks, err := h.eng.Tasks(ctx, 100)
	must(t, err)
	if len(tasks) != 0 {
		t.Fatalf("bad input left %d tasks in the store", len(tasks))
	}
}

func TestManyTasksInFlightAllComplete(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		h := newHarnessOn(t, backend, shapes, nil)
		ctx := t.Context()
		var tasks []*tasker.Task
		for i := range 100 {
			task, err := h.eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "diamond", Context: map[string]int{"value": i}})
			must(t, err)
			tasks = append(tasks, task)
		}
		for i, task := range tasks {
			info := h.wait(task)
			if info.Task.State != "complete" {
				t.Fatalf("task %d: %s", i, info.Task.State)
			}
			// start = i+1, left = (i+1)², right = i+2
			if got, want := value(t, h.step(info, "join")), int64((i+1)*(i+1)+i+2); got != want {
				t.Fatalf("task %d: join = %d, want %d", i, got, want)
			}
		}
	})
}

func TestStop(t *testing.T) {
	tpl, err := template.Parse("slow.yaml", []byte(strings.SplitN(operated, "\n---\n", 2)[1]))
	must(t, err)
	path := filepath.Join(t.TempDir(), "t.db")
	open := func() *tasker.Engine {
		eng, err := tasker.Open(t.Context(), tasker.Config{DatabasePath: path, Templates: []*template.Template{tpl}})
		must(t, err)
		for name, h := range demo.Handlers() {
			must(t, eng.RegisterHandler(name, h))
		}
		must(t, eng.Start(t.Context()))
		return eng
	}
	create := func(eng *tasker.Engine, sleep int) *tasker.Task {
		task, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "slow", Context: map[string]int{"sleep_ms": sleep}})
		must(t, err)
		waitForStep(t, eng, task, "wait", "in_progress")
		return task
	}

	// reopenFinished opens the database again and checks that the step
	// running at the stop finished, in one attempt.
	reopenFinished := func(t *testing.T, task *tasker.Task) *tasker.Engine {
		t.Helper()
		eng := open()
		info, err := eng.Task(t.Context(), task.ID)
		if err != nil {
			_ = eng.Stop(t.Context())
			t.Fatal(err)
		}
		if s := info.Steps[0]; s.State != "complete" || s.Attempts != 1 {
			_ = eng.Stop(t.Context())
			t.Fatalf("the step running at stop is %s after %d attempts, want complete after 1", s.State, s.Attempts)
		}
		return eng
	}
	t.Run("a graceful stop lets the running step finish", func(t *testing.T) {
		eng := open()
		task := create(eng, 100)
		must(t, eng.Stop(t.Context()))
		if err := eng.Start(t.Context()); !errors.Is(err, taskertype.ErrClosed) {
			t.Fatalf("start after stop: %v, want ErrClosed", err)
		}
		eng = reopenFinished(t, task)
		defer eng.Stop(t.Context())
		if _, err := eng.WaitTask(t.Context(), task.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a second stop waits for the first", func(t *testing.T) {
		eng := open()
		task := create(eng, 2000)
		first, second := make(chan error, 1), make(chan error, 1)
		go func() { first <- eng.Stop(t.Context()) }()
		time.Sleep(50 * time.Millisecond) // the first waits for the running step
		go func() { second <- eng.Stop(t.Context()) }()
		short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if err := eng.Stop(short); err == nil || !strings.Contains(err.Error(), "earlier Stop") {
			t.Errorf("a stop whose context ended while the first waited: %v, want an error saying an earlier Stop is under way", err)
		}
		select {
		case err := <-second:
			t.Fatalf("the second stop returned (%v) while the first still waited for the running step", err)
		case <-time.After(200 * time.Millisecond):
		}
		for i, c := range []chan error{first, second} {
			select {
			case err := <-c:
				must(t, err)
			case <-time.After(20 * time.Second):
				t.Fatalf("stop %d did not return", i+1)
			}
		}
		// One after the first returned gets its result at once.
		must(t, eng.Stop(short))
		// Both returned once the step had finished and the store was closed.
		eng = reopenFinished(t, task)
		defer eng.Stop(t.Context())
	})

	t.Run("a stop whose deadline passes releases the running step, which runs again at the next start", func(t *testing.T) {
		eng := open()
		task := create(eng, 1500)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		must(t, eng.Stop(ctx))
		eng = open()
		defer eng.Stop(t.Context())
		done, err := eng.WaitTask(t.Context(), task.ID)
		must(t, err)
		info, err := eng.Task(t.Context(), task.ID)
		must(t, err)
		if done.State != "complete" || info.Steps[0].Attempts != 1 {
			t.Fatalf("task %s, step attempts %d; want complete, the released attempt not counted", done.State, info.Steps[0].Attempts)
		}
		log, err := eng.Transitions(t.Context(), task.ID)
		must(t, err)
		var released bool
		for _, tr := range log {
			released = released || tr.Event == "release"
		}
		if !released {
			t.Error("no release in the transition log")
		}
	})
}

func TestATemplateBuiltInCodeIsCheckedLikeAParsedOne(t *testing.T) {
	eng, err := tasker.Open(t.Context(), tasker.Config{DatabasePath: filepath.Join(t.TempDir(), "t.db")})
	must(t, err)
	defer eng.Stop(t.Context())
	tpl := &template.Template{Name: "zero", Namespace: "test", Version: "1.0.0", Steps: []template.Step{{Name: "a", Handler: "demo.noop"}}}
	err = eng.RegisterTemplate(t.Context(), tpl)
	if !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), "timeout") || !strings.Contains(err.Error(), "max_attempts") {
		t.Fatalf("registering a template with a zero policy: %v, want ErrInvalid naming the timeout and max_attempts", err)
	}
}

func TestPullWorkers(t *testing.T) {
	tpl, err := template.Parse("pull.yaml", []byte(`name: pulled
namespace: test
version: 1.0.0
steps:
  - {name: remote, handler: py.double, retry: {max_attempts: 1}}
  - {name: after, handler: demo.noop, depends_on: [remote]}
`))
	must(t, err)
	eng, err := tasker.Open(t.Context(), tasker.Config{DatabasePath: filepath.Join(t.TempDir(), "t.db"), Templates: []*template.Template{tpl}})
	must(t, err)
	must(t, eng.RegisterPullHandler("py.double"))
	must(t, eng.RegisterHandler("demo.noop", demo.Handlers()["demo.noop"]))
	must(t, eng.Start(t.Context()))
	defer eng.Stop(t.Context())

	// An in-process pull client, standing in for a Python worker.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		for {
			ev, err := eng.Pull().PollWait(ctx)
			if err != nil {
				return
			}
			var c struct{ Value, Fail int }
			json.Unmarshal(ev.Context, &c)
			r := tasker.PullResult{Output: json.RawMessage(fmt.Sprintf(`{"value": %d}`, 2*c.Value))}
			if c.Fail == 1 {
				r = tasker.PullResult{Error: "the python side refused", Permanent: true}
			}
			if ev.Handler != "py.double" || !eng.Pull().Complete(ev.ID, r) {
				t.Errorf("event %+v: could not complete it", ev)
			}
		}
	}()

	run := func(taskCtx map[string]int) *tasker.TaskInfo {
		task, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "pulled", Context: taskCtx})
		must(t, err)
		wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer wcancel()
		_, err = eng.WaitTask(wctx, task.ID)
		must(t, err)
		info, err := eng.Task(t.Context(), task.ID)
		must(t, err)
		return info
	}
	t.Run("a step served by a pull worker completes with the worker's result", func(t *testing.T) {
		info := run(map[string]int{"value": 21})
		if info.Task.State != "complete" || string(info.Steps[0].Result) != `{"value": 42}` {
			t.Fatalf("task %s, remote result %s", info.Task.State, info.Steps[0].Result)
		}
	})
	t.Run("a pull worker's permanent error fails the step", func(t *testing.T) {
		info := run(map[string]int{"value": 1, "fail": 1})
		f := info.Steps[0].Failure
		if info.Task.State != "error" || f == nil || f.Retryable || !strings.Contains(f.Message, "python side refused") {
			t.Fatalf("task %s, failure %+v", info.Task.State, f)
		}
	})
	if m := eng.Pull().Metrics(); m.InFlight != 0 || m.Completed != 2 {
		t.Errorf("pull metrics %+v: want nothing in flight and 2 completed", m)
	}
	cancel()
	<-clientDone
}

// TestNoStateManagerOnPostgres: on PostgreSQL, as on the embedded backend
// (TestStatsShowEveryStructure), orchestration runs without the state
// manager: the transaction answers a prefetched task's steps from the rows
// it holds, without a round trip.
func TestNoStateManagerOnPostgres(t *testing.T) {
	pgtest.URL(t)
	h := newHarnessOn(t, "postgres", shapes, nil)
	for i := range 3 {
		h.run("diamond", map[string]int{"value": i})
	}
	if s := h.eng.Stats().Machines; s != (statemanager.Stats{}) {
		t.Errorf("state manager used on PostgreSQL: %+v", s)
	}
}

func TestStatsShowEveryStructure(t *testing.T) {
	h := newHarness(t, shapes, nil)
	for i := range 5 {
		h.run("diamond", map[string]int{"value": i})
	}
	// A task is complete once its last outcome commits; the worker drops
	// that step's correlation just after.
	s := h.eng.Stats()
	for deadline := time.Now().Add(5 * time.Second); s.Worker.Correlations.Tracked != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		s = h.eng.Stats()
	}
	if s.Events.Count == 0 || s.Events.LastProcessed.IsZero() || s.Events.P99 < s.Events.P50 {
		t.Errorf("event statistics %+v", s.Events)
	}
	if s.Machines != (statemanager.Stats{}) {
		t.Errorf("state manager used on the embedded backend, whose row cache answers the steps: %+v", s.Machines)
	}
	if s.Worker.Concurrency == 0 || s.Worker.Correlations.Completed == 0 || s.Worker.Correlations.Tracked != 0 {
		t.Errorf("worker %+v: want completed correlations, none left", s.Worker)
	}
	// Signals may be none: in one process, the transaction that sends a
	// step claims it too.
	if w := s.Wakeups; w == nil || w.Queues == 0 || w.Subscribers < w.Queues {
		t.Errorf("wake-ups %+v: want the queues' subscribers", w)
	}
	if s.Admission.Admitted != 5 || s.Admission.Refused != 0 {
		t.Errorf("admission %+v: want the 5 tasks admitted", s.Admission)
	}
	if s.Templates.Hits+s.Templates.Misses == 0 {
		t.Errorf("template manager never consulted: %+v", s.Templates)
	}
	if len(s.Breakers) != 2 || s.Breakers[0].State != "closed" {
		t.Errorf("breakers %+v: want the store's and the queue's, closed", s.Breakers)
	}
	if s.Pull.Capacity == 0 {
		t.Errorf("pull metrics %+v", s.Pull)
	}
}

func TestStopReleasesPullStepsNoPullWorkerTook(t *testing.T) {
	tpl, err := template.Parse("pull.yaml", []byte("name: pulled\nnamespace: test\nversion: 1.0.0\nsteps:\n  - {name: remote, handler: py.slow}\n"))
	must(t, err)
	path := filepath.Join(t.TempDir(), "t.db")
	eng, err := tasker.Open(t.Context(), tasker.Config{DatabasePath: path, Templates: []*template.Template{tpl}})
	must(t, err)
	must(t, eng.RegisterPullHandler("py.slow"))
	must(t, eng.Start(t.Context()))
	task, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "pulled"})
	must(t, err)
	for eng.Pull().Metrics().Queued != 1 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	must(t, eng.Stop(context.Background())) // no deadline: it must not wait for a pull worker
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stop took %v", d)
	}
	eng, err = tasker.Open(t.Context(), tasker.Config{DatabasePath: path, DisableWorkers: true, DisableOrchestration: true})
	must(t, err)
	defer eng.Stop(t.Context())
	info, err := eng.Task(t.Context(), task.ID)
	must(t, err)
	if s := info.Steps[0]; s.State != "enqueued" || s.Attempts != 0 {
		t.Fatalf("the step no pull worker took is %s after %d attempts, want enqueued (released), none counted", s.State, s.Attempts)
	}
}

// TestFullQueueRefusesNewTasks: while a namespace's queue holds
// MaxQueuedSteps steps waiting for a worker, new tasks are refused with an
// error that names the queue and what to do, and nothing of them is stored.
func TestFullQueueRefusesNewTasks(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		tpl, err := template.Parse("one.yaml", []byte("name: one\nnamespace: test\nversion: 1.0.0\nsteps:\n  - {name: a, handler: demo.noop}\n"))
		must(t, err)
		clock := testclock.New(time.Now())
		cfg := database(t, backend)
		cfg.Templates, cfg.Clock, cfg.DisableWorkers, cfg.MaxQueuedSteps = []*template.Template{tpl}, clock, true, 2
		eng, err := tasker.Open(t.Context(), cfg)
		must(t, err)
		must(t, eng.RegisterHandler("demo.noop", demo.Handlers()["demo.noop"]))
		must(t, eng.Start(t.Context()))
		stopAtCleanup(t, eng)
		create := func() error {
			clock.Advance(2 * time.Second) // past the interval of depth readings
			_, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "one"})
			return err
		}
		for i := range 2 {
			if err := create(); err != nil {
				t.Fatalf("task %d of 2 refused: %v", i+1, err)
			}
		}
		// The first steps are enqueued in the creating transaction: the
		// queue holds 2 now. Behind an outbox (RabbitMQ) they reach the
		// broker after the commit: the relay says when it published them.
		if backend == "rabbitmq" {
			deadline := time.Now().Add(10 * time.Second)
			for o := eng.Stats().Outbox; o == nil || o.Published < 2; o = eng.Stats().Outbox {
				if time.Now().After(deadline) {
					t.Fatalf("the outbox published %+v within 10s, want the 2 step messages", o)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		err = create()
		if !errors.Is(err, taskertype.ErrQueueFull) {
			t.Fatalf("a third task: %v, want ErrQueueFull", err)
		}
		for _, w := range []string{`"worker_test"`, "holds 2", "add workers", "MaxQueuedSteps"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
		tasks, err := eng.Tasks(t.Context(), 100)
		must(t, err)
		if len(tasks) != 2 {
			t.Fatalf("%d tasks stored, want the 2 admitted", len(tasks))
		}
	})
}

// A count of report groups out of range is refused, naming the field and
// the range; 0 (the default) and the range's ends open.
func TestOpenChecksReportGroups(t *testing.T) {
	for _, n := range []int{-1, 257} {
		cfg := database(t, "sqlite")
		cfg.ReportGroups = n
		eng, err := tasker.Open(t.Context(), cfg)
		if err == nil {
			_ = eng.Stop(t.Context())
			t.Fatalf("ReportGroups %d: opened, want an error", n)
		}
		if !strings.Contains(err.Error(), "ReportGroups") || !strings.Contains(err.Error(), "256") {
			t.Fatalf("ReportGroups %d: error %q does not name the field and its range", n, err)
		}
	}
	for _, n := range []int{0, 1, 256} {
		cfg := database(t, "sqlite")
		cfg.ReportGroups = n
		eng, err := tasker.Open(t.Context(), cfg)
		if err != nil {
			t.Fatalf("ReportGroups %d: %v", n, err)
		}
		if err := eng.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
