package store

import (
	"fmt"

	"github.com/tasker-go/tasker/taskertype"
)

// ErrTaskExists is wrapped by the error of Tx.TaskCreate when a task or a
// step with one of the given ids is stored already. It wraps
// taskertype.ErrInvalid. The engine makes its ids, so after a commit whose
// outcome it could not learn (the connection failed), finding them stored
// tells it the commit happened.
var ErrTaskExists = fmt.Errorf("the task already exists: %w", taskertype.ErrInvalid)

// ErrIdentityTaken is wrapped by the error of Tx.TaskCreate, or of the
// commit of its transaction, when a task with the same identity hash
// (taskertype.TaskRequest.IdentityHash) is stored already. It wraps
// taskertype.ErrDuplicateTask; the store does not know the other task's id:
// TaskList with TaskListParams.IdentityHash finds it.
var ErrIdentityTaken = fmt.Errorf("a task with the same identity hash is stored already: %w", taskertype.ErrDuplicateTask)
