package orchestration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// CancelTask cancels a task that has not finished, and every step of it that
// has not finished. A handler already running has its context cancelled
// (in this process at once, in others on the notification after the
// commit); its result is discarded if it arrives.
func (o *Orchestrator) CancelTask(ctx context.Context, id uuid.UUID) error {
	return o.operate(ctx, id, "cancel", func(tx store.Tx, rec *transition.Recorder, task *taskertype.Task, steps []*taskertype.Step, now time.Time) error {
		if task.State.Terminal() {
			return fmt.Errorf("%w: task %s is already %s", taskertype.ErrInvalid, id, task.State)
		}
		for _, s := range steps {
			if !s.State.Terminal() {
				if err := rec.Step(ctx, tx, s, taskertype.StepEventCancel, now, nil); err != nil {
					return err
				}
			}
		}
		return rec.Task(ctx, tx, task, taskertype.TaskEventCancel, now)
	})
}

// ResetTask runs a task that ended in error again: its failed steps (and any
// still waiting for a retry) go back to pending with their attempts cleared,
// and the task starts again from pending.
func (o *Orchestrator) ResetTask(ctx context.Context, id uuid.UUID) error {
	return o.operate(ctx, id, "reset", func(tx store.Tx, rec *transition.Recorder, task *taskertype.Task, steps []*taskertype.Step, now time.Time) error {
		if task.State != taskertype.TaskError {
			return fmt.Errorf("%w: task %s is %s; only a task in error can be reset", taskertype.ErrInvalid, id, task.State)
		}
		for _, s := range steps {
			if s.State == taskertype.StepError || s.State == taskertype.StepWaitingForRetry {
				if err := rec.Step(ctx, tx, s, taskertype.StepEventReset, now, resetAttempts); err != nil {
					return err
				}
			}
		}
		if err := rec.Task(ctx, tx, task, taskertype.TaskEventReset, now); err != nil {
			return err
		}
		return o.apply(ctx, tx, rec, task, makePlan(task.State, steps, "", now), now)
	})
}

// ResolveTask marks a task that is blocked by failures or in error as
// resolved by hand. It is terminal: its unfinished steps are cancelled (a
// failed step stays in error, as the record of what failed).
func (o *Orchestrator) ResolveTask(ctx context.Context, id uuid.UUID) error {
	return o.operate(ctx, id, "resolve", func(tx store.Tx, rec *transition.Recorder, task *taskertype.Task, steps []*taskertype.Step, now time.Time) error {
		if _, err := taskertype.NextTaskState(task.State, taskertype.TaskEventResolveManually); err != nil {
			return fmt.Errorf("%w: %w", taskertype.ErrInvalid, err)
		}
		for _, s := range steps {
			if !s.State.Terminal() && s.State != taskertype.StepError {
				if err := rec.Step(ctx, tx, s, taskertype.StepEventCancel, now, nil); err != nil {
					return err
				}
			}
		}
		return rec.Task(ctx, tx, task, taskertype.TaskEventResolveManually, now)
	})
}

// ResolveStep marks a step as resolved by hand: its dependents may run, with
// a null result for it. The task moves on if it is running, and resumes if
// it was blocked by failures or in error and no failed step is left.
func (o *Orchestrator) ResolveStep(ctx context.Context, taskID uuid.UUID, step string) error {
	return o.operateStep(ctx, taskID, step, taskertype.StepEventResolveManually, func(s *taskertype.Step) {
		if holdsCheckpoint(s.Result) {
			s.Result = nil // an unfinished batch worker's checkpoint is no result
		}
	})
}

// CompleteStep marks a step as complete by hand with result as its result
// (JSON; null when empty). The task moves on as for ResolveStep.
func (o *Orchestrator) CompleteStep(ctx context.Context, taskID uuid.UUID, step string, result json.RawMessage) error {
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	if !json.Valid(result) {
		return fmt.Errorf("%w: the result for step %q is not valid JSON", taskertype.ErrInvalid, step)
	}
	return o.operateStep(ctx, taskID, step, taskertype.StepEventCompleteManually, func(s *taskertype.Step) { s.Result = result })
}

