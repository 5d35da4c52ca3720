package resilience

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/queue/queuetest"
	queuesqlite "github.com/tasker-go/tasker/queue/sqlite"
	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/store/storetest"
	"github.com/tasker-go/tasker/taskertype"
)

// The guarded backends still pass their conformance suites: the wrappers
// change nothing while the breakers are closed.
func TestGuardedStoreConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Name: "guarded sqlite",
		New: func(t *testing.T, clock taskertype.Clock) (store.Store, queue.Queue) {
			s, err := storesqlite.Open(t.Context(), storesqlite.Config{Path: filepath.Join(t.TempDir(), "tasker.db"), Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			sb, _ := NewBreaker("store", BreakerConfig{Clock: clock})
			qb, _ := NewBreaker("queue", BreakerConfig{Clock: clock})
			return GuardStore(s, sb), GuardQueue(s.Queue(), qb)
		},
	})
}

func TestGuardedQueueConformance(t *testing.T) {
	queuetest.Run(t, queuetest.Harness{
		Name: "guarded sqlite",
		New: func(t *testing.T, clock taskertype.Clock) queue.Queue {
			q, err := queuesqlite.Open(t.Context(), queuesqlite.Config{Path: filepath.Join(t.TempDir(), "queue.db"), Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { q.Close() })
			b, _ := NewBreaker("queue", BreakerConfig{Clock: clock})
			return GuardQueue(q, b)
		},
	})
}

// downStore fails every call with err and counts them. Its Tx is nil: the
// guard never touches it.
type downStore struct {
	err   error
	calls int
}

func (s *downStore) TaskGet(context.Context, uuid.UUID) (*taskertype.Task, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) TaskList(context.Context, *store.TaskListParams) ([]*taskertype.Task, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) TaskCount(context.Context, *store.TaskListParams) (int64, error) {
	s.calls++
	return 0, s.err
}

func (s *downStore) StepList(context.Context, uuid.UUID) ([]*taskertype.Step, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) TransitionList(context.Context, *store.TransitionListParams) ([]*taskertype.Transition, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) StepAncestorResults(context.Context, uuid.UUID, uuid.UUID) (map[string]json.RawMessage, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) StepAttempts(context.Context, []uuid.UUID) ([]store.StepAttempt, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) StepLeaseExtend(context.Context, *store.StepLeaseParams) error {
	s.calls++
	return s.err
}

func (s *downStore) InTx(ctx context.Context, fn func(store.Tx) error) error {
	s.calls++
	if s.err != nil {
		return s.err
	}
	return fn(nil)
}

func (s *downStore) TemplatePut(context.Context, *store.TemplatePutParams) error {
	s.calls++
	return s.err
}

func (s *downStore) TemplateGet(context.Context, *store.TemplateGetParams) (*store.Template, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) TemplateList(context.Context, *store.TemplateListParams) ([]*store.Template, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) Close() error { s.calls++; return nil }

func TestGuardStoreOpensAndRefusesEveryMethod(t *testing.T) {
	ctx := t.Context()
	b, clock := newBreaker(t, BreakerConfig{FailureThreshold: 9, OpenFor: time.Second})
	down := &downStore{err: errDown}
	s := GuardStore(down, b)
	calls := []func() error{
		func() error { _, err := s.TaskGet(ctx, uuid.New()); return err },
		func() error { _, err := s.TaskList(ctx, &store.TaskListParams{}); return err },
		func() error { _, err := s.TaskCount(ctx, &store.TaskListParams{}); return err },
		func() error { _, err := s.StepList(ctx, uuid.New()); return err },
		func() error { _, err := s.TransitionList(ctx, &store.TransitionListParams{}); return err },
		func() error { return s.InTx(ctx, func(store.Tx) error { return nil }) },
		func() error { return s.TemplatePut(ctx, &store.TemplatePutParams{}) },
		func() error { _, err := s.TemplateGet(ctx, &store.TemplateGetParams{}); return err },
		func() error { _, err := s.TemplateList(ctx, &store.TemplateListParams{}); return err },
	}
	for i, c := range calls {
		if err := c(); !errors.Is(err, errDown) {
			t.Fatalf("call %d: %v, want the backend's error", i, err)
		}
	}
	if b.State() != StateOpen || down.calls != 9 {
		t.Fatalf("state %s after %d calls", b.State(), down.calls)
	}
	for i, c := range calls {
		if err := c(); !errors.Is(err, ErrOpen) {
			t.Fatalf("open, call %d: %v, want ErrOpen", i, err)
		}
	}
	if down.calls != 9 {
		t.Fatalf("an open breaker let %d calls through", down.calls-9)
	}
	if err := s.Close(); err != nil || down.calls != 10 {
		t.Fatal("Close is not guarded: it must reach the store while the breaker is open")
	}
	// The trial goes through and closes it.
	clock.Advance(time.Second)
	down.err = nil
	if _, err := s.TaskGet(ctx, uuid.New()); err != nil {
		t.Fatal(err)
	}
	if b.State() != StateClosed {
		t.Fatalf("state %s", b.State())
	}
}

// failingTx answers TaskGetForUpdate with err; its other methods are not called.
type failingTx struct {
	store.Tx
	err error
}

func (t failingTx) TaskGetForUpdate(context.Context, uuid.UUID) (*taskertype.Task, error) {
	return nil, t.err
}

// txStore runs fn with a failingTx, or fails InTx itself with beginErr.
type txStore struct {
	downStore
	txErr, beginErr error
}

func (s *txStore) InTx(ctx context.Context, fn func(store.Tx) error) error {
	if s.beginErr != nil {
		return s.beginErr
	}
	return fn(failingTx{err: s.txErr})
}

func TestGuardStoreInTxCountsOnlyInfrastructureErrors(t *testing.T) {
	ctx := t.Context()
	errLost := errors.New("another processor moved the step first")
	cases := []struct {
		name        string
		txErr       error
		beginErr    error
		fn          func(tx store.Tx) error
		wantFailure bool
	}{
		{name: "domain sentinels from fn", fn: func(store.Tx) error {
			return &taskertype.StaleStateError{Kind: "task", ID: "x", Expected: "a", Actual: "b"}
		}},
		{name: "fn's own plain error", fn: func(store.Tx) error { return errLost }},
		{name: "not found from the tx", txErr: fmt.Errorf("task: %w", taskertype.ErrNotFound), fn: func(tx store.Tx) error {
			_, err := tx.TaskGetForUpdate(ctx, uuid.New())
			return err
		}},
		{name: "tx failure returned", txErr: errDown, wantFailure: true, fn: func(tx store.Tx) error {
			_, err := tx.TaskGetForUpdate(ctx, uuid.New())
			return err
		}},
		{name: "tx failure wrapped", txErr: errDown, wantFailure: true, fn: func(tx store.Tx) error {
			_, err := tx.TaskGetForUpdate(ctx, uuid.New())
			return fmt.Errorf("load task: %w", err)
		}},
		{name: "tx failure replaced by fn's own error", txErr: errDown, wantFailure: true, fn: func(tx store.Tx) error {
			tx.TaskGetForUpdate(ctx, uuid.New())
			return errLost
		}},
		{name: "begin fails", beginErr: errDown, wantFailure: true, fn: func(store.Tx) error { return nil }},
		{name: "begin reports not found", beginErr: taskertype.ErrNotFound, fn: func(store.Tx) error { return nil }},
	}
	for _, c := range cases {
		b, _ := newBreaker(t, BreakerConfig{FailureThreshold: 1})
		s := GuardStore(&txStore{txErr: c.txErr, beginErr: c.beginErr}, b)
		err := s.InTx(ctx, c.fn)
		if err == nil {
			t.Fatalf("%s: InTx returned nil", c.name)
		}
		if got := b.State() == StateOpen; got != c.wantFailure {
			t.Errorf("%s: counted as a failure: %v, want %v (err %v)", c.name, got, c.wantFailure, err)
		}
	}
}

// downQueue fails every backend call; Subscribe, Capabilities and Close work.
type downQueue struct{ calls int }

func (q *downQueue) QueueEnsure(context.Context, string) error { q.calls++; return errDown }
func (q *downQueue) MessageSend(context.Context, *queue.SendParams) (int64, error) {
	q.calls++
	return 0, errDown
}
func (q *downQueue) MessageClaim(context.Context, *queue.ClaimParams) ([]*queue.Message, error) {
	q.calls++
	return nil, errDown
}
func (q *downQueue) MessageAck(context.Context, *queue.AckParams) error   { q.calls++; return errDown }
func (q *downQueue) MessageNack(context.Context, *queue.NackParams) error { q.calls++; return errDown }
func (q *downQueue) MessageExtend(context.Context, *queue.ExtendParams) error {
	q.calls++
	return errDown
}
func (q *downQueue) MessageArchive(context.Context, *queue.ArchiveParams) error {
	q.calls++
	return errDown
}
func (q *downQueue) MessageDeadLetter(context.Context, *queue.DeadLetterParams) error {
	q.calls++
	return errDown
}
func (q *downQueue) DeadLetterList(context.Context, *queue.DeadLetterListParams) ([]*queue.DeadLetter, error) {
	q.calls++
	return nil, errDown
}
func (q *downQueue) DeadLetterRequeue(context.Context, *queue.DeadLetterRequeueParams) (int64, error) {
	q.calls++
	return 0, errDown
}
func (q *downQueue) DeadLetterPurge(context.Context, *queue.DeadLetterPurgeParams) (int64, error) {
	q.calls++
	return 0, errDown
}
func (q *downQueue) QueueStats(context.Context, string) (*queue.Stats, error) {
	q.calls++
	return nil, errDown
}
func (q *downQueue) QueueDepth(context.Context, string) (int64, error) {
	q.calls++
	return 0, errDown
}
func (q *downQueue) Subscribe(string) (<-chan struct{}, func()) {
	return make(chan struct{}, 1), func() {}
}
func (q *downQueue) Capabilities() queue.Capabilities { return queue.Capabilities{Wakeups: true} }
func (q *downQueue) Close() error                     { return nil }

func TestGuardQueueOpensAndRefusesEveryMethod(t *testing.T) {
	ctx := t.Context()
	b, _ := newBreaker(t, BreakerConfig{FailureThreshold: 11})
	down := &downQueue{}
	q := GuardQueue(down, b)
	calls := []func() error{
		func() error { return q.QueueEnsure(ctx, "q") },
		func() error { _, err := q.MessageSend(ctx, &queue.SendParams{Queue: "q"}); return err },
		func() error { _, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 1}); return err },
		func() error { return q.MessageAck(ctx, &queue.AckParams{Queue: "q"}) },
		func() error { return q.MessageNack(ctx, &queue.NackParams{Queue: "q"}) },
		func() error { return q.MessageExtend(ctx, &queue.ExtendParams{Queue: "q"}) },
		func() error { return q.MessageArchive(ctx, &queue.ArchiveParams{Queue: "q"}) },
		func() error { return q.MessageDeadLetter(ctx, &queue.DeadLetterParams{Queue: "q"}) },
		func() error { _, err := q.DeadLetterList(ctx, &queue.DeadLetterListParams{}); return err },
		func() error { _, err := q.QueueStats(ctx, "q"); return err },
		func() error { _, err := q.QueueDepth(ctx, "q"); return err },
	}
	for i, c := range calls {
		if err := c(); !errors.Is(err, errDown) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if b.State() != StateOpen {
		t.Fatalf("state %s after 11 failures", b.State())
	}
	for i, c := range calls {
		if err := c(); !errors.Is(err, ErrOpen) {
			t.Fatalf("open, call %d: %v", i, err)
		}
	}
	if down.calls != len(calls) {
		t.Fatalf("%d calls reached the queue, want %d", down.calls, len(calls))
	}
	wake, cancel := q.Subscribe("q")
	defer cancel()
	if wake == nil || !q.Capabilities().Wakeups || q.Close() != nil {
		t.Fatal("Subscribe, Capabilities and Close must pass through while open")
	}
}

