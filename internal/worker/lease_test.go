package worker_test

import (
	"cmp"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/internal/wire"
	"github.com/tasker-go/tasker/internal/worker"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

const ns = "lease"

// env is a store with one enqueued step, and a bus that sees its changes.
type env struct {
	st   *storesqlite.Store
	bus  *events.Bus
	step *taskertype.Step
	// lease is the workers' lease; 0 is 1s.
	lease time.Duration
}

// openStore opens an embedded store in the test's directory with the step
// queue of ns.
func openStore(t *testing.T) *storesqlite.Store {
	t.Helper()
	st, err := storesqlite.Open(t.Context(), storesqlite.Config{Path: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Queue().QueueEnsure(t.Context(), queue.StepQueue(ns)); err != nil {
		t.Fatal(err)
	}
	return st
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, bus := openStore(t), events.NewBus()
	return &env{st: st, bus: bus, step: enqueue(t, st, bus)}
}

// worker starts a worker of the step's namespace with a lease of e.lease and
// slots handlers at once.
func (e *env) worker(t *testing.T, name string, slots int, h taskertype.Handler, leaseQueue queue.Queue, hook func(w *worker.Worker)) *worker.Worker {
	t.Helper()
	return e.workerWith(t, name, slots, h, leaseQueue, nil, hook)
}

func (e *env) workerWith(t *testing.T, name string, slots int, h taskertype.Handler, leaseQueue queue.Queue, clock taskertype.Clock, hook func(w *worker.Worker)) *worker.Worker {
	t.Helper()
	return startWorker(t, worker.Config{Store: e.st, Queue: e.st.Queue(), LeaseQueue: leaseQueue, Bus: e.bus, Processor: name, Clock: clock,
		Namespaces: []string{ns}, Handlers: map[string]taskertype.Handler{"slow": h}, Concurrency: slots,
		VisibilityTimeout: cmp.Or(e.lease, time.Second), IdlePoll: 20 * time.Millisecond}, hook)
}

// startWorker makes a worker of cfg, lets hook (when not nil) see it, starts
// it, and stops it when the test ends, reporting a failed stop.
func startWorker(t *testing.T, cfg worker.Config, hook func(w *worker.Worker)) *worker.Worker {
	t.Helper()
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if hook != nil {
		hook(w)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w.Stop(ctx); err != nil {
			t.Errorf("stop %s: %v", cfg.Processor, err)
		}
	})
	return w
}

// waitState waits for the step to enter state, by the bus.
func (e *env) waitState(t *testing.T, sub *events.Subscription, state taskertype.StepState) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-sub.C():
			if ev.StepID == e.step.ID && ev.To == string(state) {
				return
			}
		case <-timeout:
			t.Fatalf("the step did not reach %s within 10s", state)
		}
	}
}

func (e *env) events(t *testing.T) []string {
	t.Helper()
	ts, err := e.st.TransitionList(t.Context(), &store.TransitionListParams{TaskID: e.step.TaskID, StepID: e.step.ID})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tr := range ts {
		out = append(out, tr.Event+"@"+tr.Processor)
	}
	return out
}

// silentRenewals is a queue whose claim renewals are lost on the way: they
// report success and change nothing, as a renewal stuck behind a blip
// would.
type silentRenewals struct{ queue.Queue }

func (silentRenewals) MessageExtend(context.Context, *queue.ExtendParams) error { return nil }

// pausedRenewals is a queue whose claim renewals fail while paused is set,
// as those of a paused process never reach the database.
type pausedRenewals struct {
	queue.Queue
	paused *atomic.Bool
}

func (q pausedRenewals) MessageExtend(ctx context.Context, p *queue.ExtendParams) error {
	if q.paused.Load() {
		return errors.New("paused")
	}
	return q.Queue.MessageExtend(ctx, p)
}

// A running step whose claim lapsed is claimed again by its own worker:
// the running attempt takes the new claim, and is neither reported lost
// nor run a second time.
func TestARunningStepClaimedAgainByItsWorkerIsAdopted(t *testing.T) {
	e := newEnv(t)
	sub, err := e.bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var runs atomic.Int32
	adopted := make(chan struct{})
	h := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		runs.Add(1)
		select {
		case <-adopted: // the claim lapsed and was taken again
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		return "done", nil
	})
	// A second slot lets the worker claim the message again.
	w := e.worker(t, "w", 2, h, silentRenewals{e.st.Queue()}, func(w *worker.Worker) {
		worker.SetTestHooks(w, nil, func(*taskertype.Step) { close(adopted) })
	})
	e.waitState(t, sub, taskertype.StepEnqueuedForOrchestration)
	if n := runs.Load(); n != 1 {
		t.Errorf("the handler ran %d times, want 1", n)
	}
	if got := w.Stats().Adopted; got != 1 {
		t.Errorf("Stats().Adopted = %d, want 1", got)
	}
	want := []string{"create@test", "enqueue@test", "start@w", "succeed@w"}
	if got := e.events(t); !equal(got, want) {
		t.Errorf("the step went through %v, want %v", got, want)
	}
}

