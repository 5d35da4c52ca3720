package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// StepCreate implements store.Tx without a round trip of its own when the
// transaction holds the task and its steps (orchestration's does): the
// steps are held and inserted with the transaction's next round trip, in
// one multi-row INSERT, as TaskCreate's are. Otherwise the task is locked
// and its steps read first.
func (x *tx) StepCreate(ctx context.Context, p *store.StepCreateParams) error {
	const op = "step create"
	if err := x.check(op); err != nil {
		return err
	}
	if p == nil {
		return invalid(op, "no params")
	}
	task := x.tasks[p.TaskID]
	if task == nil {
		if _, err := x.TaskGetForUpdate(ctx, p.TaskID); err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
		task = x.tasks[p.TaskID]
	}
	existing, err := x.StepList(ctx, p.TaskID)
	if err != nil {
		return err
	}
	if err := p.Validate(existing); err != nil {
		return err
	}
	at := x.at(p.At)
	whole, held := x.whole[p.TaskID]
	for _, st := range p.Steps {
		st.TaskID, st.State = p.TaskID, taskertype.StepPending
		st.CreatedAt, st.UpdatedAt = at, at
		c := copyStep(st, true)
		c.Attempts, c.Result, c.Failure = 0, nil, nil
		c.NextRetryAt, c.StartedAt, c.FinishedAt = time.Time{}, time.Time{}, time.Time{}
		sortIDs(c.DependsOn)
		sr := &stepRow{step: *c, mode: stepInsert}
		x.holdStep(sr)
		x.newSteps = append(x.newSteps, sr)
		whole = append(whole, sr)
		x.trans = append(x.trans, transitionRow{taskID: p.TaskID, stepID: st.ID, to: string(taskertype.StepPending),
			event: string(taskertype.StepEventCreate), at: at, processor: p.Processor})
	}
	if held {
		x.holdWhole(p.TaskID, whole)
	}
	if task != nil {
		task.task.Revision++
		task.dirty = task.inserted
	}
	return nil
}
