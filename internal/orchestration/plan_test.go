package orchestration

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/taskertype"
)

// dag builds steps from specs "name:state" or "name:state<-dep1,dep2".
func dag(t *testing.T, specs ...string) []*taskertype.Step {
	t.Helper()
	ids := map[string]uuid.UUID{}
	steps := make([]*taskertype.Step, len(specs))
	for i, spec := range specs {
		head, _, _ := strings.Cut(spec, "<-")
		name, state, _ := strings.Cut(head, ":")
		steps[i] = &taskertype.Step{ID: uuid.New(), Name: name, State: taskertype.StepState(state), Position: i}
		if !steps[i].State.Valid() {
			t.Fatalf("bad state in %q", spec)
		}
		ids[name] = steps[i].ID
	}
	for i, spec := range specs {
		if _, deps, ok := strings.Cut(spec, "<-"); ok {
			for _, d := range strings.Split(deps, ",") {
				id, ok := ids[d]
				if !ok {
					t.Fatalf("unknown dependency %q in %q", d, spec)
				}
				steps[i].DependsOn = append(steps[i].DependsOn, id)
			}
		}
	}
	return steps
}

func names(steps []*taskertype.Step) []string {
	var n []string
	for _, s := range steps {
		n = append(n, s.Name)
	}
	return n
}

