package tasker

import (
	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/taskertype"
)

// The engine's records and handler types live in the leaf package
// taskertype; these aliases let a program use them through tasker alone.
type (
	Task         = taskertype.Task
	Step         = taskertype.Step
	Transition   = taskertype.Transition
	TaskState    = taskertype.TaskState
	StepState    = taskertype.StepState
	StepFailure  = taskertype.StepFailure
	RetryPolicy  = taskertype.RetryPolicy
	Handler      = taskertype.Handler
	HandlerFunc  = taskertype.HandlerFunc
	StepInput    = taskertype.StepInput
	HandlerError = taskertype.HandlerError
	Clock        = taskertype.Clock

	// Event is a committed state change, delivered to subscribers.
	Event = events.Event
	// EventFilter selects events; the zero value selects all.
	EventFilter = events.Filter
	// Subscription receives events until closed.
	Subscription = events.Subscription
)

// Event kinds.
const (
	EventTaskTransition = events.KindTaskTransition
	EventStepTransition = events.KindStepTransition
)

// Permanent marks a handler's error as not worth retrying.
func Permanent(err error) error { return taskertype.Permanent(err) }

// RetryAfter marks a handler's error as retryable after d, overriding the
// step's backoff.
var RetryAfter = taskertype.RetryAfter
