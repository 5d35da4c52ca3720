package orchestration

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/statemanager"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// TaskMachine is a task with its steps as orchestration left them after a
// commit: the state machines of the task and of its steps. It is never
// changed once cached; users take copies.
type TaskMachine struct {
	Task  taskertype.Task // without Context
	Steps []*taskertype.Step
}

// maxMachines bounds the state manager's cache: tasks in flight at once.
const maxMachines = 16384

func newMachines() (*statemanager.Cache[uuid.UUID, *TaskMachine], error) {
	return statemanager.New[uuid.UUID, *TaskMachine](statemanager.Config{MaxEntries: maxMachines})
}

// MachineStats returns the state manager's counters; zero without one.
func (o *Orchestrator) MachineStats() statemanager.Stats {
	if o.machines == nil {
		return statemanager.Stats{}
	}
	return o.machines.Stats()
}

// lockTask locks a task in tx and returns it with its steps, ready to be
// moved. Without a state manager the steps are read from the store. The
// steps come from the state manager when its machine is current
// (same Revision as the task row just locked) and from the store otherwise.
// The workers' moves inside the in-flight states do not change the revision,
// so a cached in-flight step may lag in its details: the step fresh, when
// given, is always read from the store, and so are all steps when all is set
// (an operator is about to move in-flight steps). After the commit, the state
// manager holds what the transaction left; a stale state met on the way
// drops the machine.
func (o *Orchestrator) lockTask(ctx context.Context, tx store.Tx, rec *transition.Recorder, id, fresh uuid.UUID, all bool) (*taskertype.Task, []*taskertype.Step, error) {
	task, err := tx.TaskGetForUpdate(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	rec.NoteTask(task)
	var steps []*taskertype.Step
	if o.machines == nil {
		steps, err = tx.StepList(ctx, id)
		return task, steps, err
	}
	m, ok := o.machines.Peek(id)
	hit := ok && !all && m.Task.Revision == task.Revision
	o.machines.Count(hit)
	if hit {
		steps = cloneSteps(m.Steps)
		if fresh != uuid.Nil {
			i := slices.IndexFunc(steps, func(s *taskertype.Step) bool { return s.ID == fresh })
			if i < 0 {
				return nil, nil, fmt.Errorf("%w: task %s has no step %s", errPoison, id, fresh)
			}
			cur, err := tx.StepGet(ctx, fresh)
			if err != nil {
				return nil, nil, err
			}
			cur.DependsOn = steps[i].DependsOn
			steps[i] = cur
		}
	} else if steps, err = tx.StepList(ctx, id); err != nil {
		return nil, nil, err
	}
	o.rememberAfterCommit(rec, task, steps)
	return task, steps, nil
}

// rememberAfterCommit puts the task and its steps, as the transaction will
// have left them, in the state manager once it commits. The revision they
// end at is the one read plus the bumps made from here on (they may include
// a later processing of the same task in the same transaction, whose own
// entry, put after this one, then wins).
func (o *Orchestrator) rememberAfterCommit(rec *transition.Recorder, task *taskertype.Task, steps []*taskertype.Step) {
	if o.machines == nil {
		return
	}
	base, from := task.Revision, rec.Revisions(task.ID)
	rec.AfterCommit(func() {
		if task.State.Terminal() {
			o.machines.Invalidate(task.ID)
			return
		}
		m := &TaskMachine{Task: *task, Steps: cloneSteps(steps)}
		m.Task.Context = nil
		m.Task.Revision = base + rec.Revisions(task.ID) - from
		o.machines.Put(task.ID, m)
	})
}

func cloneSteps(steps []*taskertype.Step) []*taskertype.Step {
	c := make([]*taskertype.Step, len(steps))
	for i, s := range steps {
		cp := *s
		if s.Failure != nil {
			f := *s.Failure
			cp.Failure = &f
		}
		c[i] = &cp
	}
	return c
}

// forgetIfStale drops a task's machine when err says something was stale,
// so that the next attempt reads the store.
func (o *Orchestrator) forgetIfStale(id uuid.UUID, err error) error {
	if o.machines != nil && errors.Is(err, taskertype.ErrStaleState) {
		o.machines.Invalidate(id)
	}
	return err
}
