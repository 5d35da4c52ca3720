package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// TaskCreate implements store.Tx. It sets the task's and the steps' State to
// pending, their CreatedAt and UpdatedAt to p.At and each step's TaskID; the
// other mutable fields of the steps are stored as for a step never run.
func (t *tx) TaskCreate(ctx context.Context, p *store.TaskCreateParams) error {
	const op = "task create"
	if err := t.check(op); err != nil {
		return err
	}
	if err := validateCreate(p); err != nil {
		return err
	}
	at := t.at(p.At)
	atUS := sqlitedb.Micros(at)
	task := p.Task
	taskID := task.ID.String()
	taskCtx := slices.Clone([]byte(task.Context)) // the cache keeps its own copy
	if len(taskCtx) == 0 {
		taskCtx = []byte("{}")
	}
	_, err := t.stmt(t.s.w.taskInsert).ExecContext(t.ctx,
		taskID, task.Namespace, task.Name, task.Version, string(taskertype.TaskPending), taskCtx, atUS)
	if sqlitedb.IsUniqueViolation(err) {
		return invalid(op, "task %s already exists", task.ID)
	}
	if err != nil {
		return fmt.Errorf("store: %s: task %s: %w", op, task.ID, err)
	}
	steps := make([][]any, len(p.Steps))
	var edges [][]any
	for i, st := range p.Steps {
		stepID := st.ID.String()
		r := st.Retry
		steps[i] = []any{stepID, taskID, st.Name, st.Handler, st.Position, string(taskertype.StepPending), 0,
			r.Retryable, r.MaxAttempts, string(r.Backoff), r.Base.Microseconds(), r.Cap.Microseconds(), r.Jitter,
			st.Timeout.Microseconds(), atUS, atUS}
		for _, dep := range st.DependsOn {
			edges = append(edges, []any{taskID, dep.String(), stepID})
		}
	}
	err = t.s.w.stepInsert.exec(t.ctx, t.tx, steps)
	if sqlitedb.IsUniqueViolation(err) {
		return invalid(op, "a step of task %s already exists", task.ID)
	}
	if err != nil {
		return fmt.Errorf("store: %s: steps of task %s: %w", op, task.ID, err)
	}
	if err := t.s.w.edgeInsert.exec(t.ctx, t.tx, edges); err != nil {
		return fmt.Errorf("store: %s: edges of task %s: %w", op, task.ID, err)
	}
	// Everything is inserted: now the log and the rows this transaction
	// keeps, made of exactly what was written (a caller's other fields, such
	// as a Revision or Attempts it set, are not stored, so not kept).
	task.State, task.Revision = taskertype.TaskPending, 0
	task.CreatedAt, task.UpdatedAt, task.FinishedAt = at, at, time.Time{}
	t.trans = append(t.trans, transitionRow{task: task.ID, taskID: taskID, stepID: nil,
		to: string(taskertype.TaskPending), event: string(taskertype.TaskEventCreate), at: atUS, processor: p.Processor})
	kept := taskertype.Task{ID: task.ID, Namespace: task.Namespace, Name: task.Name, Version: task.Version,
		State: taskertype.TaskPending, Context: taskCtx, CreatedAt: stored(at), UpdatedAt: stored(at)}
	rows := &taskRows{task: kept, steps: make([]*taskertype.Step, len(p.Steps))}
	for i, st := range p.Steps {
		st.TaskID = task.ID
		st.State = taskertype.StepPending
		st.CreatedAt, st.UpdatedAt = at, at
		t.trans = append(t.trans, transitionRow{task: task.ID, taskID: taskID, stepID: st.ID.String(),
			to: string(taskertype.StepPending), event: string(taskertype.StepEventCreate), at: atUS, processor: p.Processor})
		deps := slices.Clone(st.DependsOn)
		sortIDs(deps)
		rows.steps[i] = &taskertype.Step{ID: st.ID, TaskID: task.ID, Name: st.Name, Handler: st.Handler, Position: st.Position,
			State: taskertype.StepPending, DependsOn: deps, Retry: st.Retry,
			Timeout: st.Timeout.Truncate(time.Microsecond), CreatedAt: stored(at), UpdatedAt: stored(at)}
	}
	slices.SortStableFunc(rows.steps, func(a, b *taskertype.Step) int { return cmpPosition(a, b) })
	t.keep(rows)
	return nil
}

// validateCreate checks what the database cannot: the fields a task and its
// steps need, and that the dependencies name steps of this task and form no
// cycle.
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
	index := make(map[uuid.UUID]int, len(p.Steps))
	names := make(map[string]bool, len(p.Steps))
	for i, st := range p.Steps {
		switch {
		case st == nil:
			return invalid(op, "task %s: step %d is nil", task.ID, i)
		case st.ID == uuid.Nil:
			return invalid(op, "task %s: step %q has no ID", task.ID, st.Name)
		case st.Name == "":
			return invalid(op, "task %s: step %s has no name", task.ID, st.ID)
		case names[st.Name]:
			return invalid(op, "task %s: two steps are named %q", task.ID, st.Name)
		}
		if _, dup := index[st.ID]; dup {
			return invalid(op, "task %s: two steps have the ID %s", task.ID, st.ID)
		}
		index[st.ID] = i
		names[st.Name] = true
	}
	// Every dependency is a step of the list, named once; then a depth-first
	// walk finds any cycle.
	for _, st := range p.Steps {
		seen := make(map[uuid.UUID]bool, len(st.DependsOn))
		for _, dep := range st.DependsOn {
			if _, ok := index[dep]; !ok {
				return invalid(op, "task %s: step %q depends on %s, which is not a step of this task", task.ID, st.Name, dep)
			}
			if dep == st.ID {
				return invalid(op, "task %s: step %q depends on itself", task.ID, st.Name)
			}
			if seen[dep] {
				return invalid(op, "task %s: step %q depends on %s twice", task.ID, st.Name, dep)
			}
			seen[dep] = true
		}
	}
	const (
		unvisited = iota
		visiting
		visited
	)
	mark := make([]int, len(p.Steps))
	var visit func(i int) error
	visit = func(i int) error {
		switch mark[i] {
		case visiting:
			return invalid(op, "task %s: the dependencies of step %q form a cycle", task.ID, p.Steps[i].Name)
		case visited:
			return nil
		}
		mark[i] = visiting
		for _, dep := range p.Steps[i].DependsOn {
			if err := visit(index[dep]); err != nil {
				return err
			}
		}
		mark[i] = visited
		return nil
	}
	for i := range p.Steps {
		if err := visit(i); err != nil {
			return err
		}
	}
	return nil
}

// cmpPosition orders steps as StepList does: by position, then by name.
func cmpPosition(a, b *taskertype.Step) int {
	if a.Position != b.Position {
		return a.Position - b.Position
	}
	return strings.Compare(a.Name, b.Name)
}
