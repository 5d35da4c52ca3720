// Package transition applies state-machine transitions inside a store
// transaction and remembers them, so that the events can be published once
// the transaction has committed (never before: a rolled-back change must not
// be announced).
package transition

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// Recorder applies transitions for one processor. It is not safe for
// concurrent use: each goroutine uses its own, and calls Reset at the start of
// each transaction attempt.
type Recorder struct {
	Processor string
	pending   []events.Event
	revisions map[uuid.UUID]int64  // revision bumps made, by task
	after     []func()             // run once the transaction committed
	ns        map[uuid.UUID]string // the namespaces of the tasks seen (NoteTask)
	// Reused by every transition, which the store does not keep (so that
	// they are not allocated per call).
	stepParams store.StepTransitionParams
	taskParams store.TaskTransitionParams
	next       taskertype.Step
}

// NoteTask tells the recorder task's namespace, which the events of its
// steps then carry.
func (r *Recorder) NoteTask(task *taskertype.Task) {
	if r.ns == nil {
		r.ns = make(map[uuid.UUID]string)
	}
	r.ns[task.ID] = task.Namespace
}

// Created records the creation of task (stored by the caller) so that it
// is announced as the task's first transition, "" → pending.
func (r *Recorder) Created(task *taskertype.Task, at time.Time) {
	r.NoteTask(task)
	r.pending = append(r.pending, events.Event{
		Kind: events.KindTaskTransition, TaskID: task.ID, To: string(taskertype.TaskPending),
		Event: string(taskertype.TaskEventCreate), At: at, Namespace: task.Namespace,
	})
}

// Reset forgets the transitions recorded so far (the transaction is being
// retried or was rolled back).
func (r *Recorder) Reset() {
	r.pending, r.after = r.pending[:0], r.after[:0]
	clear(r.revisions)
	clear(r.ns)
}

// Revisions returns how much the transitions recorded so far raised the
// task's Revision (taskertype.Task.Revision), by the store's rule.
func (r *Recorder) Revisions(taskID uuid.UUID) int64 { return r.revisions[taskID] }

func (r *Recorder) bump(taskID uuid.UUID) {
	if r.revisions == nil {
		r.revisions = make(map[uuid.UUID]int64)
	}
	r.revisions[taskID]++
}

// AfterCommit runs fn once the transaction committed, before its events are
// published; not at all if it rolls back.
func (r *Recorder) AfterCommit(fn func()) { r.after = append(r.after, fn) }

// Task moves task by event, as a compare-and-set from its current state, and
// updates task.State.
func (r *Recorder) Task(ctx context.Context, tx store.Tx, task *taskertype.Task, ev taskertype.TaskEvent, at time.Time) error {
	to, err := taskertype.NextTaskState(task.State, ev)
	if err != nil {
		return err
	}
	r.taskParams = store.TaskTransitionParams{ID: task.ID, From: task.State, To: to, Event: ev, At: at, Processor: r.Processor}
	if err := tx.TaskTransition(ctx, &r.taskParams); err != nil {
		return err
	}
	r.bump(task.ID)
	r.pending = append(r.pending, events.Event{
		Kind: events.KindTaskTransition, TaskID: task.ID, From: string(task.State), To: string(to), Event: string(ev), At: at,
		Namespace: task.Namespace,
	})
	r.NoteTask(task)
	task.State, task.UpdatedAt = to, at
	if to.Terminal() {
		task.FinishedAt = at
	}
	return nil
}

// Step moves step by event, as a compare-and-set from its current state.
// update, if not nil, changes the step's other fields first (attempts,
// result, failure, times); on error the step is left as it was. It is not
// fenced by an attempt: the writes of an attempt's outcome use
// StepOfAttempt.
func (r *Recorder) Step(ctx context.Context, tx store.Tx, step *taskertype.Step, ev taskertype.StepEvent, at time.Time, update func(*taskertype.Step)) error {
	return r.StepOfAttempt(ctx, tx, step, uuid.Nil, ev, at, update)
}

// StepOfAttempt is Step fenced by an attempt: when attempt is not uuid.Nil,
// the step moves only if the store's step carries that AttemptID (see
// store.StepTransitionParams.Attempt); a superseded attempt's outcome fails
// as stale and changes nothing.
func (r *Recorder) StepOfAttempt(ctx context.Context, tx store.Tx, step *taskertype.Step, attempt uuid.UUID, ev taskertype.StepEvent, at time.Time, update func(*taskertype.Step)) error {
	to, err := taskertype.NextStepState(step.State, ev)
	if err != nil {
		return err
	}
	next := &r.next
	*next = *step
	if update != nil {
		update(next)
	}
	next.State, next.UpdatedAt = to, at
	r.stepParams = store.StepTransitionParams{Step: next, From: step.State, Attempt: attempt, Event: ev, At: at, Processor: r.Processor}
	if err := tx.StepTransition(ctx, &r.stepParams); err != nil {
		return err
	}
	if taskertype.BumpsRevision(step.State, to) {
		r.bump(step.TaskID)
	}
	e := events.Event{
		Kind: events.KindStepTransition, TaskID: step.TaskID, StepID: step.ID, StepName: step.Name,
		From: string(step.State), To: string(to), Event: string(ev), At: at, Attempt: next.Attempts,
		Namespace: r.ns[step.TaskID], Handler: next.Handler,
	}
	if !next.StartedAt.IsZero() && next.FinishedAt.After(next.StartedAt) {
		e.Duration = next.FinishedAt.Sub(next.StartedAt)
	}
	if to == taskertype.StepEnqueuedAsErrorForOrchestration || to == taskertype.StepError || to == taskertype.StepWaitingForRetry {
		e.Failure = next.Failure
	}
	r.pending = append(r.pending, e)
	*step = *next
	return nil
}

// Publish announces the recorded transitions and forgets them. Call it after
// the transaction committed.
func (r *Recorder) Publish(bus *events.Bus) {
	for _, fn := range r.after {
		fn()
	}
	if bus != nil {
		for i := range r.pending {
			bus.Publish(&r.pending[i])
		}
	}
	r.Reset()
}

// InTx runs fn in a store transaction with a fresh Recorder, and publishes
// the recorded transitions on bus once the transaction committed.
func InTx(ctx context.Context, st store.Store, bus *events.Bus, processor string, fn func(tx store.Tx, rec *Recorder) error) error {
	rec := &Recorder{Processor: processor}
	err := st.InTx(ctx, func(tx store.Tx) error {
		rec.Reset()
		return fn(tx, rec)
	})
	if err != nil {
		return err
	}
	rec.Publish(bus)
	return nil
}
