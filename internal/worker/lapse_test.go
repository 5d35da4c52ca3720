package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/internal/wire"
	"github.com/tasker-go/tasker/internal/worker"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

// failingRenewals is a queue whose claim renewals fail at once while on is
// set: the database is out of this worker's reach, not of the others'.
type failingRenewals struct {
	queue.Queue
	on *atomic.Bool
}

func (q failingRenewals) MessageExtend(ctx context.Context, p *queue.ExtendParams) error {
	if q.on.Load() {
		return errors.New("connection refused")
	}
	return q.Queue.MessageExtend(ctx, p)
}

// slowRenewals is a queue whose claim renewals succeed after delay (a slow
// database), unless their context ends first.
type slowRenewals struct {
	queue.Queue
	delay time.Duration
}

func (q slowRenewals) MessageExtend(ctx context.Context, p *queue.ExtendParams) error {
	select {
	case <-time.After(q.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return q.Queue.MessageExtend(ctx, p)
}

// cancellations records, by step, that a handler saw its context end.
type cancellations struct {
	mu   sync.Mutex
	done map[uuid.UUID]bool
}

func (c *cancellations) handler(started func()) taskertype.Handler {
	return taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		started()
		<-ctx.Done()
		c.mu.Lock()
		c.done[in.StepID] = true
		c.mu.Unlock()
		return nil, context.Cause(ctx)
	})
}

func (c *cancellations) cancelled(step uuid.UUID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done[step]
}

// takenOver reports whether ev records a running attempt lost by a worker
// that found its message claimed again.
func takenOver(ev events.Event) bool {
	return ev.To == string(taskertype.StepEnqueuedAsErrorForOrchestration) && ev.Failure != nil &&
		strings.Contains(ev.Failure.Message, "never reported")
}

// A worker that cannot renew its claim (the database is out of its reach,
// not of another worker's) cancels its handler before the claim runs out in
// the database, so before another worker can record the attempt lost; and
// the attempt's failure is retryable. The claim is taken out of phase with
// the heartbeat's ticks.
func TestAClaimThatCannotBeRenewedIsGivenUpBeforeItRunsOut(t *testing.T) {
	e := newEnv(t)
	sub, err := e.bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var on atomic.Bool
	c := &cancellations{done: map[uuid.UUID]bool{}}
	started := make(chan struct{})
	h := c.handler(func() { on.Store(true); close(started) })
	// A claim hides the message for 450ms: worker a claims it then.
	if _, err := e.st.Queue().MessageClaim(t.Context(), &queue.ClaimParams{Queue: queue.StepQueue(ns), Max: 1, VisibilityTimeout: 450 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	e.worker(t, "a", 1, h, failingRenewals{e.st.Queue(), &on}, nil)
	<-started
	e.worker(t, "b", 1, taskertype.HandlerFunc(func(context.Context, *taskertype.StepInput) (any, error) { return "b", nil }), nil, nil)
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-sub.C():
			if ev.To != string(taskertype.StepEnqueuedAsErrorForOrchestration) {
				continue
			}
			if !c.cancelled(e.step.ID) {
				t.Fatalf("the attempt left in_progress (%s) while worker a's handler still ran", ev.Failure.Message)
			}
			if takenOver(ev) {
				return // another worker recorded it lost, after a's handler ended
			}
			if f := ev.Failure; f.Kind != taskertype.FailureLost || !f.Retryable {
				t.Errorf("worker a recorded %+v; want a retryable lost failure", f)
			}
			return
		case <-timeout:
			t.Fatal("the attempt did not leave in_progress within 10s")
		}
	}
}

