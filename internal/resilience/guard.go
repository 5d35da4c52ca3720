package resilience

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// call runs fn through b under ctx and returns its value.
func call[T any](ctx context.Context, b *Breaker, fn func() (T, error)) (T, error) {
	var v T
	err := b.doCtx(ctx, func() error {
		var err error
		v, err = fn()
		return err
	})
	return v, err
}

// GuardStore returns s with every method but Close going through b (a nil
// b returns s as it is). A refused call returns an error matching ErrOpen
// and does not reach s.
//
// InTx is one call: Allow before the transaction, Record of its result
// after; the methods of the Tx are not guarded one by one. Its result is an
// infrastructure failure when b's classifier says so of an error that came
// from the backend: from InTx itself (begin, commit) or from a Tx method
// (even when fn wraps it or returns another error after it). An error fn
// makes up on its own ("another processor took the step first") is a
// decision of the caller, taken on answers of a backend that works: it
// never counts as a failure, whatever its type.
func GuardStore(s store.Store, b *Breaker) store.Store {
	if b == nil {
		return s
	}
	return &guardedStore{s: s, b: b}
}

type guardedStore struct {
	s store.Store
	b *Breaker
}

func (g *guardedStore) TaskGet(ctx context.Context, id uuid.UUID) (*taskertype.Task, error) {
	return call(ctx, g.b, func() (*taskertype.Task, error) { return g.s.TaskGet(ctx, id) })
}

func (g *guardedStore) TaskList(ctx context.Context, p *store.TaskListParams) ([]*taskertype.Task, error) {
	return call(ctx, g.b, func() ([]*taskertype.Task, error) { return g.s.TaskList(ctx, p) })
}

func (g *guardedStore) TaskCount(ctx context.Context, p *store.TaskListParams) (int64, error) {
	return call(ctx, g.b, func() (int64, error) { return g.s.TaskCount(ctx, p) })
}

func (g *guardedStore) StepList(ctx context.Context, taskID uuid.UUID) ([]*taskertype.Step, error) {
	return call(ctx, g.b, func() ([]*taskertype.Step, error) { return g.s.StepList(ctx, taskID) })
}

func (g *guardedStore) TransitionList(ctx context.Context, p *store.TransitionListParams) ([]*taskertype.Transition, error) {
	return call(ctx, g.b, func() ([]*taskertype.Transition, error) { return g.s.TransitionList(ctx, p) })
}

func (g *guardedStore) StepAncestorResults(ctx context.Context, taskID, stepID uuid.UUID) (map[string]json.RawMessage, error) {
	return call(ctx, g.b, func() (map[string]json.RawMessage, error) { return g.s.StepAncestorResults(ctx, taskID, stepID) })
}

func (g *guardedStore) TemplatePut(ctx context.Context, p *store.TemplatePutParams) error {
	_, err := call(ctx, g.b, func() (struct{}, error) { return struct{}{}, g.s.TemplatePut(ctx, p) })
	return err
}

func (g *guardedStore) TemplateGet(ctx context.Context, p *store.TemplateGetParams) (*store.Template, error) {
	return call(ctx, g.b, func() (*store.Template, error) { return g.s.TemplateGet(ctx, p) })
}

func (g *guardedStore) TemplateList(ctx context.Context, p *store.TemplateListParams) ([]*store.Template, error) {
	return call(ctx, g.b, func() ([]*store.Template, error) { return g.s.TemplateList(ctx, p) })
}

func (g *guardedStore) StepAttempts(ctx context.Context, ids []uuid.UUID) ([]store.StepAttempt, error) {
	return call(ctx, g.b, func() ([]store.StepAttempt, error) { return g.s.StepAttempts(ctx, ids) })
}

func (g *guardedStore) StepLeaseExtend(ctx context.Context, p *store.StepLeaseParams) error {
	_, err := call(ctx, g.b, func() (struct{}, error) { return struct{}{}, g.s.StepLeaseExtend(ctx, p) })
	return err
}

