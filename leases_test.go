package tasker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// The claims of running steps: leases, their renewal, cancellation and
// what a handler's errors do to them.

const leases = `name: released
namespace: test
version: 1.0.0
steps:
  - name: gives_back
    handler: test.released
    retry: {max_attempts: 2, backoff: none}
---
name: long
namespace: test
version: 1.0.0
steps:
  - name: sleeps
    handler: test.sleep_past_lease
    timeout: 20s
    retry: {max_attempts: 3, backoff: none}
---
name: timing_out
namespace: test
version: 1.0.0
steps:
  - name: times_out
    handler: test.times_out
    timeout: 100ms
    retry: {max_attempts: 3, backoff: none}
---
name: blocking
namespace: test
version: 1.0.0
steps:
  - name: blocks
    handler: test.blocks
    timeout: 1m
`

// leaseEngine opens and starts an engine on db (from database) with the
// lease templates, the handlers and a claim timeout of 1s; tweak, if set,
// changes the config last.
func leaseEngine(t *testing.T, db tasker.Config, handlers map[string]tasker.Handler, tweak func(*tasker.Config)) *harness {
	t.Helper()
	var tpls []*template.Template
	for i, doc := range strings.Split(leases, "\n---\n") {
		tpl, err := template.Parse(fmt.Sprintf("leases-%d.yaml", i), []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		tpls = append(tpls, tpl)
	}
	cfg := db
	cfg.Templates, cfg.ClaimTimeout = tpls, time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	eng, err := tasker.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range handlers {
		must(t, eng.RegisterHandler(name, h))
	}
	must(t, eng.Start(t.Context()))
	stopAtCleanup(t, eng)
	return &harness{t: t, eng: eng}
}

// A handler returning ErrReleased while its worker is not stopping fails
// under the retry policy: two attempts, then error (it used to be given
// back uncounted, thousands of times a second).
func TestErrReleasedOutsideAStopIsAnOrdinaryFailure(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		var runs atomic.Int32
		h := leaseEngine(t, database(t, backend), map[string]tasker.Handler{
			"test.released": tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
				runs.Add(1)
				return nil, fmt.Errorf("not now: %w", taskertype.ErrReleased)
			}),
		}, nil)
		info := h.run("released", nil)
		s := h.step(info, "gives_back")
		if info.Task.State != "error" || s.State != "error" || s.Attempts != 2 || runs.Load() != 2 {
			t.Errorf("task %s, step %s after %d attempts and %d runs; want error, error, 2 and 2", info.Task.State, s.State, s.Attempts, runs.Load())
		}
	})
}

// A handler running for longer than the claim's lease keeps its claim
// (the heartbeat renews it): it runs once and completes.
func TestAHandlerRunningPastTheLeaseRunsOnce(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		var runs atomic.Int32
		h := leaseEngine(t, database(t, backend), map[string]tasker.Handler{
			"test.sleep_past_lease": tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
				runs.Add(1)
				select {
				case <-time.After(2500 * time.Millisecond): // 2.5 leases
					return "slept", nil
				case <-ctx.Done():
					return nil, context.Cause(ctx)
				}
			}),
		}, nil)
		info := h.run("long", nil)
		if info.Task.State != "complete" || runs.Load() != 1 {
			t.Errorf("task %s after %d runs, want complete after 1", info.Task.State, runs.Load())
		}
		want := "create,enqueue,start,succeed,complete"
		if got := strings.Join(h.stepEvents(info, "sleeps"), ","); got != want {
			t.Errorf("the step went through %s, want %s", got, want)
		}
	})
}

