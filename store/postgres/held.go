package postgres

import (
	"cmp"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/taskertype"
)

// holdWhole records that the transaction holds every step of task taskID:
// steps. A Prefetch reads all the steps of the tasks it locks, and a task
// created here has the steps it was created with; no other transaction can
// delete a step of a locked task, and no statement adds steps to a task
// after its creation.
func (x *tx) holdWhole(taskID uuid.UUID, steps []*stepRow) {
	if x.whole == nil {
		x.whole = make(map[uuid.UUID][]*stepRow)
	}
	x.whole[taskID] = steps
}

// stepsHeld answers StepList from the rows the transaction holds, as they
// are now (buffered changes included), when it holds every step of the
// task: copies with their DependsOn, ordered as stepListSQL orders them.
func (x *tx) stepsHeld(taskID uuid.UUID) ([]*taskertype.Step, bool) {
	rows, ok := x.whole[taskID]
	if !ok {
		return nil, false
	}
	steps := make([]*taskertype.Step, len(rows))
	for i, r := range rows {
		steps[i] = copyStep(&r.step, true)
		if len(steps[i].DependsOn) == 0 {
			steps[i].DependsOn = nil // as scanStep leaves it
		}
	}
	slices.SortFunc(steps, func(a, b *taskertype.Step) int {
		return cmp.Or(cmp.Compare(a.Position, b.Position), strings.Compare(a.Name, b.Name))
	})
	return steps, true
}
