package taskertype

import (
	"errors"
	"strings"
	"testing"
)

// The expected machines, written out independently of the rule tables so that
// a change to either shows up as a failure here.
var wantTask = map[TaskState]map[TaskEvent]TaskState{
	TaskPending:        {TaskEventStart: TaskInitializing, TaskEventCancel: TaskCancelled},
	TaskInitializing:   {TaskEventReadyStepsFound: TaskEnqueuingSteps, TaskEventAllStepsComplete: TaskComplete, TaskEventNoReadySteps: TaskWaitingForDependencies, TaskEventPermanentFailure: TaskBlockedByFailures, TaskEventCancel: TaskCancelled},
	TaskEnqueuingSteps: {TaskEventStepsEnqueued: TaskStepsInProcess, TaskEventEnqueueFailed: TaskError, TaskEventCancel: TaskCancelled},
	TaskStepsInProcess: {TaskEventStepFinished: TaskEvaluatingResults, TaskEventRetryScheduled: TaskWaitingForRetry, TaskEventRetryDue: TaskEvaluatingResults, TaskEventCancel: TaskCancelled},
	TaskEvaluatingResults: {TaskEventAllStepsComplete: TaskComplete, TaskEventReadyStepsFound: TaskEnqueuingSteps, TaskEventNoReadySteps: TaskWaitingForDependencies,
		TaskEventPermanentFailure: TaskBlockedByFailures, TaskEventRetryScheduled: TaskWaitingForRetry, TaskEventCancel: TaskCancelled},
	TaskWaitingForDependencies: {TaskEventStepFinished: TaskEvaluatingResults, TaskEventRetryDue: TaskEvaluatingResults, TaskEventCancel: TaskCancelled},
	TaskWaitingForRetry:        {TaskEventRetryDue: TaskEnqueuingSteps, TaskEventStepFinished: TaskEvaluatingResults, TaskEventCancel: TaskCancelled},
	TaskBlockedByFailures:      {TaskEventGiveUp: TaskError, TaskEventResolveManually: TaskResolvedManually, TaskEventResume: TaskEvaluatingResults, TaskEventCancel: TaskCancelled},
	TaskError:                  {TaskEventReset: TaskPending, TaskEventResolveManually: TaskResolvedManually, TaskEventResume: TaskEvaluatingResults},
	TaskComplete:               {},
	TaskCancelled:              {},
	TaskResolvedManually:       {},
}