// A handler that respects its context and times out is never running
// beside its own retry.
func TestATimedOutHandlerNeverRunsBesideItsRetry(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		var running, most, runs atomic.Int32
		h := leaseEngine(t, database(t, backend), map[string]tasker.Handler{
			"test.times_out": tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
				runs.Add(1)
				n := running.Add(1)
				defer running.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-ctx.Done()
				time.Sleep(50 * time.Millisecond) // cleans up, within the grace
				return nil, context.Cause(ctx)
			}),
		}, nil)
		info := h.run("timing_out", nil)
		if info.Task.State != "error" || runs.Load() != 3 {
			t.Errorf("task %s after %d runs, want error after 3", info.Task.State, runs.Load())
		}
		if m := most.Load(); m != 1 {
			t.Errorf("%d attempts ran at once, want 1", m)
		}
	})
}

// blocking returns a handler that signals its start and then waits for its
// context, and the channels that report its start and why it ended.
func blocking() (tasker.Handler, <-chan struct{}, <-chan error) {
	started, ended := make(chan struct{}, 1), make(chan error, 1)
	return tasker.HandlerFunc(func(ctx context.Context, in *tasker.StepInput) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		ended <- context.Cause(ctx)
		return nil, context.Cause(ctx)
	}), started, ended
}

func waitCancelled(t *testing.T, ended <-chan error) {
	t.Helper()
	select {
	case err := <-ended:
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("the handler's context ended with %v, want a cancellation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the task did not reach its running handler within 10s")
	}
}

// Cancelling a task cancels its running handler's context.
func TestCancelReachesTheRunningHandler(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		handler, started, ended := blocking()
		h := leaseEngine(t, database(t, backend), map[string]tasker.Handler{"test.blocks": handler}, nil)
		task, err := h.eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "blocking"})
		must(t, err)
		<-started
		must(t, h.eng.CancelTask(t.Context(), task.ID))
		waitCancelled(t, ended)
		info := h.wait(task)
		if s := h.step(info, "blocks"); info.Task.State != "cancelled" || s.State != "cancelled" {
			t.Errorf("task %s, step %s; want both cancelled", info.Task.State, s.State)
		}
	})
}

// Cancelling a task in one process cancels its handler running in
// another: two engines on one PostgreSQL database, one orchestrating, one
// running workers only.
func TestCancelReachesAHandlerInAnotherProcess(t *testing.T) {
	if !contains(backends(), "postgres") {
		t.Skip("needs PostgreSQL: set " + "TASKER_TEST_POSTGRES_URL")
	}
	db := database(t, "postgres")
	handler, started, ended := blocking()
	orch := leaseEngine(t, db, nil, func(c *tasker.Config) { c.DisableWorkers = true })
	leaseEngine(t, db, map[string]tasker.Handler{"test.blocks": handler}, func(c *tasker.Config) {
		c.DisableOrchestration, c.AutoMigrate = true, false
	})
	task, err := orch.eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "blocking"})
	must(t, err)
	<-started
	must(t, orch.eng.CancelTask(t.Context(), task.ID))
	waitCancelled(t, ended)
	if info := orch.wait(task); info.Task.State != "cancelled" {
		t.Errorf("task %s, want cancelled", info.Task.State)
	}
}

// The cancellation reaches the other process on the notification sent at
// the commit, not on the worker's periodic check (an hour here).
func TestCancelReachesAnotherProcessOnItsNotification(t *testing.T) {
	if !contains(backends(), "postgres") {
		t.Skip("needs PostgreSQL: set " + "TASKER_TEST_POSTGRES_URL")
	}
	db := database(t, "postgres")
	handler, started, ended := blocking()
	orch := leaseEngine(t, db, nil, func(c *tasker.Config) { c.DisableWorkers = true })
	leaseEngine(t, db, map[string]tasker.Handler{"test.blocks": handler}, func(c *tasker.Config) {
		c.DisableOrchestration, c.AutoMigrate, c.CancelCheck = true, false, time.Hour
	})
	task, err := orch.eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "blocking"})
	must(t, err)
	<-started
	must(t, orch.eng.CancelTask(t.Context(), task.ID))
	waitCancelled(t, ended)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