func (g *guardedStore) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	gen, err := g.b.allow()
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done { // fn or the backend panicked
			g.b.record(gen, neutral, nil)
		}
	}()
	gtx := &guardedTx{b: g.b}
	var fnErr error
	err = g.s.InTx(ctx, func(tx store.Tx) error {
		// fn may run more than once: only the last run counts.
		gtx.tx = tx
		gtx.failed.Store(false)
		fnErr = fn(gtx)
		return fnErr
	})
	done = true
	o := g.b.classify(err)
	switch {
	case err != nil && ctx.Err() != nil:
		o = neutral // the caller gave up
	case o == failure && !gtx.failed.Load() && fnErr != nil && errors.Is(err, fnErr):
		o = success // fn's own error: the backend answered every call
	}
	g.b.record(gen, o, err)
	return err
}

// guardedTx notes whether a Tx method failed for infrastructure reasons.
type guardedTx struct {
	tx     store.Tx
	b      *Breaker
	failed atomic.Bool
}

func (t *guardedTx) note(err error) error {
	if err != nil && t.b.classify(err) == failure {
		t.failed.Store(true)
	}
	return err
}

func (t *guardedTx) TaskCreate(ctx context.Context, p *store.TaskCreateParams) error {
	return t.note(t.tx.TaskCreate(ctx, p))
}

func (t *guardedTx) TaskGetForUpdate(ctx context.Context, id uuid.UUID) (*taskertype.Task, error) {
	v, err := t.tx.TaskGetForUpdate(ctx, id)
	return v, t.note(err)
}

func (t *guardedTx) TaskTransition(ctx context.Context, p *store.TaskTransitionParams) error {
	return t.note(t.tx.TaskTransition(ctx, p))
}

func (t *guardedTx) StepGet(ctx context.Context, id uuid.UUID) (*taskertype.Step, error) {
	v, err := t.tx.StepGet(ctx, id)
	return v, t.note(err)
}

func (t *guardedTx) StepList(ctx context.Context, taskID uuid.UUID) ([]*taskertype.Step, error) {
	v, err := t.tx.StepList(ctx, taskID)
	return v, t.note(err)
}

func (t *guardedTx) StepTransition(ctx context.Context, p *store.StepTransitionParams) error {
	return t.note(t.tx.StepTransition(ctx, p))
}

func (t *guardedTx) StepCreate(ctx context.Context, p *store.StepCreateParams) error {
	return t.note(t.tx.StepCreate(ctx, p))
}

func (t *guardedTx) StepLeaseHold(ctx context.Context, p *store.StepLeaseParams) error {
	return t.note(t.tx.StepLeaseHold(ctx, p))
}

func (t *guardedTx) StepLeaseLeft(ctx context.Context, stepID, attemptID uuid.UUID) (time.Duration, error) {
	v, err := t.tx.StepLeaseLeft(ctx, stepID, attemptID)
	return v, t.note(err)
}

func (t *guardedTx) StepInputs(ctx context.Context, stepID uuid.UUID) (*store.StepInputs, error) {
	v, err := t.tx.StepInputs(ctx, stepID)
	return v, t.note(err)
}

func (t *guardedTx) StepAncestorsHeld(stepID uuid.UUID) map[string]json.RawMessage {
	return t.tx.StepAncestorsHeld(stepID)
}

func (t *guardedTx) Prefetch(ctx context.Context, p *store.PrefetchParams) ([]uuid.UUID, error) {
	v, err := t.tx.Prefetch(ctx, p)
	return v, t.note(err)
}

func (t *guardedTx) MessageSend(ctx context.Context, p *queue.SendParams) error {
	return t.note(t.tx.MessageSend(ctx, p))
}

func (t *guardedTx) MessageClaim(ctx context.Context, p *queue.ClaimParams) ([]*queue.Message, error) {
	v, err := t.tx.MessageClaim(ctx, p)
	return v, t.note(err)
}

func (t *guardedTx) MessageAck(ctx context.Context, p *queue.AckParams) error {
	return t.note(t.tx.MessageAck(ctx, p))
}

func (t *guardedTx) Notify(ctx context.Context, name string) error {
	return t.note(t.tx.Notify(ctx, name))
}

func (g *guardedStore) Close() error { return g.s.Close() }