func operatorStepEvents(extra map[StepEvent]StepState) map[StepEvent]StepState {
	m := map[StepEvent]StepState{StepEventResolveManually: StepResolvedManually, StepEventCompleteManually: StepComplete, StepEventCancel: StepCancelled}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

var wantStep = map[StepState]map[StepEvent]StepState{
	StepPending:                         operatorStepEvents(map[StepEvent]StepState{StepEventEnqueue: StepEnqueued}),
	StepEnqueued:                        operatorStepEvents(map[StepEvent]StepState{StepEventStart: StepInProgress}),
	StepInProgress:                      operatorStepEvents(map[StepEvent]StepState{StepEventSucceed: StepEnqueuedForOrchestration, StepEventFail: StepEnqueuedAsErrorForOrchestration, StepEventRelease: StepEnqueued}),
	StepEnqueuedForOrchestration:        operatorStepEvents(map[StepEvent]StepState{StepEventComplete: StepComplete}),
	StepEnqueuedAsErrorForOrchestration: operatorStepEvents(map[StepEvent]StepState{StepEventScheduleRetry: StepWaitingForRetry, StepEventFailPermanently: StepError}),
	StepWaitingForRetry:                 operatorStepEvents(map[StepEvent]StepState{StepEventRetry: StepPending, StepEventReset: StepPending}),
	StepError:                           operatorStepEvents(map[StepEvent]StepState{StepEventReset: StepPending}),
	StepComplete:                        {},
	StepCancelled:                       {},
	StepResolvedManually:                {},
}

var allTaskEvents = []TaskEvent{TaskEventStart, TaskEventReadyStepsFound, TaskEventNoReadySteps, TaskEventAllStepsComplete,
	TaskEventStepsEnqueued, TaskEventEnqueueFailed, TaskEventStepFinished, TaskEventRetryScheduled, TaskEventRetryDue,
	TaskEventPermanentFailure, TaskEventGiveUp, TaskEventResume, TaskEventResolveManually, TaskEventReset, TaskEventCancel, TaskEventCreate}

var allStepEvents = []StepEvent{StepEventCreate, StepEventEnqueue, StepEventStart, StepEventSucceed, StepEventFail, StepEventRelease,
	StepEventComplete, StepEventScheduleRetry, StepEventFailPermanently, StepEventRetry, StepEventReset,
	StepEventResolveManually, StepEventCompleteManually, StepEventCancel}

func TestTaskMachineAcceptsExactlyTheLegalTransitions(t *testing.T) {
	if len(wantTask) != 12 {
		t.Fatalf("the task machine has %d states in this test, want 12", len(wantTask))
	}
	for _, from := range TaskStates {
		for _, ev := range allTaskEvents {
			want, legal := wantTask[from][ev]
			got, err := NextTaskState(from, ev)
			switch {
			case legal && err != nil:
				t.Errorf("%s --%s--> %s is legal but was refused: %v", from, ev, want, err)
			case legal && got != want:
				t.Errorf("%s --%s--> got %s, want %s", from, ev, got, want)
			case !legal && err == nil:
				t.Errorf("%s --%s--> %s is illegal but was accepted", from, ev, got)
			case !legal:
				var te *TransitionError
				if !errors.As(err, &te) || !errors.Is(err, ErrIllegalTransition) {
					t.Errorf("%s --%s-->: error %v is not a *TransitionError matching ErrIllegalTransition", from, ev, err)
				}
				if !strings.Contains(err.Error(), string(from)) || !strings.Contains(err.Error(), string(ev)) {
					t.Errorf("error %q does not name the state and the event", err)
				}
			}
		}
	}
}

func TestStepMachineAcceptsExactlyTheLegalTransitions(t *testing.T) {
	if len(wantStep) != 10 {
		t.Fatalf("the step machine has %d states in this test, want 10", len(wantStep))
	}
	for _, from := range StepStates {
		for _, ev := range allStepEvents {
			want, legal := wantStep[from][ev]
			got, err := NextStepState(from, ev)
			switch {
			case legal && (err != nil || got != want):
				t.Errorf("%s --%s--> want %s, got %s (err %v)", from, ev, want, got, err)
			case !legal && err == nil:
				t.Errorf("%s --%s--> %s is illegal but was accepted", from, ev, got)
			case !legal && !errors.Is(err, ErrIllegalTransition):
				t.Errorf("%s --%s-->: error %v does not match ErrIllegalTransition", from, ev, err)
			}
		}
	}
}

func TestTerminalStatesAcceptNothingButDocumentedOperatorEvents(t *testing.T) {
	for _, s := range TaskStates {
		if !s.Terminal() || s == TaskError {
			continue
		}
		_, err := NextTaskState(s, TaskEventCancel)
		if err == nil || !strings.Contains(err.Error(), "terminal") {
			t.Errorf("cancel from terminal %s: got %v, want a refusal saying the state is terminal", s, err)
		}
	}
}

func TestEveryStateIsReachableFromCreation(t *testing.T) {
	reach := map[TaskState]bool{TaskPending: true}
	for changed := true; changed; {
		changed = false
		for _, r := range TaskRules {
			if reach[r.From] && !reach[r.To] {
				reach[r.To], changed = true, true
			}
		}
	}
	for _, s := range TaskStates {
		if !reach[s] {
			t.Errorf("task state %s is unreachable from pending", s)
		}
	}
	sreach := map[StepState]bool{StepPending: true}
	for changed := true; changed; {
		changed = false
		for _, r := range StepRules {
			if sreach[r.From] && !sreach[r.To] {
				sreach[r.To], changed = true, true
			}
		}
	}
	for _, s := range StepStates {
		if !sreach[s] {
			t.Errorf("step state %s is unreachable from pending", s)
		}
	}
}
