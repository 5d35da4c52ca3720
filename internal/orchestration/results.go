package orchestration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/consumer"
	"github.com/tasker-go/tasker/internal/resilience"
	"github.com/tasker-go/tasker/internal/retry"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/internal/wire"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// errPoison marks a message that can never be processed: it is set aside as
// a dead letter instead of being delivered again and again.
var errPoison = consumer.ErrPoison

// staleRetries bounds how often a transaction that lost a compare-and-set
// race is run again with fresh state.
const staleRetries = 3

// processFunc applies one message inside a transaction.
type processFunc func(ctx context.Context, tx store.Tx, rec *transition.Recorder, m *queue.Message) error

// round claims and processes up to max messages. When the queue shares the
// store's database, the claim, the processing of every message and the
// acknowledgements commit in one transaction; if one message fails, or the
// transaction does (a write refused at the commit), it rolls back, its
// claims with it, and the messages are processed one by one: each failure
// then counts as a delivery of its message, and a message that keeps
// failing ends as a dead letter instead of failing every batch it is in.
func (o *Orchestrator) round(ctx context.Context, name string, max int, process processFunc) (int, error) {
	return consumer.Round(ctx, o.log, name, o.txQueue,
		func() (int, error) { return o.roundInTx(ctx, name, max, process) },
		func() (int, error) {
			msgs, err := o.queue.MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: max, VisibilityTimeout: o.cfg.VisibilityTimeout})
			if err != nil {
				return 0, err
			}
			o.handleBatch(ctx, name, msgs, process)
			return len(msgs), nil
		})
}

func (o *Orchestrator) roundInTx(ctx context.Context, name string, max int, process processFunc) (int, error) {
	var n int
	err := o.tx(ctx, func(tx store.Tx, rec *transition.Recorder) error {
		msgs, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: max, VisibilityTimeout: o.cfg.VisibilityTimeout})
		if err != nil {
			return err
		}
		n = len(msgs)
		// Every task named and its steps in one round trip: processing
		// each message then costs none.
		if _, err := tx.Prefetch(ctx, &store.PrefetchParams{TaskIDs: wire.Tasks(msgs)}); err != nil {
			return err
		}
		receipts := make([]queue.Receipt, len(msgs))
		for i, m := range msgs {
			if err := process(ctx, tx, rec, m); err != nil {
				return consumer.Failed(m, err)
			}
			receipts[i] = m.Receipt()
		}
		if len(receipts) == 0 {
			return nil
		}
		return tx.MessageAck(ctx, &queue.AckParams{Queue: name, Receipts: receipts})
	})
	return n, err
}

// handleBatch processes each message in its own transaction, then
// acknowledges the processed ones in one call. A message that failed for a
// passing reason is released to be tried again after a delay, until it has
// failed Config.MaxDeliveries times; then, like a poison message at once,
// it is set aside as a dead letter with its last error.
func (o *Orchestrator) handleBatch(ctx context.Context, name string, msgs []*queue.Message, process processFunc) {
	// A claimed batch is finished even when the orchestrator is stopping:
	// it takes milliseconds, and leaving it would delay it by a claim timeout.
	ctx = context.WithoutCancel(ctx)
	ack := make([]queue.Receipt, 0, len(msgs))
	for _, m := range msgs {
		var err error
		for range staleRetries {
			err = o.tx(ctx, func(tx store.Tx, rec *transition.Recorder) error { return process(ctx, tx, rec, m) })
			if !errors.Is(err, taskertype.ErrStaleState) {
				break
			}
		}
		switch {
		case err == nil:
			ack = append(ack, m.Receipt())
		case errors.Is(err, errPoison) || errors.Is(err, taskertype.ErrNotFound):
			o.deadLetter(ctx, name, m, fmt.Sprintf("cannot be processed: %v", err))
		case m.ReadCount >= o.cfg.MaxDeliveries && !errors.Is(err, resilience.ErrOpen):
			// An open circuit breaker says the backend is down, not that
			// the message is bad: the decision is skipped at a delivery the
			// breaker refused. That delivery still raised ReadCount, as
			// every delivery does, so a message refused N times is set
			// aside at its first ordinary failure once ReadCount reaches
			// MaxDeliveries. An operator sends it back with
			// `tasker dead-letters retry` (Engine.RequeueDeadLetter).
			o.deadLetter(ctx, name, m, fmt.Sprintf("failed %d deliveries; the last: %v", m.ReadCount, err))
		default:
			delay := min(time.Duration(m.ReadCount)*o.cfg.RedeliveryDelay, 30*o.cfg.RedeliveryDelay)
			o.log.Warn("processing failed; the message will be retried", "queue", name, "message_id", m.ID,
				"read_count", m.ReadCount, "max_deliveries", o.cfg.MaxDeliveries, "retry_in", delay, "error", err)
			if err := o.queue.MessageNack(ctx, &queue.NackParams{Queue: name, Receipt: m.Receipt(), Delay: delay}); err != nil {
				o.log.Warn("release failed; the message returns after its visibility timeout", "queue", name, "message_id", m.ID, "error", err)
			}
		}
	}
	if len(ack) > 0 {
		if err := o.queue.MessageAck(ctx, &queue.AckParams{Queue: name, Receipts: ack}); err != nil {
			// Processing is idempotent: redelivered messages find their
			// steps already moved and are acknowledged then.
			o.log.Warn("acknowledge failed; processed messages will be redelivered", "queue", name, "count", len(ack), "error", err)
		}
	}
}