func TestNilBreakerGuardsNothing(t *testing.T) {
	s, q := &downStore{}, &downQueue{}
	if GuardStore(s, nil) != store.Store(s) || GuardQueue(q, nil) != queue.Queue(q) {
		t.Fatal("a nil breaker should return the backend as it is")
	}
}

// estimatingQueue is a downQueue that estimates its depth.
type estimatingQueue struct{ downQueue }

func (e *estimatingQueue) QueueDepthEstimate(ctx context.Context, name string) (int64, error) {
	return 42, nil
}

// TestGuardQueuePassesTheDepthEstimate: the guarded queue answers
// queue.DepthEstimator with the wrapped queue's estimate, or with
// errors.ErrUnsupported when it has none.
func TestGuardQueuePassesTheDepthEstimate(t *testing.T) {
	ctx := t.Context()
	b, _ := newBreaker(t, BreakerConfig{})
	e, ok := GuardQueue(&estimatingQueue{}, b).(queue.DepthEstimator)
	if !ok {
		t.Fatal("the guarded queue is no queue.DepthEstimator")
	}
	if n, err := e.QueueDepthEstimate(ctx, "q"); n != 42 || err != nil {
		t.Errorf("estimate through the guard: %d, %v; want 42", n, err)
	}
	e = GuardQueue(&downQueue{}, b).(queue.DepthEstimator)
	if _, err := e.QueueDepthEstimate(ctx, "q"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("estimate of a queue without one: %v, want ErrUnsupported", err)
	}
	if b.State() != StateClosed {
		t.Errorf("breaker %s after an unsupported estimate", b.State())
	}
}
