package sqlite

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// StepCreate implements store.Tx: the steps and their edges are inserted at
// once, with the statements TaskCreate uses, and added to the transaction's
// copy of the task's rows, which the row cache takes at the commit.
func (t *tx) StepCreate(ctx context.Context, p *store.StepCreateParams) error {
	const op = "step create"
	if err := t.check(op); err != nil {
		return err
	}
	if p == nil {
		return fmt.Errorf("store: %s: no params: %w", op, taskertype.ErrInvalid)
	}
	r, err := t.load(p.TaskID)
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if err := p.Validate(r.steps); err != nil {
		return err
	}
	at := t.at(p.At)
	atUS := sqlitedb.Micros(at)
	taskID := p.TaskID.String()
	steps := make([][]any, len(p.Steps))
	var edges [][]any
	for i, st := range p.Steps {
		stepID := st.ID.String()
		rp := st.Retry
		steps[i] = []any{stepID, taskID, st.Name, st.Handler, st.Position, string(taskertype.StepPending), 0,
			rp.Retryable, rp.MaxAttempts, string(rp.Backoff), rp.Base.Microseconds(), rp.Cap.Microseconds(), rp.Jitter,
			st.Timeout.Microseconds(), atUS, atUS}
		for _, dep := range st.DependsOn {
			edges = append(edges, []any{taskID, dep.String(), stepID})
		}
	}
	if err := t.s.w.stepInsert.exec(t.ctx, t.stmt, steps); err != nil {
		if sqlitedb.IsUniqueViolation(err) {
			return fmt.Errorf("store: %s: task %s: a step ID is taken: %w", op, p.TaskID, taskertype.ErrInvalid)
		}
		return fmt.Errorf("store: %s: steps of task %s: %w", op, p.TaskID, err)
	}
	if err := t.s.w.edgeInsert.exec(t.ctx, t.stmt, edges); err != nil {
		return fmt.Errorf("store: %s: edges of task %s: %w", op, p.TaskID, err)
	}
	for _, st := range p.Steps {
		st.TaskID, st.State = p.TaskID, taskertype.StepPending
		st.CreatedAt, st.UpdatedAt = at, at
		t.trans = append(t.trans, transitionRow{task: p.TaskID, taskID: taskID, stepID: st.ID.String(),
			to: string(taskertype.StepPending), event: string(taskertype.StepEventCreate), at: atUS, processor: p.Processor})
		deps := slices.Clone(st.DependsOn)
		sortIDs(deps)
		r.steps = append(r.steps, &taskertype.Step{ID: st.ID, TaskID: p.TaskID, Name: st.Name, Handler: st.Handler, Position: st.Position,
			State: taskertype.StepPending, DependsOn: deps, Retry: st.Retry,
			Timeout: st.Timeout.Truncate(time.Microsecond), CreatedAt: stored(at), UpdatedAt: stored(at)})
	}
	slices.SortStableFunc(r.steps, cmpPosition)
	// The ID texts follow the steps' order (r.text[i+1] is r.steps[i]'s),
	// and the new steps are not in the cache's step → task index yet.
	text := make([]string, 1+len(r.steps))
	text[0] = r.text[0]
	for i, s := range r.steps {
		text[i+1] = s.ID.String()
	}
	r.text, r.indexed = text, false
	t.unindexed(r)
	r.task.Revision++
	r.taskDirty = true
	return nil
}