// deadLetter sets m aside for good. If that fails, the message returns
// after its visibility timeout and is set aside at its next failure.
func (o *Orchestrator) deadLetter(ctx context.Context, name string, m *queue.Message, reason string) {
	o.log.Error("setting aside a message as a dead letter", "queue", name, "message_id", m.ID, "read_count", m.ReadCount, "reason", reason)
	if err := o.queue.MessageDeadLetter(ctx, &queue.DeadLetterParams{Queue: name, Receipt: m.Receipt(), Reason: reason}); err != nil {
		o.log.Error("setting aside a dead letter failed; the message returns after its visibility timeout", "queue", name, "message_id", m.ID, "error", err)
		return
	}
	o.deadLettered.Add(1)
}

// DeadLettered returns how many messages this orchestrator set aside as
// dead letters.
func (o *Orchestrator) DeadLettered() uint64 { return o.deadLettered.Load() }

// processResult handles a result message.
func (o *Orchestrator) processResult(ctx context.Context, tx store.Tx, rec *transition.Recorder, m *queue.Message) error {
	taskID, stepID, err := wire.DecodeStep(m.Body)
	if err != nil {
		return fmt.Errorf("%w: %w", errPoison, err)
	}
	return o.ProcessResultTx(ctx, tx, rec, taskID, stepID, nil)
}

// ProcessResultTx applies a step's reported outcome and moves its task on,
// inside the caller's transaction. A worker in the same process calls it in
// the transaction that stores the outcome, instead of sending a result
// message: one transaction and one hand-off fewer per step. Its report
// function then records the outcome on the step, under the task's lock,
// before orchestration looks at it. A step that is not waiting for
// orchestration (a duplicate) is left alone.
func (o *Orchestrator) ProcessResultTx(ctx context.Context, tx store.Tx, rec *transition.Recorder, taskID, stepID uuid.UUID,
	report func(*taskertype.Step) error,
) error {
	defer o.timed(o.clock.Now())
	task, steps, err := o.lockTask(ctx, tx, rec, taskID, stepID, false)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(steps, func(s *taskertype.Step) bool { return s.ID == stepID })
	if i < 0 {
		return fmt.Errorf("%w: task %s has no step %s", errPoison, taskID, stepID)
	}
	step := steps[i]
	if report != nil {
		if err := report(step); err != nil {
			return err
		}
	}
	now := o.clock.Now() // after the report, so that the log's times run forward
	switch step.State {
	case taskertype.StepEnqueuedForOrchestration:
		err = o.completeStep(ctx, tx, rec, task, &steps, step, now)
	case taskertype.StepEnqueuedAsErrorForOrchestration:
		err = o.judgeFailure(ctx, tx, rec, task, steps, step, now)
	default:
		return nil // already processed
	}
	if err == nil && o.cfg.DomainEvents != nil {
		err = o.cfg.DomainEvents(ctx, tx, rec, task, step)
	}
	if err != nil || task.State.Terminal() {
		return o.forgetIfStale(taskID, err)
	}
	isolated, err := o.isolatedWorkers(ctx, task, steps)
	if err != nil {
		return o.forgetIfStale(taskID, err)
	}
	return o.forgetIfStale(taskID, o.apply(ctx, tx, rec, task, makePlanIsolating(task.State, steps, taskertype.TaskEventStepFinished, now, isolated), now))
}

// judgeFailure applies the retry policy to a failed attempt.
func (o *Orchestrator) judgeFailure(ctx context.Context, tx store.Tx, rec *transition.Recorder, task *taskertype.Task,
	steps []*taskertype.Step, step *taskertype.Step, now time.Time,
) error {
	d := retry.Decide(step.Retry, step.Failure, step.Attempts, o.cfg.Rand)
	if !d.Retry {
		if done, err := o.batchWorkerFailed(ctx, tx, rec, task, steps, step, d.Reason, now); done || err != nil {
			return err
		}
		o.log.Info("step failed for good", "task_id", step.TaskID, "step", step.Name, "attempts", step.Attempts, "reason", d.Reason)
		return rec.Step(ctx, tx, step, taskertype.StepEventFailPermanently, now, nil)
	}
	at := now.Add(d.Delay)
	if err := rec.Step(ctx, tx, step, taskertype.StepEventScheduleRetry, now, func(s *taskertype.Step) { s.NextRetryAt = at }); err != nil {
		return err
	}
	return o.scheduleRetryDue(ctx, tx, task, d.Delay)
}

// processTaskCommand handles a task-level command, such as a retry coming due.
func (o *Orchestrator) processTaskCommand(ctx context.Context, tx store.Tx, rec *transition.Recorder, m *queue.Message) error {
	cmd, err := wire.DecodeTask(m.Body)
	if err != nil {
		return fmt.Errorf("%w: %w", errPoison, err)
	}
	if cmd.Kind != wire.KindRetryDue {
		return fmt.Errorf("%w: unknown task command %q", errPoison, cmd.Kind)
	}
	defer o.timed(o.clock.Now())
	now := o.clock.Now()
	task, steps, err := o.lockTask(ctx, tx, rec, cmd.TaskID, uuid.Nil, false)
	if err != nil || task.State.Terminal() {
		return err
	}
	isolated, err := o.isolatedWorkers(ctx, task, steps)
	if err != nil {
		return o.forgetIfStale(cmd.TaskID, err)
	}
	return o.forgetIfStale(cmd.TaskID, o.apply(ctx, tx, rec, task, makePlanIsolating(task.State, steps, taskertype.TaskEventRetryDue, now, isolated), now))
}
