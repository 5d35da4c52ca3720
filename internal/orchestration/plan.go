package orchestration

import (
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/taskertype"
)

// Plan is what orchestration does to a task after something happened to it:
// the task's path through its state machine and the steps to move on the way.
// It is computed by the pure function makePlan from the task's state and its
// steps, so every decision of the engine can be tested without a database.
type Plan struct {
	// Events is the task's path, applied in order. The step moves happen
	// just before the TaskEventStepsEnqueued event.
	Events []taskertype.TaskEvent
	// Retry lists steps whose backoff has elapsed: waiting_for_retry → pending.
	Retry []*taskertype.Step
	// Enqueue lists ready steps: pending → enqueued, with a message to a worker.
	Enqueue []*taskertype.Step
	// WakeAt, when set, asks for a retry_due wake-up at that time.
	WakeAt time.Time
}

// stepCounts summarises a task's steps for a decision.
type stepCounts struct {
	total, satisfied, inFlight, failed, waiting int
	ready, due                                  []*taskertype.Step
	earliestRetry                               time.Time
}

// isolated, when not nil, says which failed steps do not block the task
// while others can still make progress (batch workers under
// failure_strategy: isolate); they are not counted as failed.
func countSteps(steps []*taskertype.Step, now time.Time, isolated func(*taskertype.Step) bool) stepCounts {
	state := make(map[uuid.UUID]taskertype.StepState, len(steps))
	for _, s := range steps {
		state[s.ID] = s.State
	}
	depsDone := func(s *taskertype.Step) bool {
		for _, d := range s.DependsOn {
			if !state[d].SatisfiesDependency() {
				return false
			}
		}
		return true
	}
	c := stepCounts{total: len(steps)}
	for _, s := range steps {
		switch {
		case s.State.SatisfiesDependency():
			c.satisfied++
		case s.State.InFlight():
			c.inFlight++
		case s.State == taskertype.StepError:
			if isolated == nil || !isolated(s) {
				c.failed++
			}
		case s.State == taskertype.StepWaitingForRetry:
			if !s.NextRetryAt.After(now) && depsDone(s) {
				c.due = append(c.due, s)
				c.ready = append(c.ready, s)
				continue
			}
			c.waiting++
			if c.earliestRetry.IsZero() || s.NextRetryAt.Before(c.earliestRetry) {
				c.earliestRetry = s.NextRetryAt
			}
		case s.State == taskertype.StepPending:
			if depsDone(s) {
				c.ready = append(c.ready, s)
			}
		}
	}
	return c
}

// makePlan decides what happens to a task in its current state after trigger:
// TaskEventStepFinished (a result was processed), TaskEventRetryDue (a
// backoff may have elapsed), TaskEventResume (an operator acted on a step of
// a task blocked by failures or in error) or "" (the task was just created
// or reset).
func makePlan(state taskertype.TaskState, steps []*taskertype.Step, trigger taskertype.TaskEvent, now time.Time) Plan {
	return makePlanIsolating(state, steps, trigger, now, nil)
}

// makePlanIsolating is makePlan where the failed steps isolated says (not
// nil) do not stop the task while other steps can make progress: the task
// goes on with them, and fails (blocked, then error) once nothing else can
// move, the isolated steps left for an operator.
func makePlanIsolating(state taskertype.TaskState, steps []*taskertype.Step, trigger taskertype.TaskEvent, now time.Time,
	isolated func(*taskertype.Step) bool,
) Plan {
	var p Plan
	c := countSteps(steps, now, isolated)
	enqueueReady := func() {
		p.Retry, p.Enqueue = c.due, c.ready
	}
	switch state {
	case taskertype.TaskBlockedByFailures, taskertype.TaskError:
		if trigger == taskertype.TaskEventResume && c.failed == 0 {
			// No failed step is left: evaluate the task again. A retry
			// wake-up that came while it was in error was dropped, so one
			// is asked for again.
			p.Events = append(p.Events, taskertype.TaskEventResume)
			p.WakeAt = c.earliestRetry
			break
		}
		if state == taskertype.TaskBlockedByFailures && c.inFlight == 0 {
			p.Events = []taskertype.TaskEvent{taskertype.TaskEventGiveUp}
		}
		return p
	case taskertype.TaskPending:
		p.Events = append(p.Events, taskertype.TaskEventStart)
	case taskertype.TaskInitializing, taskertype.TaskEvaluatingResults:
	case taskertype.TaskEnqueuingSteps:
		// Not a resting state: only a transaction passes through it. Finish
		// the enqueue it was making.
		enqueueReady()
		p.Events = []taskertype.TaskEvent{taskertype.TaskEventStepsEnqueued}
		return p
	case taskertype.TaskWaitingForRetry:
		if trigger == taskertype.TaskEventRetryDue {
			if len(c.ready) == 0 {
				p.WakeAt = c.earliestRetry // woken early: wait again
				return p
			}
			enqueueReady()
			p.Events = []taskertype.TaskEvent{taskertype.TaskEventRetryDue, taskertype.TaskEventStepsEnqueued}
			return p
		}
		p.Events = append(p.Events, trigger)
	case taskertype.TaskStepsInProcess, taskertype.TaskWaitingForDependencies:
		if trigger == taskertype.TaskEventRetryDue && len(c.due) == 0 {
			p.WakeAt = c.earliestRetry
			return p
		}
		if trigger == "" {
			return p
		}
		p.Events = append(p.Events, trigger)
	default: // terminal
		return p
	}

	initializing := state == taskertype.TaskPending || state == taskertype.TaskInitializing
	switch {
	case c.satisfied == c.total:
		p.Events = append(p.Events, taskertype.TaskEventAllStepsComplete)
	case c.failed > 0:
		p.Events = append(p.Events, taskertype.TaskEventPermanentFailure)
		if c.inFlight == 0 {
			p.Events = append(p.Events, taskertype.TaskEventGiveUp)
		}
	case len(c.ready) > 0:
		enqueueReady()
		p.Events = append(p.Events, taskertype.TaskEventReadyStepsFound, taskertype.TaskEventStepsEnqueued)
	case c.inFlight > 0:
		p.Events = append(p.Events, taskertype.TaskEventNoReadySteps)
	case c.waiting > 0 && initializing:
		p.Events = append(p.Events, taskertype.TaskEventNoReadySteps)
		p.WakeAt = c.earliestRetry
	case c.waiting > 0:
		p.Events = append(p.Events, taskertype.TaskEventRetryScheduled)
	default:
		// Pending steps wait on a dependency that can never finish (it was
		// cancelled): nothing can make progress.
		p.Events = append(p.Events, taskertype.TaskEventPermanentFailure, taskertype.TaskEventGiveUp)
	}
	return p
}