// ResetStep sends a failed step, or one waiting for a retry, back to pending
// with its attempts cleared. The task enqueues it if the task is running, or
// resumes and enqueues it if the task was blocked by failures or in error
// and no other failed step is left.
func (o *Orchestrator) ResetStep(ctx context.Context, taskID uuid.UUID, step string) error {
	return o.operateStep(ctx, taskID, step, taskertype.StepEventReset, resetAttempts)
}

func resetAttempts(s *taskertype.Step) {
	s.Attempts, s.NextRetryAt = 0, time.Time{}
}

func (o *Orchestrator) operateStep(ctx context.Context, taskID uuid.UUID, name string, ev taskertype.StepEvent, update func(*taskertype.Step)) error {
	return o.operate(ctx, taskID, string(ev)+" step "+name, func(tx store.Tx, rec *transition.Recorder, task *taskertype.Task, steps []*taskertype.Step, now time.Time) error {
		var step *taskertype.Step
		for _, s := range steps {
			if s.Name == name {
				step = s
			}
		}
		if step == nil {
			names := make([]string, len(steps))
			for i, s := range steps {
				names[i] = s.Name
			}
			return fmt.Errorf("%w: task %s has no step %q (steps: %v)", taskertype.ErrNotFound, taskID, name, names)
		}
		if task.State.Terminal() && task.State != taskertype.TaskError {
			// Its failed steps stay as the record of what failed.
			return fmt.Errorf("%w: task %s is %s: its steps can no longer change", taskertype.ErrInvalid, taskID, task.State)
		}
		if err := rec.Step(ctx, tx, step, ev, now, update); err != nil {
			if errors.Is(err, taskertype.ErrIllegalTransition) {
				return fmt.Errorf("%w: step %q is %s: %w", taskertype.ErrInvalid, name, step.State, err)
			}
			return err
		}
		trigger := taskertype.TaskEventStepFinished
		if task.State == taskertype.TaskBlockedByFailures || task.State == taskertype.TaskError {
			// The task goes on once no failed step is left.
			trigger = taskertype.TaskEventResume
		}
		return o.apply(ctx, tx, rec, task, makePlan(task.State, steps, trigger, now), now)
	})
}

// operate runs an operator's change on a task under the lock of the task and
// of all its steps. A worker does not always hold the task while it moves a
// step (it starts a step, or records an outcome, under the step's lock
// alone), so the task's lock alone would let a step move between the read
// and the compare-and-set, and the operator would see a spurious
// ErrStaleState. An operator sees an error only for the state the task or
// the step is in.
func (o *Orchestrator) operate(ctx context.Context, id uuid.UUID, what string,
	fn func(tx store.Tx, rec *transition.Recorder, task *taskertype.Task, steps []*taskertype.Step, now time.Time) error,
) error {
	err := o.tx(ctx, func(tx store.Tx, rec *transition.Recorder) error {
		if _, err := tx.Prefetch(ctx, &store.PrefetchParams{TaskIDs: []uuid.UUID{id}}); err != nil {
			return err
		}
		task, steps, err := o.lockTask(ctx, tx, rec, id, uuid.Nil, true)
		if err != nil {
			return err
		}
		var running []*taskertype.Step
		for _, s := range steps {
			if s.State == taskertype.StepInProgress {
				running = append(running, s)
			}
		}
		if err := fn(tx, rec, task, steps, o.clock.Now()); err != nil {
			return err
		}
		return o.notifyStopped(ctx, tx, running)
	})
	if err != nil {
		return fmt.Errorf("%s task %s: %w", what, id, o.forgetIfStale(id, err))
	}
	return nil
}

// notifyStopped tells the workers of every process, once tx commits, that
// steps they may be running were taken out of progress (cancelled, resolved
// or completed by hand), so they stop those handlers at once instead of at
// their next check. running are the steps that were in progress before the
// operator's change; rec.Step moved those it changed.
func (o *Orchestrator) notifyStopped(ctx context.Context, tx store.Tx, running []*taskertype.Step) error {
	for _, s := range running {
		if s.State != taskertype.StepInProgress {
			if err := tx.Notify(ctx, queue.StepsStoppedChannel); err != nil && !errors.Is(err, errors.ErrUnsupported) {
				return err
			}
			return nil
		}
	}
	return nil
}
