package store

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/taskertype"
)

// The checks below are what every store does with its params before it
// touches anything: the same rules and the same errors on every backend.

func invalid(op, format string, args ...any) error {
	return fmt.Errorf("store: %s: %s: %w", op, fmt.Sprintf(format, args...), taskertype.ErrInvalid)
}

// Validate checks what a database cannot: the fields a task and its steps
// need, that a step's failure can be stored, and that the dependencies name
// other steps of this task, each once, and form no cycle. Its errors wrap
// taskertype.ErrInvalid.
func (p *TaskCreateParams) Validate() error {
	const op = "task create"
	if p == nil || p.Task == nil {
		return invalid(op, "no task")
	}
	task := p.Task
	switch {
	case task.ID == uuid.Nil:
		return invalid(op, "the task has no ID")
	case task.Namespace == "":
		return invalid(op, "task %s has no namespace", task.ID)
	case task.Name == "":
		return invalid(op, "task %s has no template name", task.ID)
	case len(task.Context) > 0 && !json.Valid(task.Context):
		return invalid(op, "task %s: the context is not valid JSON", task.ID)
	}
	byID := make(map[uuid.UUID]*taskertype.Step, len(p.Steps))
	byName := make(map[string]bool, len(p.Steps))
	for i, st := range p.Steps {
		switch {
		case st == nil:
			return invalid(op, "task %s: step %d is nil", task.ID, i)
		case st.ID == uuid.Nil:
			return invalid(op, "task %s: step %q has no ID", task.ID, st.Name)
		case st.Name == "":
			return invalid(op, "task %s: step %s has no name", task.ID, st.ID)
		case byName[st.Name]:
			return invalid(op, "task %s: two steps are named %q", task.ID, st.Name)
		case byID[st.ID] != nil:
			return invalid(op, "task %s: two steps have the ID %s", task.ID, st.ID)
		}
		if st.Failure != nil {
			if _, err := json.Marshal(st.Failure); err != nil {
				return invalid(op, "task %s: step %q: failure: %v", task.ID, st.Name, err)
			}
		}
		byID[st.ID], byName[st.Name] = st, true
	}
	for _, st := range p.Steps {
		for i, dep := range st.DependsOn {
			switch {
			case dep == st.ID:
				return invalid(op, "task %s: step %q depends on itself", task.ID, st.Name)
			case byID[dep] == nil:
				return invalid(op, "task %s: step %q depends on %s, which is not a step of this task", task.ID, st.Name, dep)
			case slices.Contains(st.DependsOn[:i], dep):
				return invalid(op, "task %s: step %q depends on %s twice", task.ID, st.Name, dep)
			}
		}
	}
	// Kahn's algorithm: the steps that remain once every step whose
	// dependencies are all done was taken out lie on a cycle.
	waiting := make(map[uuid.UUID]int, len(p.Steps))
	dependents := make(map[uuid.UUID][]uuid.UUID, len(p.Steps))
	var ready []uuid.UUID
	for _, st := range p.Steps {
		waiting[st.ID] = len(st.DependsOn)
		for _, dep := range st.DependsOn {
			dependents[dep] = append(dependents[dep], st.ID)
		}
		if len(st.DependsOn) == 0 {
			ready = append(ready, st.ID)
		}
	}
	for len(ready) > 0 {
		id := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		delete(waiting, id)
		for _, d := range dependents[id] {
			if waiting[d]--; waiting[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	for _, st := range p.Steps { // in the order given, for a stable message
		if _, ok := waiting[st.ID]; ok {
			return invalid(op, "task %s: the dependencies of step %q form a cycle", task.ID, st.Name)
		}
	}
	return nil
}

// Validate checks that p names a task and that its event leads from From
// to To. Its errors wrap taskertype.ErrInvalid, or
// taskertype.ErrIllegalTransition.
func (p *TaskTransitionParams) Validate() error {
	const op = "task transition"
	if p == nil || p.ID == uuid.Nil {
		return invalid(op, "no task ID")
	}
	next, err := taskertype.NextTaskState(p.From, p.Event)
	if err != nil {
		return fmt.Errorf("store: %s: task %s: %w", op, p.ID, err)
	}
	if next != p.To {
		return fmt.Errorf("store: %s: task %s: event %q in state %q leads to %q, not %q: %w",
			op, p.ID, p.Event, p.From, next, p.To, taskertype.ErrIllegalTransition)
	}
	return nil
}

// Validate checks that p carries a step with its IDs, that its event leads
// from From to the step's State, and that its failure can be stored. Its
// errors wrap taskertype.ErrInvalid, or taskertype.ErrIllegalTransition.
func (p *StepTransitionParams) Validate() error {
	const op = "step transition"
	if p == nil || p.Step == nil || p.Step.ID == uuid.Nil || p.Step.TaskID == uuid.Nil {
		return invalid(op, "no step, or a step without its ID and TaskID")
	}
	st := p.Step
	next, err := taskertype.NextStepState(p.From, p.Event)
	if err != nil {
		return fmt.Errorf("store: %s: step %s: %w", op, st.ID, err)
	}
	if next != st.State {
		return fmt.Errorf("store: %s: step %s: event %q in state %q leads to %q, not %q: %w",
			op, st.ID, p.Event, p.From, next, st.State, taskertype.ErrIllegalTransition)
	}
	if st.Failure != nil {
		if _, err := json.Marshal(st.Failure); err != nil {
			return invalid(op, "step %s: failure: %v", st.ID, err)
		}
	}
	return nil
}

// CheckAttempt is the fence of a step transition for the backends: nil when
// p names no attempt or the stored step cur carries p.Attempt, else the
// *taskertype.StaleStateError of a superseded attempt.
func CheckAttempt(p *StepTransitionParams, cur *taskertype.Step) error {
	if p.Attempt == uuid.Nil || cur.AttemptID == p.Attempt {
		return nil
	}
	return AttemptMismatch(p.Step.ID, p.From, p.Attempt, cur.State, cur.AttemptID)
}

// AttemptMismatch is the error of a step transition whose attempt was
// superseded: the step is in state actual, with attempt got, not want.
func AttemptMismatch(id uuid.UUID, from taskertype.StepState, want uuid.UUID, actual taskertype.StepState, got uuid.UUID) error {
	return &taskertype.StaleStateError{Kind: "step", ID: id.String(),
		Expected: fmt.Sprintf("%s (attempt %s)", from, want), Actual: fmt.Sprintf("%s (attempt %s)", actual, got)}
}

// Validate checks StepCreateParams against the steps the task has already
// (existing, as StepList returns them): each new step has an ID and a name
// no step of the task has, and depends only on steps of the task or of
// p.Steps, each once. New steps cannot close a cycle with the existing
// ones (nothing existing depends on a new step), so only the new steps'
// edges among themselves are checked for one. Its errors wrap
// taskertype.ErrInvalid.
func (p *StepCreateParams) Validate(existing []*taskertype.Step) error {
	const op = "step create"
	if p == nil || p.TaskID == uuid.Nil {
		return invalid(op, "no task ID")
	}
	if len(p.Steps) == 0 {
		return invalid(op, "task %s: no steps to create", p.TaskID)
	}
	known := make(map[uuid.UUID]bool, len(existing)+len(p.Steps))
	names := make(map[string]bool, len(existing)+len(p.Steps))
	for _, st := range existing {
		known[st.ID], names[st.Name] = true, true
	}
	fresh := make(map[uuid.UUID]*taskertype.Step, len(p.Steps))
	for i, st := range p.Steps {
		switch {
		case st == nil:
			return invalid(op, "task %s: step %d is nil", p.TaskID, i)
		case st.ID == uuid.Nil:
			return invalid(op, "task %s: step %q has no ID", p.TaskID, st.Name)
		case st.Name == "":
			return invalid(op, "task %s: step %s has no name", p.TaskID, st.ID)
		case names[st.Name]:
			return invalid(op, "task %s: a step named %q exists already", p.TaskID, st.Name)
		case known[st.ID]:
			return invalid(op, "task %s: a step with the ID %s exists already", p.TaskID, st.ID)
		}
		known[st.ID], names[st.Name], fresh[st.ID] = true, true, st
	}
	for _, st := range p.Steps {
		for i, dep := range st.DependsOn {
			switch {
			case dep == st.ID:
				return invalid(op, "task %s: step %q depends on itself", p.TaskID, st.Name)
			case !known[dep]:
				return invalid(op, "task %s: step %q depends on %s, which is not a step of this task", p.TaskID, st.Name, dep)
			case slices.Contains(st.DependsOn[:i], dep):
				return invalid(op, "task %s: step %q depends on %s twice", p.TaskID, st.Name, dep)
			}
		}
	}
	// A cycle among the new steps: walk each one's new dependencies.
	state := make(map[uuid.UUID]int8, len(fresh)) // 1 visiting, 2 done
	var visit func(id uuid.UUID) bool
	visit = func(id uuid.UUID) bool {
		switch state[id] {
		case 1:
			return false
		case 2:
			return true
		}
		state[id] = 1
		for _, dep := range fresh[id].DependsOn {
			if fresh[dep] != nil && !visit(dep) {
				return false
			}
		}
		state[id] = 2
		return true
	}
	for _, st := range p.Steps {
		if !visit(st.ID) {
			return invalid(op, "task %s: the dependencies of step %q form a cycle", p.TaskID, st.Name)
		}
	}
	return nil
}