func TestMakePlan(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type E = taskertype.TaskEvent
	cases := []struct {
		name    string
		state   taskertype.TaskState
		trigger taskertype.TaskEvent
		steps   []string
		events  []E
		enqueue []string
		retry   []string
		wake    bool
	}{
		{name: "a new task starts and enqueues its roots",
			state: taskertype.TaskPending, steps: []string{"a:pending", "b:pending<-a", "c:pending"},
			events: []E{"start", "ready_steps_found", "steps_enqueued"}, enqueue: []string{"a", "c"}},
		{name: "a finished step releases its dependent",
			state: taskertype.TaskStepsInProcess, trigger: "step_finished", steps: []string{"a:complete", "b:pending<-a"},
			events: []E{"step_finished", "ready_steps_found", "steps_enqueued"}, enqueue: []string{"b"}},
		{name: "a join waits while one branch is still running",
			state: taskertype.TaskStepsInProcess, trigger: "step_finished", steps: []string{"l:complete", "r:in_progress", "j:pending<-l,r"},
			events: []E{"step_finished", "no_ready_steps"}},
		{name: "a join runs once every branch finished",
			state: taskertype.TaskWaitingForDependencies, trigger: "step_finished", steps: []string{"l:complete", "r:complete", "j:pending<-l,r"},
			events: []E{"step_finished", "ready_steps_found", "steps_enqueued"}, enqueue: []string{"j"}},
		{name: "a manually resolved dependency counts as satisfied",
			state: taskertype.TaskWaitingForDependencies, trigger: "step_finished", steps: []string{"l:resolved_manually", "j:pending<-l"},
			events: []E{"step_finished", "ready_steps_found", "steps_enqueued"}, enqueue: []string{"j"}},
		{name: "the last step completes the task",
			state: taskertype.TaskStepsInProcess, trigger: "step_finished", steps: []string{"a:complete", "b:complete<-a"},
			events: []E{"step_finished", "all_steps_complete"}},
		{name: "a permanent failure with a branch still running blocks the task",
			state: taskertype.TaskStepsInProcess, trigger: "step_finished", steps: []string{"a:error", "b:in_progress", "c:pending<-a"},
			events: []E{"step_finished", "permanent_failure"}},
		{name: "a permanent failure with nothing running ends the task in error",
			state: taskertype.TaskStepsInProcess, trigger: "step_finished", steps: []string{"a:error", "c:pending<-a"},
			events: []E{"step_finished", "permanent_failure", "give_up"}},
		{name: "a blocked task gives up when its last running step reports",
			state: taskertype.TaskBlockedByFailures, trigger: "step_finished", steps: []string{"a:error", "b:complete"},
			events: []E{"give_up"}},
		{name: "a blocked task waits for its running steps",
			state: taskertype.TaskBlockedByFailures, trigger: "step_finished", steps: []string{"a:error", "b:enqueued_for_orchestration"}},
		{name: "a retryable failure with nothing else to do waits for the retry",
			state: taskertype.TaskStepsInProcess, trigger: "step_finished", steps: []string{"a:waiting_for_retry@future", "b:pending<-a"},
			events: []E{"step_finished", "retry_scheduled"}},
		{name: "a due retry is enqueued from waiting_for_retry",
			state: taskertype.TaskWaitingForRetry, trigger: "retry_due", steps: []string{"a:waiting_for_retry", "b:pending<-a"},
			events: []E{"retry_due", "steps_enqueued"}, retry: []string{"a"}, enqueue: []string{"a"}},
		{name: "an early retry wake-up waits again",
			state: taskertype.TaskWaitingForRetry, trigger: "retry_due", steps: []string{"a:waiting_for_retry@future"},
			wake: true},
		{name: "a due retry is enqueued while another step runs",
			state: taskertype.TaskWaitingForDependencies, trigger: "retry_due", steps: []string{"a:waiting_for_retry", "b:in_progress"},
			events: []E{"retry_due", "ready_steps_found", "steps_enqueued"}, retry: []string{"a"}, enqueue: []string{"a"}},
		{name: "a step finishing while another waits for retry returns to waiting",
			state: taskertype.TaskWaitingForRetry, trigger: "step_finished", steps: []string{"a:waiting_for_retry@future", "b:complete", "c:pending<-a,b"},
			events: []E{"step_finished", "retry_scheduled"}},
		{name: "a blocked task whose failed step was resolved resumes and waits for its running branch",
			state: taskertype.TaskBlockedByFailures, trigger: "resume", steps: []string{"a:resolved_manually", "b:in_progress", "c:pending<-a,b"},
			events: []E{"resume", "no_ready_steps"}},
		{name: "a task in error whose failed step was completed resumes and runs the dependent",
			state: taskertype.TaskError, trigger: "resume", steps: []string{"a:complete", "b:complete<-a", "c:pending<-b"},
			events: []E{"resume", "ready_steps_found", "steps_enqueued"}, enqueue: []string{"c"}},
		{name: "a task in error whose failed step was reset resumes and enqueues it",
			state: taskertype.TaskError, trigger: "resume", steps: []string{"a:complete", "b:pending<-a", "c:pending<-b"},
			events: []E{"resume", "ready_steps_found", "steps_enqueued"}, enqueue: []string{"b"}},
		{name: "a task in error with another failed step stays in error",
			state: taskertype.TaskError, trigger: "resume", steps: []string{"a:error", "b:resolved_manually", "c:pending<-a,b"}},
		{name: "a blocked task with another failed step and nothing running gives up",
			state: taskertype.TaskBlockedByFailures, trigger: "resume", steps: []string{"a:error", "b:cancelled"},
			events: []E{"give_up"}},
		{name: "a resumed task with a step waiting for a retry asks for a wake-up",
			state: taskertype.TaskError, trigger: "resume", steps: []string{"a:resolved_manually", "b:waiting_for_retry@future"},
			events: []E{"resume", "retry_scheduled"}, wake: true},
		{name: "terminal tasks are left alone",
			state: taskertype.TaskComplete, trigger: "step_finished", steps: []string{"a:complete"}},
		{name: "a task whose pending step depends on a cancelled step gives up",
			state: taskertype.TaskStepsInProcess, trigger: "step_finished", steps: []string{"a:cancelled", "b:pending<-a"},
			events: []E{"step_finished", "permanent_failure", "give_up"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var specs []string
			future := map[string]bool{}
			for _, s := range c.steps {
				if base, ok := strings.CutSuffix(s, "@future"); ok {
					s = base
					n, _, _ := strings.Cut(s, ":")
					future[n] = true
				}
				specs = append(specs, s)
			}
			steps := dag(t, specs...)
			for _, s := range steps {
				if s.State == taskertype.StepWaitingForRetry {
					s.NextRetryAt = now.Add(-time.Second)
					if future[s.Name] {
						s.NextRetryAt = now.Add(time.Minute)
					}
				}
			}
			p := makePlan(c.state, steps, c.trigger, now)
			if !slices.Equal(p.Events, c.events) {
				t.Errorf("events %v, want %v", p.Events, c.events)
			}
			if got := names(p.Enqueue); !slices.Equal(got, c.enqueue) {
				t.Errorf("enqueue %v, want %v", got, c.enqueue)
			}
			if got := names(p.Retry); !slices.Equal(got, c.retry) {
				t.Errorf("retry %v, want %v", got, c.retry)
			}
			if (!p.WakeAt.IsZero()) != c.wake {
				t.Errorf("wake at %v, want a wake-up: %v", p.WakeAt, c.wake)
			}
			// Every path must be legal in the task state machine.
			st := c.state
			for _, ev := range p.Events {
				next, err := taskertype.NextTaskState(st, ev)
				if err != nil {
					t.Fatalf("plan takes an illegal path: %v", err)
				}
				st = next
			}
		})
	}
}