// A worker paused after it started a step, long enough for its claim to
// lapse and another worker to report the attempt lost, does not start the
// handler when it resumes.
func TestAWorkerWhoseClaimWasLostDoesNotStartTheHandler(t *testing.T) {
	e := newEnv(t)
	sub, err := e.bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var runs atomic.Int32
	h := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		runs.Add(1)
		return "done", nil
	})
	var once, paused atomic.Bool
	resumed := make(chan struct{})
	// One slot: worker a cannot claim the message again itself.
	a := e.worker(t, "a", 1, h, pausedRenewals{e.st.Queue(), &paused}, func(w *worker.Worker) {
		worker.SetTestHooks(w, func(*taskertype.Step) {
			if once.CompareAndSwap(false, true) {
				// Paused, its heartbeat too, until another worker found
				// the attempt lost.
				paused.Store(true)
				e.worker(t, "b", 1, h, nil, nil)
				e.waitState(t, sub, taskertype.StepEnqueuedAsErrorForOrchestration)
				paused.Store(false)
				close(resumed)
			}
		}, nil)
	})
	<-resumed
	// Stop waits for worker a to finish with the step.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing retries the step: no orchestration runs here.
	want := []string{"create@test", "enqueue@test", "start@a", "fail@b"}
	if got, n := e.events(t), runs.Load(); !equal(got, want) || n != 0 {
		t.Errorf("the step went through %v and the handler ran %d times; want %v and no run", got, n, want)
	}
}

// A late outcome from a superseded attempt changes nothing: worker a's
// renewals are lost on the way, worker b finds the attempt lost, the step
// is retried and b runs the second attempt; a's success, arriving then, is
// refused, and b's is stored.
func TestALateOutcomeOfASupersededAttemptChangesNothing(t *testing.T) {
	e := newEnv(t)
	sub, err := e.bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	releaseA, startedB, releaseB := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	h := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		if calls.Add(1) == 1 {
			<-releaseA // ignores its context: a late outcome
			return "late", nil
		}
		close(startedB)
		<-releaseB
		return "current", nil
	})
	a := e.worker(t, "a", 1, h, silentRenewals{e.st.Queue()}, nil)
	e.waitState(t, sub, taskertype.StepInProgress)
	e.worker(t, "b", 1, h, nil, nil)
	e.waitState(t, sub, taskertype.StepEnqueuedAsErrorForOrchestration)
	// Orchestration's part, by hand: retry the step at once.
	err = transition.InTx(t.Context(), e.st, e.bus, "test", func(tx store.Tx, rec *transition.Recorder) error {
		s, err := tx.StepGet(t.Context(), e.step.ID)
		if err != nil {
			return err
		}
		for _, ev := range []taskertype.StepEvent{taskertype.StepEventScheduleRetry, taskertype.StepEventRetry, taskertype.StepEventEnqueue} {
			if err := rec.Step(t.Context(), tx, s, ev, time.Now(), nil); err != nil {
				return err
			}
		}
		return tx.MessageSend(t.Context(), &queue.SendParams{Queue: queue.StepQueue(ns), Body: wire.Encode(wire.StepMessage{TaskID: e.step.TaskID, StepID: e.step.ID})})
	})
	if err != nil {
		t.Fatal(err)
	}
	<-startedB
	close(releaseA)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := a.Stop(ctx); err != nil { // a's outcome is stored or refused by now
		t.Fatal(err)
	}
	close(releaseB)
	e.waitState(t, sub, taskertype.StepEnqueuedForOrchestration)
	want := []string{"create@test", "enqueue@test", "start@a", "fail@b", "schedule_retry@test", "retry@test", "enqueue@test", "start@b", "succeed@b"}
	if got := e.events(t); !equal(got, want) {
		t.Errorf("the step went through %v, want %v", got, want)
	}
	steps, err := e.st.StepList(t.Context(), e.step.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(steps[0].Result); got != `"current"` {
		t.Errorf("result %s, want the current attempt's", got)
	}
}

// An attempt silent past the time it may take (an orphan) is failed as
// retryable through the fenced report path, and its handler cancelled.
func TestAnOrphanedAttemptFailsAsRetryable(t *testing.T) {
	e := newEnv(t)
	sub, err := e.bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// A longer lease: a renewal slowed by a loaded machine does not lose
	// the claim before the orphan sweep, which runs every quarter of two
	// leases and the grace (correlation.SweepInterval).
	e.lease = 3 * time.Second
	clock := testclock.New(time.Now())
	started, ended := make(chan struct{}), make(chan error, 1)
	h := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		close(started)
		<-ctx.Done()
		ended <- context.Cause(ctx)
		return nil, context.Cause(ctx)
	})
	e.workerWith(t, "w", 1, h, nil, clock, nil)
	<-started
	// Past the step's timeout (1m), the grace and the report budget: the
	// completion listener's next sweep finds it.
	clock.Advance(10 * time.Minute)
	e.waitState(t, sub, taskertype.StepEnqueuedAsErrorForOrchestration)
	if err := <-ended; err == nil || !strings.Contains(err.Error(), "orphan") {
		t.Errorf("the orphan's handler ended with %v, want its orphan cancellation", err)
	}
	steps, err := e.st.StepList(t.Context(), e.step.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if f := steps[0].Failure; f == nil || f.Kind != taskertype.FailureTimeout || !f.Retryable || !strings.Contains(f.Message, "orphan") {
		t.Errorf("the orphan's failure: %+v; want a retryable timeout naming the orphan", f)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