// GuardQueue returns q with every method going through b except Subscribe,
// Capabilities and Close, which do not talk to the backend (or must work
// while it is down). A nil b returns q as it is.
func GuardQueue(q queue.Queue, b *Breaker) queue.Queue {
	if b == nil {
		return q
	}
	return &guardedQueue{q: q, b: b}
}

type guardedQueue struct {
	q queue.Queue
	b *Breaker
}

func (g *guardedQueue) QueueEnsure(ctx context.Context, name string) error {
	return g.b.doCtx(ctx, func() error { return g.q.QueueEnsure(ctx, name) })
}

func (g *guardedQueue) MessageSend(ctx context.Context, p *queue.SendParams) (int64, error) {
	return call(ctx, g.b, func() (int64, error) { return g.q.MessageSend(ctx, p) })
}

func (g *guardedQueue) MessageClaim(ctx context.Context, p *queue.ClaimParams) ([]*queue.Message, error) {
	return call(ctx, g.b, func() ([]*queue.Message, error) { return g.q.MessageClaim(ctx, p) })
}

func (g *guardedQueue) MessageAck(ctx context.Context, p *queue.AckParams) error {
	return g.b.doCtx(ctx, func() error { return g.q.MessageAck(ctx, p) })
}

func (g *guardedQueue) MessageNack(ctx context.Context, p *queue.NackParams) error {
	return g.b.doCtx(ctx, func() error { return g.q.MessageNack(ctx, p) })
}

func (g *guardedQueue) MessageExtend(ctx context.Context, p *queue.ExtendParams) error {
	return g.b.doCtx(ctx, func() error { return g.q.MessageExtend(ctx, p) })
}

func (g *guardedQueue) MessageArchive(ctx context.Context, p *queue.ArchiveParams) error {
	return g.b.doCtx(ctx, func() error { return g.q.MessageArchive(ctx, p) })
}

func (g *guardedQueue) MessageDeadLetter(ctx context.Context, p *queue.DeadLetterParams) error {
	return g.b.doCtx(ctx, func() error { return g.q.MessageDeadLetter(ctx, p) })
}

func (g *guardedQueue) DeadLetterList(ctx context.Context, p *queue.DeadLetterListParams) ([]*queue.DeadLetter, error) {
	return call(ctx, g.b, func() ([]*queue.DeadLetter, error) { return g.q.DeadLetterList(ctx, p) })
}

func (g *guardedQueue) DeadLetterRequeue(ctx context.Context, p *queue.DeadLetterRequeueParams) (int64, error) {
	return call(ctx, g.b, func() (int64, error) { return g.q.DeadLetterRequeue(ctx, p) })
}

func (g *guardedQueue) DeadLetterPurge(ctx context.Context, p *queue.DeadLetterPurgeParams) (int64, error) {
	return call(ctx, g.b, func() (int64, error) { return g.q.DeadLetterPurge(ctx, p) })
}

func (g *guardedQueue) QueueDepth(ctx context.Context, name string) (int64, error) {
	return call(ctx, g.b, func() (int64, error) { return g.q.QueueDepth(ctx, name) })
}

// QueueDepthEstimate implements queue.DepthEstimator: the wrapped queue's,
// or an error wrapping errors.ErrUnsupported when it has none.
func (g *guardedQueue) QueueDepthEstimate(ctx context.Context, name string) (int64, error) {
	e, ok := g.q.(queue.DepthEstimator)
	if !ok {
		return 0, fmt.Errorf("queue: depth estimate: %w", errors.ErrUnsupported)
	}
	return call(ctx, g.b, func() (int64, error) { return e.QueueDepthEstimate(ctx, name) })
}

func (g *guardedQueue) QueueStats(ctx context.Context, name string) (*queue.Stats, error) {
	return call(ctx, g.b, func() (*queue.Stats, error) { return g.q.QueueStats(ctx, name) })
}

func (g *guardedQueue) Subscribe(name string) (<-chan struct{}, func()) { return g.q.Subscribe(name) }

func (g *guardedQueue) Capabilities() queue.Capabilities { return g.q.Capabilities() }

func (g *guardedQueue) Close() error { return g.q.Close() }
