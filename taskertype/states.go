package taskertype

// TaskState is the state of a task. The zero value is not a valid state.
type TaskState string

// Task states. The last four are terminal.
const (
	TaskPending                TaskState = "pending"
	TaskInitializing           TaskState = "initializing"
	TaskEnqueuingSteps         TaskState = "enqueuing_steps"
	TaskStepsInProcess         TaskState = "steps_in_process"
	TaskEvaluatingResults      TaskState = "evaluating_results"
	TaskWaitingForDependencies TaskState = "waiting_for_dependencies"
	TaskWaitingForRetry        TaskState = "waiting_for_retry"
	TaskBlockedByFailures      TaskState = "blocked_by_failures"
	TaskComplete               TaskState = "complete"
	TaskError                  TaskState = "error"
	TaskCancelled              TaskState = "cancelled"
	TaskResolvedManually       TaskState = "resolved_manually"
)

// TaskStates lists every task state in lifecycle order.
var TaskStates = []TaskState{
	TaskPending, TaskInitializing, TaskEnqueuingSteps, TaskStepsInProcess,
	TaskEvaluatingResults, TaskWaitingForDependencies, TaskWaitingForRetry,
	TaskBlockedByFailures, TaskComplete, TaskError, TaskCancelled, TaskResolvedManually,
}

// Terminal reports whether no further transition is expected from s. A task
// in error is terminal but may still be reset to pending by an operator.
func (s TaskState) Terminal() bool {
	switch s {
	case TaskComplete, TaskError, TaskCancelled, TaskResolvedManually:
		return true
	}
	return false
}

// Valid reports whether s is one of the task states.
func (s TaskState) Valid() bool {
	for _, v := range TaskStates {
		if s == v {
			return true
		}
	}
	return false
}

// StepState is the state of a step. The zero value is not a valid state.
type StepState string

// Step states. Complete, cancelled and resolved_manually are terminal.
const (
	StepPending                         StepState = "pending"
	StepEnqueued                        StepState = "enqueued"
	StepInProgress                      StepState = "in_progress"
	StepEnqueuedForOrchestration        StepState = "enqueued_for_orchestration"
	StepEnqueuedAsErrorForOrchestration StepState = "enqueued_as_error_for_orchestration"
	StepWaitingForRetry                 StepState = "waiting_for_retry"
	StepError                           StepState = "error"
	StepComplete                        StepState = "complete"
	StepCancelled                       StepState = "cancelled"
	StepResolvedManually                StepState = "resolved_manually"
)

// StepStates lists every step state in lifecycle order.
var StepStates = []StepState{
	StepPending, StepEnqueued, StepInProgress, StepEnqueuedForOrchestration,
	StepEnqueuedAsErrorForOrchestration, StepWaitingForRetry, StepError,
	StepComplete, StepCancelled, StepResolvedManually,
}

// Terminal reports whether no transition leaves s.
func (s StepState) Terminal() bool {
	switch s {
	case StepComplete, StepCancelled, StepResolvedManually:
		return true
	}
	return false
}

// Valid reports whether s is one of the step states.
func (s StepState) Valid() bool {
	for _, v := range StepStates {
		if s == v {
			return true
		}
	}
	return false
}

// SatisfiesDependency reports whether a step in state s lets its dependents run.
func (s StepState) SatisfiesDependency() bool {
	return s == StepComplete || s == StepResolvedManually
}

// InFlight reports whether a step in state s is with a worker or on its way
// back to orchestration: the task must wait for it before it can finish.
func (s StepState) InFlight() bool {
	switch s {
	case StepEnqueued, StepInProgress, StepEnqueuedForOrchestration, StepEnqueuedAsErrorForOrchestration:
		return true
	}
	return false
}

// BumpsRevision reports whether a step transition from one state to another
// raises its task's Revision: it does when the step enters or leaves the
// in-flight states. The moves between in-flight states are the workers'
// (start, succeed, fail, release); orchestration counts them all as in
// flight, so they leave its view of the task unchanged.
func BumpsRevision(from, to StepState) bool { return from.InFlight() != to.InFlight() }
