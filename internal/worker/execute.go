package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/internal/wire"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

var (
	// errSkip: the message is a duplicate or its step moved on; acknowledge it.
	errSkip = errors.New("step is not waiting for this message")
	// errStepTimeout is the cause of a handler context that hit its timeout.
	errStepTimeout = errors.New("step timeout")
)

// outcome is what one attempt produced.
type outcome struct {
	result   json.RawMessage
	failure  *taskertype.StepFailure
	released bool // the worker is shutting down; give the step back
}

// execute takes one claimed message through start, handler and report. It
// owns one slot, released when the handler has returned (not before, so a
// handler that ignores its timeout still counts against the bound).
func (w *Worker) execute(ctx context.Context, m *queue.Message) {
	var once sync.Once
	release := func() { once.Do(func() { w.release(1) }) }
	defer func() {
		if r := recover(); r != nil {
			// A bug in the worker itself; the claim expires and the
			// attempt is recorded as lost by the next claimant.
			w.log.Error("worker crashed on a message", "queue", m.Queue, "message_id", m.ID, "panic", r, "stack", string(debug.Stack()))
			release()
		}
	}()
	taskID, stepID, err := wire.DecodeStep(m.Body)
	if err != nil {
		w.log.Error("archiving a malformed step message", "queue", m.Queue, "message_id", m.ID, "error", err)
		w.finishMessage(m, func(ctx context.Context) error {
			return w.queue.MessageArchive(ctx, &queue.ArchiveParams{Queue: m.Queue, IDs: []int64{m.ID}})
		})
		release()
		return
	}
	step, in, err := w.start(ctx, m, stepID)
	switch {
	case errors.Is(err, errSkip):
		w.ack(m)
		release()
		return
	case err != nil:
		// Leave the claim: it expires and the step is tried again.
		w.log.Warn("could not start step; it will be delivered again", "task_id", taskID, "step_id", stepID, "error", err)
		release()
		return
	case in == nil: // the start recorded a lost attempt instead
		w.ack(m)
		release()
		return
	}
	if lease := step.Timeout + w.cfg.TimeoutGrace + 5*time.Second; lease > w.cfg.VisibilityTimeout {
		if err := w.queue.MessageExtend(ctx, &queue.ExtendParams{Queue: m.Queue, ID: m.ID, VisibilityTimeout: lease}); err != nil {
			w.log.Warn("could not extend the claim of a long step", "step", step.Name, "error", err)
		}
	}
	out := w.run(ctx, step, in, release)
	w.report(m, step, out)
}

// start moves the step from enqueued to in_progress and loads its inputs.
// If the step is already in progress and this is a redelivery, the worker
// that had it is gone: the attempt is reported as lost (in is nil then).
func (w *Worker) start(ctx context.Context, m *queue.Message, stepID uuid.UUID) (*taskertype.Step, *taskertype.StepInput, error) {
	var (
		step *taskertype.Step
		in   *taskertype.StepInput
	)
	err := transition.InTx(ctx, w.store, w.cfg.Bus, w.cfg.Processor, func(tx store.Tx, rec *transition.Recorder) error {
		in = nil
		s, err := tx.StepGet(ctx, stepID)
		if err != nil {
			return err
		}
		now := w.clock.Now()
		switch {
		case s.State == taskertype.StepEnqueued:
			if err := rec.Step(ctx, tx, s, taskertype.StepEventStart, now, func(s *taskertype.Step) {
				s.Attempts++
				s.StartedAt, s.FinishedAt = now, time.Time{}
			}); err != nil {
				return err
			}
			inputs, err := tx.StepInputs(ctx, stepID)
			if err != nil {
				return err
			}
			step = s
			in = &taskertype.StepInput{
				TaskID: s.TaskID, StepID: s.ID, StepName: s.Name, Namespace: namespaceOf(m.Queue),
				Attempt: s.Attempts, Context: inputs.Context, Results: inputs.Results,
			}
			return nil
		case s.State == taskertype.StepInProgress && m.ReadCount > 1:
			f := &taskertype.StepFailure{
				Kind: taskertype.FailureLost, Retryable: true, Attempt: s.Attempts,
				Message: fmt.Sprintf("attempt %d started at %s never reported: its worker stopped or was killed", s.Attempts, s.StartedAt.Format(time.RFC3339Nano)),
			}
			step = s
			return w.recordOutcome(ctx, tx, rec, s, &outcome{failure: f}, now)
		default:
			return errSkip
		}
	})
	return step, in, err
}

func namespaceOf(queueName string) string {
	const prefix = "worker_"
	if len(queueName) > len(prefix) {
		return queueName[len(prefix):]
	}
	return queueName
}

// run calls the handler under the step's timeout and classifies what it did.
// release is called when the handler goroutine returns.
func (w *Worker) run(ctx context.Context, step *taskertype.Step, in *taskertype.StepInput, release func()) *outcome {
	h, ok := w.handlers[step.Handler]
	if !ok {
		release()
		return &outcome{failure: &taskertype.StepFailure{
			Kind: taskertype.FailureNoHandler, Retryable: true, Attempt: step.Attempts,
			Message: fmt.Sprintf("no handler %q is registered in worker %s: register it, or run a worker that has it", step.Handler, w.cfg.Processor),
		}}
	}
	hctx, cancel := context.WithTimeoutCause(ctx, step.Timeout, errStepTimeout)
	defer cancel()
	type ret struct {
		v     any
		err   error
		panic any
		stack []byte
	}
	done := make(chan ret, 1)
	go func() {
		defer release()
		defer func() {
			if r := recover(); r != nil {
				done <- ret{panic: r, stack: debug.Stack()}
			}
		}()
		v, err := h.Handle(hctx, in)
		done <- ret{v: v, err: err}
	}()
	var r ret
	select {
	case r = <-done:
	case <-hctx.Done():
		grace := time.NewTimer(w.cfg.TimeoutGrace)
		select {
		case r = <-done:
		case <-grace.C:
			r.err = fmt.Errorf("handler did not return within %v after its context ended", w.cfg.TimeoutGrace)
			w.log.Warn("abandoning a handler that ignores its context", "step", step.Name, "handler", step.Handler)
		}
		grace.Stop()
	}
	fail := func(kind taskertype.FailureKind, retryable bool, msg string) *outcome {
		return &outcome{failure: &taskertype.StepFailure{Kind: kind, Retryable: retryable, Attempt: step.Attempts, Message: msg}}
	}
	switch {
	case r.panic != nil:
		return fail(taskertype.FailurePanic, false, fmt.Sprintf("handler panicked: %v\n%s", r.panic, r.stack))
	case r.err != nil && ctx.Err() != nil:
		return &outcome{released: true}
	case r.err != nil && errors.Is(context.Cause(hctx), errStepTimeout):
		return fail(taskertype.FailureTimeout, true, fmt.Sprintf("step exceeded its timeout of %v: %v", step.Timeout, r.err))
	case r.err != nil:
		return &outcome{failure: taskertype.FailureFromError(r.err, step.Attempts)}
	}
	result, err := encodeResult(r.v)
	if err != nil {
		return fail(taskertype.FailureHandler, false, err.Error())
	}
	return &outcome{result: result}
}

func encodeResult(v any) (json.RawMessage, error) {
	var b []byte
	switch v := v.(type) {
	case json.RawMessage:
		b = v
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("handler result cannot be encoded as JSON: %w", err)
		}
	}
	if len(b) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("handler returned bytes that are not valid JSON (%d bytes)", len(b))
	}
	return b, nil
}

// report stores the outcome and tells orchestration, retrying on passing
// store errors. It runs even while the worker shuts down.
func (w *Worker) report(m *queue.Message, step *taskertype.Step, out *outcome) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	for attempt, delay := 1, 20*time.Millisecond; ; attempt, delay = attempt+1, min(2*delay, 2*time.Second) {
		err = transition.InTx(ctx, w.store, w.cfg.Bus, w.cfg.Processor, func(tx store.Tx, rec *transition.Recorder) error {
			cur, err := tx.StepGet(ctx, step.ID)
			if err != nil {
				return err
			}
			if cur.State != taskertype.StepInProgress || cur.Attempts != step.Attempts {
				return errSkip // cancelled, resolved by hand, or reported lost meanwhile
			}
			return w.recordOutcome(ctx, tx, rec, cur, out, w.clock.Now())
		})
		if err == nil || errors.Is(err, errSkip) || errors.Is(err, taskertype.ErrStaleState) || ctx.Err() != nil {
			break
		}
		w.log.Warn("could not store a step's result; retrying", "step", step.Name, "attempt", attempt, "retry_in", delay, "error", err)
		time.Sleep(delay)
	}
	switch {
	case err != nil && !errors.Is(err, errSkip) && !errors.Is(err, taskertype.ErrStaleState):
		w.log.Error("giving up storing a step's result; the claim will expire and the attempt be recorded as lost",
			"task_id", step.TaskID, "step", step.Name, "error", err)
	case out.released && err == nil:
		w.finishMessage(m, func(ctx context.Context) error {
			return w.queue.MessageNack(ctx, &queue.NackParams{Queue: m.Queue, ID: m.ID})
		})
	default:
		w.ack(m)
	}
}

// recordOutcome applies an attempt's outcome to a step in progress.
func (w *Worker) recordOutcome(ctx context.Context, tx store.Tx, rec *transition.Recorder, s *taskertype.Step, out *outcome, now time.Time) error {
	if out.released {
		return rec.Step(ctx, tx, s, taskertype.StepEventRelease, now, func(s *taskertype.Step) {
			s.Attempts = max(s.Attempts-1, 0)
		})
	}
	ev, update := taskertype.StepEventSucceed, func(s *taskertype.Step) {
		s.Result, s.FinishedAt = out.result, now
	}
	if out.failure != nil {
		ev, update = taskertype.StepEventFail, func(s *taskertype.Step) {
			s.Failure, s.FinishedAt = out.failure, now
		}
	}
	if err := rec.Step(ctx, tx, s, ev, now, update); err != nil {
		return err
	}
	return tx.MessageSend(ctx, &queue.SendParams{
		Queue: queue.ResultsQueue,
		Body:  wire.Encode(wire.ResultMessage{TaskID: s.TaskID, StepID: s.ID}),
	})
}

func (w *Worker) ack(m *queue.Message) {
	w.finishMessage(m, func(ctx context.Context) error {
		return w.queue.MessageAck(ctx, &queue.AckParams{Queue: m.Queue, IDs: []int64{m.ID}})
	})
}

// finishMessage acknowledges, releases or archives a message; a failure is
// only logged, because the message comes back after its claim expires and
// is then recognised as done.
func (w *Worker) finishMessage(m *queue.Message, fn func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fn(ctx); err != nil {
		w.log.Warn("could not finish a message; it will be delivered again and skipped", "queue", m.Queue, "message_id", m.ID, "error", err)
	}
}
