package taskertype

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// IdentityStrategy says how a template's tasks are told apart, so that
// creating the same task twice is caught (tasker-core's identity_strategy;
// docs/identity.md).
type IdentityStrategy string

// Identity strategies.
const (
	// IdentityStrict (the default): a task's identity is a hash of its
	// namespace, template name, version and canonical context; a second
	// task with the same identity is refused.
	IdentityStrict IdentityStrategy = "strict"
	// IdentityCallerProvided: the caller must give an idempotency key,
	// which is the task's identity.
	IdentityCallerProvided IdentityStrategy = "caller_provided"
	// IdentityAlwaysUnique: no check; every create makes a task (unless
	// an idempotency key is given).
	IdentityAlwaysUnique IdentityStrategy = "always_unique"
)

// IdentityStrategies lists the valid strategies.
var IdentityStrategies = []IdentityStrategy{IdentityStrict, IdentityCallerProvided, IdentityAlwaysUnique}

// Or returns s, or IdentityStrict when s is unset.
func (s IdentityStrategy) Or() IdentityStrategy {
	if s == "" {
		return IdentityStrict
	}
	return s
}

// ErrDuplicateTask: a task with the same identity (the same identity hash:
// the same template and context under the strict strategy, or the same
// idempotency key) exists already. The error is a *DuplicateTaskError,
// which carries the existing task's id.
var ErrDuplicateTask = errors.New("duplicate task")

// DuplicateTaskError is a create refused because a task with the same
// identity exists. It matches ErrDuplicateTask with errors.Is.
type DuplicateTaskError struct {
	// ExistingID is the id of the task that has the identity.
	ExistingID uuid.UUID
	// IdentityHash is the identity both share.
	IdentityHash string
	// ByKey: the identity came from an idempotency key.
	ByKey bool
}

func (e *DuplicateTaskError) Error() string {
	if e.ByKey {
		return fmt.Sprintf("duplicate task: task %s was created with the same idempotency key: use that task, or give another key", e.ExistingID)
	}
	return fmt.Sprintf("duplicate task: task %s was created from the same template and context (identity %s): use that task, give an idempotency key, or declare identity_strategy: always_unique in the template", e.ExistingID, e.IdentityHash)
}

// Is makes errors.Is(err, ErrDuplicateTask) true.
func (e *DuplicateTaskError) Is(target error) bool { return target == ErrDuplicateTask }

// TaskRequest holds what a task's creator said about it beyond the template
// and context: tasker-core's TaskRequest fields, and the task's identity.
type TaskRequest struct {
	// Priority: higher is claimed first, with aging (tasker-core's;
	// default 0; docs/identity.md).
	Priority int
	// CorrelationID ties the task to a request across systems; made (a
	// UUIDv7) when the creator gives none.
	CorrelationID uuid.UUID
	// ParentCorrelationID is the correlation id of the workflow that
	// started this one; zero for none.
	ParentCorrelationID uuid.UUID
	// Initiator, SourceSystem and Reason say who asked for the task, from
	// where and why; "" when not given.
	Initiator    string
	SourceSystem string
	Reason       string
	// Tags categorize the task; nil for none.
	Tags []string
	// IdempotencyKey is the caller's key, "" for none.
	IdempotencyKey string
	// IdentityHash is the task's identity (hex SHA-256), unique among
	// tasks; "" for a task of an always_unique template created without a
	// key.
	IdentityHash string
}
