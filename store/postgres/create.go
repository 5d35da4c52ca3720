package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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
	if err := p.Validate(); err != nil {
		return err
	}
	task := p.Task
	if x.tasks[task.ID] != nil {
		return fmt.Errorf("store: %s: task %s: %w", op, task.ID, store.ErrTaskExists)
	}
	for _, st := range p.Steps {
		if x.steps[st.ID] != nil {
			return fmt.Errorf("store: %s: task %s: step %s is stored already: %w", op, task.ID, st.ID, store.ErrTaskExists)
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
	x.keepInputs(task.ID, taskCtx, correlation{id: task.Request.CorrelationID, parent: task.Request.ParentCorrelationID})
	x.trans = append(x.trans, transitionRow{taskID: task.ID, to: string(taskertype.TaskPending),
		event: string(taskertype.TaskEventCreate), at: at, processor: p.Processor})

	whole := make([]*stepRow, 0, len(p.Steps))
	defer func() { x.holdWhole(task.ID, whole) }()
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
		whole = append(whole, sr)
		x.trans = append(x.trans, transitionRow{taskID: task.ID, stepID: st.ID, to: string(taskertype.StepPending),
			event: string(taskertype.StepEventCreate), at: at, processor: p.Processor})
	}
	return nil
}
