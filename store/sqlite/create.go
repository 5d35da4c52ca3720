package sqlite

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

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
	if err := p.Validate(); err != nil {
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
	reqArgs, err := requestArgs(&task.Request)
	if err != nil {
		return fmt.Errorf("store: %s: task %s: %w", op, task.ID, err)
	}
	_, err = t.stmt(t.s.w.taskInsert).ExecContext(t.ctx, append([]any{
		taskID, task.Namespace, task.Name, task.Version, string(taskertype.TaskPending), taskCtx, atUS}, reqArgs...)...)
	if sqlitedb.IsUniqueViolation(err) {
		if strings.Contains(err.Error(), "identity_hash") {
			return fmt.Errorf("store: %s: task %s: identity %s: %w", op, task.ID, task.Request.IdentityHash, store.ErrIdentityTaken)
		}
		return fmt.Errorf("store: %s: task %s: %w", op, task.ID, store.ErrTaskExists)
	}
	if err != nil {
		return fmt.Errorf("store: %s: task %s: %w", op, task.ID, err)
	}
	steps := make([][]any, len(p.Steps))
	stepIDs := make([]string, len(p.Steps))
	var edges [][]any
	for i, st := range p.Steps {
		stepID := st.ID.String()
		stepIDs[i] = stepID
		r := st.Retry
		steps[i] = []any{stepID, taskID, st.Name, st.Handler, st.Position, string(taskertype.StepPending), 0,
			r.Retryable, r.MaxAttempts, string(r.Backoff), r.Base.Microseconds(), r.Cap.Microseconds(), r.Jitter,
			st.Timeout.Microseconds(), atUS, atUS}
		for _, dep := range st.DependsOn {
			edges = append(edges, []any{taskID, dep.String(), stepID})
		}
	}
	err = t.s.w.stepInsert.exec(t.ctx, t.stmt, steps)
	if sqlitedb.IsUniqueViolation(err) {
		return fmt.Errorf("store: %s: task %s: a step is stored already: %w", op, task.ID, store.ErrTaskExists)
	}
	if err != nil {
		return fmt.Errorf("store: %s: steps of task %s: %w", op, task.ID, err)
	}
	if err := t.s.w.edgeInsert.exec(t.ctx, t.stmt, edges); err != nil {
		return fmt.Errorf("store: %s: edges of task %s: %w", op, task.ID, err)
	}
	// Everything is inserted: now the log and the rows this transaction
	// keeps, made of exactly what was written (a caller's other fields, such
	// as a Revision or Attempts it set, are not stored, so not kept).
	task.State, task.Revision = taskertype.TaskPending, 0
	task.CreatedAt, task.UpdatedAt, task.FinishedAt = at, at, time.Time{}
	t.trans = append(t.trans, transitionRow{task: task.ID, taskID: taskID,
		to: string(taskertype.TaskPending), event: string(taskertype.TaskEventCreate), at: atUS, processor: p.Processor})
	kept := taskertype.Task{ID: task.ID, Namespace: task.Namespace, Name: task.Name, Version: task.Version,
		State: taskertype.TaskPending, Context: taskCtx, Request: task.Request, CreatedAt: stored(at), UpdatedAt: stored(at)}
	kept.Request.Tags = slices.Clone(task.Request.Tags)
	type keptStep struct {
		st   *taskertype.Step
		text string
	}
	ks := make([]keptStep, len(p.Steps))
	for i, st := range p.Steps {
		st.TaskID = task.ID
		st.State = taskertype.StepPending
		st.CreatedAt, st.UpdatedAt = at, at
		t.trans = append(t.trans, transitionRow{task: task.ID, taskID: taskID, stepID: stepIDs[i],
			to: string(taskertype.StepPending), event: string(taskertype.StepEventCreate), at: atUS, processor: p.Processor})
		deps := slices.Clone(st.DependsOn)
		sortIDs(deps)
		ks[i] = keptStep{text: stepIDs[i], st: &taskertype.Step{ID: st.ID, TaskID: task.ID, Name: st.Name, Handler: st.Handler, Position: st.Position,
			State: taskertype.StepPending, DependsOn: deps, Retry: st.Retry,
			Timeout: st.Timeout.Truncate(time.Microsecond), CreatedAt: stored(at), UpdatedAt: stored(at)}}
	}
	slices.SortStableFunc(ks, func(a, b keptStep) int { return cmpPosition(a.st, b.st) })
	rows := &taskRows{task: kept, steps: make([]*taskertype.Step, len(ks)), text: make([]string, 1+len(ks))}
	rows.text[0] = taskID
	for i, k := range ks {
		rows.steps[i], rows.text[i+1] = k.st, k.text
	}
	t.keep(rows)
	return nil
}

// cmpPosition orders steps as StepList does: by position, then by name.
func cmpPosition(a, b *taskertype.Step) int {
	if a.Position != b.Position {
		return a.Position - b.Position
	}
	return strings.Compare(a.Name, b.Name)
}
