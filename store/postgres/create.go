package postgres

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// TaskCreate implements store.Tx without a round trip: the task and its
// steps are held by the transaction and inserted, as they are by then,
// before its next read of steps or with its COMMIT. It sets the task's and
// the steps' State to pending, their CreatedAt and UpdatedAt to p.At and
// each step's TaskID. A task or a step ID that exists already makes that
// round trip fail with an error wrapping taskertype.ErrInvalid.
func (x *tx) TaskCreate(ctx context.Context, p *store.TaskCreateParams) error {
	const op = "task create"
	if err := x.check(op); err != nil {
		return err
	}
	if err := validateCreate(p); err != nil {
		return err
	}
	task := p.Task
	if x.tasks[task.ID] != nil {
		return invalid(op, "task %s already exists", task.ID)
	}
	for _, st := range p.Steps {
		if x.steps[st.ID] != nil {
			return invalid(op, "task %s: step %s already exists", task.ID, st.ID)
		}
	}
	at := x.at(p.At)
	taskCtx := json.RawMessage(task.Context)
	if len(taskCtx) == 0 {
		taskCtx = json.RawMessage("{}")
	}
	task.State, task.Revision = taskertype.TaskPending, 0
	task.CreatedAt, task.UpdatedAt, task.FinishedAt = at, at, time.Time{}
	r := &taskRow{task: *task}
	r.task.Context = nil
	x.hold(r)
	x.created = append(x.created, r)
	if x.contexts == nil {
		x.contexts = make(map[uuid.UUID]json.RawMessage)
	}
	x.contexts[task.ID] = taskCtx
	x.trans = append(x.trans, transitionRow{taskID: task.ID, to: string(taskertype.TaskPending),
		event: string(taskertype.TaskEventCreate), at: at, processor: p.Processor})

	for _, st := range p.Steps {
		st.TaskID, st.State = task.ID, taskertype.StepPending
		st.CreatedAt, st.UpdatedAt = at, at
		c := copyStep(st, true)
		// A step never run, whatever the caller's copy says.
		c.Attempts, c.Result, c.Failure = 0, nil, nil
		c.NextRetryAt, c.StartedAt, c.FinishedAt = time.Time{}, time.Time{}, time.Time{}
		sortIDs(c.DependsOn)
		sr := &stepRow{step: *c, mode: stepInsert}
		x.holdStep(sr)
		x.newSteps = append(x.newSteps, sr)
		x.trans = append(x.trans, transitionRow{taskID: task.ID, stepID: st.ID, to: string(taskertype.StepPending),
			event: string(taskertype.StepEventCreate), at: at, processor: p.Processor})
	}
	return nil
}

// validateCreate checks what the database cannot: the fields a task and its
// steps need, and that the dependencies name other steps of this task,
// each once, and form no cycle.
func validateCreate(p *store.TaskCreateParams) error {
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
		if st == nil {
			return invalid(op, "task %s: step %d is nil", task.ID, i)
		}
		if st.ID == uuid.Nil {
			return invalid(op, "task %s: step %q has no ID", task.ID, st.Name)
		}
		if st.Name == "" {
			return invalid(op, "task %s: step %s has no name", task.ID, st.ID)
		}
		if byName[st.Name] {
			return invalid(op, "task %s: two steps are named %q", task.ID, st.Name)
		}
		if byID[st.ID] != nil {
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
	for _, st := range p.Steps { // in template order, for a stable message
		if _, ok := waiting[st.ID]; ok {
			return invalid(op, "task %s: the dependencies of step %q form a cycle", task.ID, st.Name)
		}
	}
	return nil
}
