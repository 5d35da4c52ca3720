package taskertype

import (
	"fmt"
	"slices"
	"strings"
)

// TaskEvent names why a task changes state.
type TaskEvent string

// Task events.
const (
	TaskEventStart            TaskEvent = "start"              // pending → initializing
	TaskEventReadyStepsFound  TaskEvent = "ready_steps_found"  // → enqueuing_steps
	TaskEventNoReadySteps     TaskEvent = "no_ready_steps"     // → waiting_for_dependencies
	TaskEventAllStepsComplete TaskEvent = "all_steps_complete" // → complete
	TaskEventStepsEnqueued    TaskEvent = "steps_enqueued"     // enqueuing_steps → steps_in_process
	TaskEventEnqueueFailed    TaskEvent = "enqueue_failed"     // enqueuing_steps → error
	TaskEventStepFinished     TaskEvent = "step_finished"      // → evaluating_results
	TaskEventRetryScheduled   TaskEvent = "retry_scheduled"    // → waiting_for_retry
	TaskEventRetryDue         TaskEvent = "retry_due"          // a step's backoff elapsed
	TaskEventPermanentFailure TaskEvent = "permanent_failure"  // → blocked_by_failures
	TaskEventGiveUp           TaskEvent = "give_up"            // blocked_by_failures → error
	TaskEventResume           TaskEvent = "resume"             // blocked_by_failures | error → evaluating_results (an operator fixed the failed steps)
	TaskEventResolveManually  TaskEvent = "resolve_manually"   // → resolved_manually
	TaskEventReset            TaskEvent = "reset"              // error → pending
	TaskEventCancel           TaskEvent = "cancel"             // any non-terminal → cancelled
	TaskEventCreate           TaskEvent = "create"             // "" → pending, the first record of a task
	// TaskEventStalenessTimeout: the staleness detector found the task
	// stuck in a waiting state past its threshold (template lifecycle,
	// staleness_action dlq or error): waiting_for_dependencies |
	// waiting_for_retry | steps_in_process → error.
	TaskEventStalenessTimeout TaskEvent = "staleness_timeout"
)

// StepEvent names why a step changes state.
type StepEvent string

// Step events.
const (
	StepEventCreate           StepEvent = "create"            // "" → pending, the first record of a step
	StepEventEnqueue          StepEvent = "enqueue"           // pending → enqueued
	StepEventStart            StepEvent = "start"             // enqueued → in_progress
	StepEventSucceed          StepEvent = "succeed"           // in_progress → enqueued_for_orchestration
	StepEventFail             StepEvent = "fail"              // in_progress → enqueued_as_error_for_orchestration
	StepEventRelease          StepEvent = "release"           // in_progress → enqueued (worker shut down before the handler ran to the end)
	StepEventComplete         StepEvent = "complete"          // enqueued_for_orchestration → complete
	StepEventScheduleRetry    StepEvent = "schedule_retry"    // enqueued_as_error_for_orchestration → waiting_for_retry
	StepEventFailPermanently  StepEvent = "fail_permanently"  // enqueued_as_error_for_orchestration → error
	StepEventRefuseOutcome    StepEvent = "refuse_outcome"    // enqueued_for_orchestration → error (a decision's or batch plan's outcome is invalid)
	StepEventCheckpointYield  StepEvent = "checkpoint_yield"  // in_progress → enqueued (a batch worker stored a checkpoint and runs again from it)
	StepEventContinueFailed   StepEvent = "continue_failed"   // enqueued_as_error_for_orchestration → complete (a batch worker's final failure under continue_on_failure)
	StepEventRetry            StepEvent = "retry"             // waiting_for_retry → pending
	StepEventReset            StepEvent = "reset"             // error | waiting_for_retry → pending (operator)
	StepEventResolveManually  StepEvent = "resolve_manually"  // non-terminal → resolved_manually (operator)
	StepEventCompleteManually StepEvent = "complete_manually" // non-terminal → complete (operator)
	StepEventCancel           StepEvent = "cancel"            // non-terminal → cancelled
)

// TaskRule is one legal task transition.
type TaskRule struct {
	From  TaskState
	Event TaskEvent
	To    TaskState
}

// StepRule is one legal step transition.
type StepRule struct {
	From  StepState
	Event StepEvent
	To    StepState
}

// TaskRules is the task state machine: every legal (from, event) → to.
// Rules marked "added" are not in the original system's machine; each closes
// a gap the original leaves to ad-hoc code (see docs/state-machines.md).
var TaskRules = taskRules()

// StepRules is the step state machine: every legal (from, event) → to.
var StepRules = stepRules()