// A database that answers each renewal slowly (but does answer) does not
// let another worker take a running step while its handler runs: the
// claims of a worker's attempts are renewed at once, not one after
// another, and any claim not renewed in time is given up first.
func TestSlowRenewalsOfManyAttemptsDoNotLetAnotherWorkerTakeOne(t *testing.T) {
	for _, n := range []int{4, 8} {
		t.Run(fmt.Sprintf("%d attempts", n), func(t *testing.T) {
			st := openStore(t)
			bus := events.NewBus()
			sub, err := bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}}, 256)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			for range n {
				enqueue(t, st, bus)
			}
			c := &cancellations{done: map[uuid.UUID]bool{}}
			var running atomic.Int32
			allRunning := make(chan struct{})
			h := c.handler(func() {
				if running.Add(1) == int32(n) {
					close(allRunning)
				}
			})
			start := func(name string, h taskertype.Handler, lq queue.Queue) {
				w, err := worker.New(worker.Config{Store: st, Queue: st.Queue(), LeaseQueue: lq, Bus: bus, Processor: name,
					Namespaces: []string{ns}, Handlers: map[string]taskertype.Handler{"slow": h}, Concurrency: n,
					VisibilityTimeout: time.Second, IdlePoll: 20 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					w.Stop(ctx)
				})
			}
			start("a", h, slowRenewals{st.Queue(), 200 * time.Millisecond})
			<-allRunning
			start("b", taskertype.HandlerFunc(func(context.Context, *taskertype.StepInput) (any, error) { return "b", nil }), nil)
			// Three leases: a takeover, if any, comes within that.
			deadline := time.After(3 * time.Second)
			for {
				select {
				case ev := <-sub.C():
					if takenOver(ev) && !c.cancelled(ev.StepID) {
						t.Fatalf("another worker recorded a running attempt of worker a lost while its handler still ran")
					}
				case <-deadline:
					return
				}
			}
		})
	}
}

// enqueue creates a task of one step, enqueued.
func enqueue(t *testing.T, st store.Store, bus *events.Bus) *taskertype.Step {
	t.Helper()
	return enqueueAfter(t, st, bus, 0)
}

// enqueueAfter creates a task of one step, enqueued, whose message is
// hidden for d.
func enqueueAfter(t *testing.T, st store.Store, bus *events.Bus, d time.Duration) *taskertype.Step {
	t.Helper()
	var step *taskertype.Step
	err := transition.InTx(t.Context(), st, bus, "test", func(tx store.Tx, rec *transition.Recorder) error {
		var err error
		step, err = enqueueInTx(t.Context(), tx, rec, d)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return step
}

// enqueueInTx creates in tx a task of one step, enqueued, whose message is
// hidden for d.
func enqueueInTx(ctx context.Context, tx store.Tx, rec *transition.Recorder, d time.Duration) (*taskertype.Step, error) {
	task := &taskertype.Task{ID: uuid.Must(uuid.NewV7()), Namespace: ns, Name: "t", Version: "1", Context: []byte(`{}`)}
	step := &taskertype.Step{ID: uuid.Must(uuid.NewV7()), Name: "slow", Handler: "slow", Timeout: time.Minute,
		Retry: taskertype.RetryPolicy{Retryable: true, MaxAttempts: 3, Backoff: taskertype.BackoffNone}}
	if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: []*taskertype.Step{step}, At: time.Now(), Processor: "test"}); err != nil {
		return nil, err
	}
	s, err := tx.StepGet(ctx, step.ID)
	if err != nil {
		return nil, err
	}
	if err := rec.Step(ctx, tx, s, taskertype.StepEventEnqueue, time.Now(), nil); err != nil {
		return nil, err
	}
	return step, tx.MessageSend(ctx, &queue.SendParams{Queue: queue.StepQueue(ns), Delay: d, Body: wire.Encode(wire.StepMessage{TaskID: task.ID, StepID: step.ID})})
}

// A handler whose claim was lost but that returns a result has it stored:
// nobody else took the step, and the fence (the attempt ID) accepts it.
func TestAResultReturnedAfterTheClaimWasLostIsStored(t *testing.T) {
	e := newEnv(t)
	sub, err := e.bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var on atomic.Bool
	on.Store(true)
	h := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		<-ctx.Done() // the claim is lost
		return "done", nil
	})
	e.worker(t, "a", 1, h, failingRenewals{e.st.Queue(), &on}, nil)
	e.waitState(t, sub, taskertype.StepEnqueuedForOrchestration)
	want := []string{"create@test", "enqueue@test", "start@a", "succeed@a"}
	if got := e.events(t); !equal(got, want) {
		t.Errorf("the step went through %v, want %v", got, want)
	}
}

// A claim older than a third of the lease is renewed before the handler
// starts, and a renewal that fails, for whatever reason, means the handler
// does not start: the claim may have only moments left.
func TestAClaimThatCannotBeConfirmedDoesNotStartTheHandler(t *testing.T) {
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
	var once, on atomic.Bool
	e.worker(t, "a", 1, h, failingRenewals{e.st.Queue(), &on}, func(w *worker.Worker) {
		worker.SetTestHooks(w, func(*taskertype.Step) {
			if once.CompareAndSwap(false, true) {
				on.Store(true)
				// The process pauses past a third of the lease (1s).
				time.Sleep(400 * time.Millisecond)
			}
		}, nil)
	})
	// The message comes back after its lease, and worker a finds the
	// attempt lost.
	e.waitState(t, sub, taskertype.StepEnqueuedAsErrorForOrchestration)
	want := []string{"create@test", "enqueue@test", "start@a", "fail@a"}
	if got, n := e.events(t), runs.Load(); !equal(got, want) || n != 0 {
		t.Errorf("the step went through %v and the handler ran %d times; want %v and no run", got, n, want)
	}
}

// A handler abandoned during Stop (it ignores its cancellation past the
// grace) fails its attempt as a retryable timeout, counted: the step is not
// given back uncounted while the handler still runs.
func TestAHandlerAbandonedDuringStopFailsItsAttempt(t *testing.T) {
	e := newEnv(t)
	sub, err := e.bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	started, hang := make(chan struct{}), make(chan struct{})
	defer close(hang)
	h := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		close(started)
		<-hang // ignores its context
		return nil, ctx.Err()
	})
	w, err := worker.New(worker.Config{Store: e.st, Queue: e.st.Queue(), Bus: e.bus, Processor: "a",
		Namespaces: []string{ns}, Handlers: map[string]taskertype.Handler{"slow": h}, Concurrency: 1,
		VisibilityTimeout: time.Second, IdlePoll: 20 * time.Millisecond, TimeoutGrace: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	steps, err := e.st.StepList(t.Context(), e.step.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	s := steps[0]
	if s.State != taskertype.StepEnqueuedAsErrorForOrchestration || s.Attempts != 1 || s.Failure == nil ||
		s.Failure.Kind != taskertype.FailureTimeout || !s.Failure.Retryable {
		t.Errorf("after stop the step is %s, attempts %d, failure %+v; want a counted, retryable timeout", s.State, s.Attempts, s.Failure)
	}
}

// Stop is bounded when the heartbeat is stuck in a store call that
// ignores its context: every step ended, Stop returns once its context and
// then the handlers' grace and 5 s have passed, with an error naming the
// heartbeat, instead of waiting for the store forever.
func TestStopDoesNotWaitForAStuckHeartbeat(t *testing.T) {
	e := newEnv(t)
	sub, err := e.bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	st := &stuckCheckStore{Store: e.st, in: make(chan struct{}), release: make(chan struct{})}
	defer close(st.release) // before the store closes (cleanups run after defers)
	h := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		<-st.in // the heartbeat's check of this attempt is stuck
		return "done", nil
	})
	w, err := worker.New(worker.Config{Store: st, Queue: e.st.Queue(), Bus: e.bus, Processor: "a",
		Namespaces: []string{ns}, Handlers: map[string]taskertype.Handler{"slow": h}, Concurrency: 1,
		VisibilityTimeout: time.Minute, CancelCheck: 20 * time.Millisecond, IdlePoll: 20 * time.Millisecond,
		TimeoutGrace: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, sub, taskertype.StepEnqueuedForOrchestration)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	stopped := make(chan error, 1)
	begin := time.Now()
	go func() { stopped <- w.Stop(ctx) }()
	select {
	case err := <-stopped:
		// Its context (100 ms), then the grace (50 ms) and 5 s.
		if took := time.Since(begin); took < 5*time.Second || err == nil || !strings.Contains(err.Error(), "heartbeat") {
			t.Errorf("Stop returned after %v with %v; want an error naming the heartbeat once its context, the grace and 5 s passed", took, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Stop still waits for a heartbeat stuck in the store 20 s after its context ended")
	}
}

// stuckCheckStore's StepAttempts, the heartbeat's check, never returns
// before release closes, whatever its context: a store that does not
// answer. in is closed as the first check begins.
type stuckCheckStore struct {
	*storesqlite.Store
	in      chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *stuckCheckStore) StepAttempts(ctx context.Context, ids []uuid.UUID) ([]store.StepAttempt, error) {
	s.once.Do(func() { close(s.in) })
	<-s.release
	return s.Store.StepAttempts(context.WithoutCancel(ctx), ids)
}

// A handler learns its attempt's ID, the store's fencing token.
func TestAHandlerReceivesItsAttemptID(t *testing.T) {
	e := newEnv(t)
	sub, err := e.bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := make(chan uuid.UUID, 1)
	h := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		got <- in.AttemptID
		return "done", nil
	})
	e.worker(t, "a", 1, h, nil, nil)
	e.waitState(t, sub, taskertype.StepEnqueuedForOrchestration)
	steps, err := e.st.StepList(t.Context(), e.step.TaskID)
	if err != nil {
		t.Fatal(err)
	}
	if id := <-got; id == uuid.Nil || id != steps[0].AttemptID {
		t.Errorf("the handler got attempt ID %v, want the step's %v", id, steps[0].AttemptID)
	}
}

// checkedStore signals each read of whether the running steps still wait
// for their attempts.
type checkedStore struct {
	*storesqlite.Store
	read chan struct{}
}

func (s checkedStore) StepAttempts(ctx context.Context, ids []uuid.UUID) ([]store.StepAttempt, error) {
	defer func() {
		select {
		case s.read <- struct{}{}:
		default:
		}
	}()
	return s.Store.StepAttempts(ctx, ids)
}

// A cancellation relayed on the bus cancels a handler only if the store
// says its attempt left in_progress: an event that does not match the
// store (here a made-up one) cancels nothing before the store was read.
func TestARelayedCancelChecksTheAttempt(t *testing.T) {
	e := newEnv(t)
	started, cancelled := make(chan struct{}), make(chan error, 1)
	h := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		close(started)
		<-ctx.Done()
		cancelled <- context.Cause(ctx)
		return nil, context.Cause(ctx)
	})
	st := checkedStore{e.st, make(chan struct{}, 1)}
	w, err := worker.New(worker.Config{Store: st, Queue: e.st.Queue(), Bus: e.bus, Processor: "a",
		Namespaces: []string{ns}, Handlers: map[string]taskertype.Handler{"slow": h}, Concurrency: 1,
		VisibilityTimeout: time.Minute, IdlePoll: 20 * time.Millisecond, CancelCheck: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		w.Stop(ctx)
	})
	<-started
	e.bus.Publish(&events.Event{Kind: events.KindStepTransition, TaskID: e.step.TaskID, StepID: e.step.ID, StepName: e.step.Name,
		From: string(taskertype.StepInProgress), To: string(taskertype.StepCancelled), Event: string(taskertype.StepEventCancel), At: time.Now(), Attempt: 1})
	select {
	case err := <-cancelled:
		t.Fatalf("the handler was cancelled (%v) without the store being read, after a made-up cancellation event", err)
	case <-st.read:
	}
	// The store says the attempt still runs: the handler goes on, until
	// the step is cancelled for real.
	err = transition.InTx(t.Context(), e.st, e.bus, "test", func(tx store.Tx, rec *transition.Recorder) error {
		s, err := tx.StepGet(t.Context(), e.step.ID)
		if err != nil {
			return err
		}
		return rec.Step(t.Context(), tx, s, taskertype.StepEventCancel, time.Now(), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-cancelled; !strings.Contains(err.Error(), "no longer waits") {
		t.Errorf("the handler was cancelled by %v, want its step's cancellation", err)
	}
}