func taskRules() []TaskRule {
	r := []TaskRule{
		{TaskPending, TaskEventStart, TaskInitializing},
		{TaskInitializing, TaskEventReadyStepsFound, TaskEnqueuingSteps},
		{TaskInitializing, TaskEventAllStepsComplete, TaskComplete},
		{TaskInitializing, TaskEventNoReadySteps, TaskWaitingForDependencies},
		{TaskInitializing, TaskEventPermanentFailure, TaskBlockedByFailures}, // added
		{TaskEnqueuingSteps, TaskEventStepsEnqueued, TaskStepsInProcess},
		{TaskEnqueuingSteps, TaskEventEnqueueFailed, TaskError},
		{TaskStepsInProcess, TaskEventStepFinished, TaskEvaluatingResults},
		{TaskStepsInProcess, TaskEventRetryScheduled, TaskWaitingForRetry},
		{TaskStepsInProcess, TaskEventRetryDue, TaskEvaluatingResults}, // added
		{TaskEvaluatingResults, TaskEventAllStepsComplete, TaskComplete},
		{TaskEvaluatingResults, TaskEventReadyStepsFound, TaskEnqueuingSteps},
		{TaskEvaluatingResults, TaskEventNoReadySteps, TaskWaitingForDependencies},
		{TaskEvaluatingResults, TaskEventPermanentFailure, TaskBlockedByFailures},
		{TaskEvaluatingResults, TaskEventRetryScheduled, TaskWaitingForRetry}, // added
		{TaskWaitingForDependencies, TaskEventStepFinished, TaskEvaluatingResults},
		{TaskWaitingForDependencies, TaskEventRetryDue, TaskEvaluatingResults}, // added
		{TaskWaitingForRetry, TaskEventRetryDue, TaskEnqueuingSteps},
		{TaskWaitingForRetry, TaskEventStepFinished, TaskEvaluatingResults}, // added
		{TaskBlockedByFailures, TaskEventGiveUp, TaskError},
		{TaskBlockedByFailures, TaskEventResolveManually, TaskResolvedManually},
		{TaskBlockedByFailures, TaskEventResume, TaskEvaluatingResults}, // added
		{TaskError, TaskEventReset, TaskPending},
		{TaskError, TaskEventResolveManually, TaskResolvedManually},        // added
		{TaskError, TaskEventResume, TaskEvaluatingResults},                // added
		{TaskWaitingForDependencies, TaskEventStalenessTimeout, TaskError}, // added: tasker-core's detector writes it outside its machine
		{TaskWaitingForRetry, TaskEventStalenessTimeout, TaskError},        // added
		{TaskStepsInProcess, TaskEventStalenessTimeout, TaskError},         // added
	}
	for _, s := range TaskStates {
		if !s.Terminal() {
			r = append(r, TaskRule{s, TaskEventCancel, TaskCancelled})
		}
	}
	return r
}

func stepRules() []StepRule {
	r := []StepRule{
		{StepPending, StepEventEnqueue, StepEnqueued},
		{StepEnqueued, StepEventStart, StepInProgress},
		{StepInProgress, StepEventSucceed, StepEnqueuedForOrchestration},
		{StepInProgress, StepEventFail, StepEnqueuedAsErrorForOrchestration},
		{StepInProgress, StepEventRelease, StepEnqueued},         // added
		{StepInProgress, StepEventCheckpointYield, StepEnqueued}, // added: issue 10 §3
		{StepEnqueuedForOrchestration, StepEventComplete, StepComplete},
		{StepEnqueuedForOrchestration, StepEventRefuseOutcome, StepError}, // added: issue 10
		{StepEnqueuedAsErrorForOrchestration, StepEventScheduleRetry, StepWaitingForRetry},
		{StepEnqueuedAsErrorForOrchestration, StepEventFailPermanently, StepError},
		{StepEnqueuedAsErrorForOrchestration, StepEventContinueFailed, StepComplete}, // added: issue 10 §3
		{StepWaitingForRetry, StepEventRetry, StepPending},
		{StepError, StepEventReset, StepPending},
		{StepWaitingForRetry, StepEventReset, StepPending},
	}
	for _, s := range StepStates {
		if s.Terminal() {
			continue
		}
		r = append(r,
			StepRule{s, StepEventResolveManually, StepResolvedManually},
			StepRule{s, StepEventCompleteManually, StepComplete},
			StepRule{s, StepEventCancel, StepCancelled},
		)
	}
	return r
}

type taskKey struct {
	from  TaskState
	event TaskEvent
}

type stepKey struct {
	from  StepState
	event StepEvent
}

var (
	taskTable = func() map[taskKey]TaskState {
		m := make(map[taskKey]TaskState, len(TaskRules))
		for _, r := range TaskRules {
			m[taskKey{r.From, r.Event}] = r.To
		}
		return m
	}()
	stepTable = func() map[stepKey]StepState {
		m := make(map[stepKey]StepState, len(StepRules))
		for _, r := range StepRules {
			m[stepKey{r.From, r.Event}] = r.To
		}
		return m
	}()
)

// NextTaskState returns the state that event moves a task in from to, or a
// *TransitionError when the state machine has no such transition.
func NextTaskState(from TaskState, event TaskEvent) (TaskState, error) {
	if to, ok := taskTable[taskKey{from, event}]; ok {
		return to, nil
	}
	var allowed []string
	for _, r := range TaskRules {
		if r.From == from {
			allowed = append(allowed, string(r.Event))
		}
	}
	return "", &TransitionError{Machine: "task", From: string(from), Event: string(event), Allowed: allowed}
}

// NextStepState returns the state that event moves a step in from to, or a
// *TransitionError when the state machine has no such transition.
func NextStepState(from StepState, event StepEvent) (StepState, error) {
	if to, ok := stepTable[stepKey{from, event}]; ok {
		return to, nil
	}
	var allowed []string
	for _, r := range StepRules {
		if r.From == from {
			allowed = append(allowed, string(r.Event))
		}
	}
	return "", &TransitionError{Machine: "step", From: string(from), Event: string(event), Allowed: allowed}
}

// TransitionError says that a state machine has no transition for an event
// in a state. It matches ErrIllegalTransition with errors.Is.
type TransitionError struct {
	Machine string   // "task" or "step"
	From    string   // the current state
	Event   string   // the event that was refused
	Allowed []string // the events the machine accepts in From
}

func (e *TransitionError) Error() string {
	allowed := "none: the state is terminal"
	if len(e.Allowed) > 0 {
		a := slices.Clone(e.Allowed)
		slices.Sort(a)
		allowed = strings.Join(slices.Compact(a), ", ")
	}
	return fmt.Sprintf("illegal %s transition: event %q in state %q (events allowed there: %s)",
		e.Machine, e.Event, e.From, allowed)
}

// Is makes errors.Is(err, ErrIllegalTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrIllegalTransition }
