package taskertype

import (
	"errors"
	"fmt"
)

// Sentinel errors. Backends translate their own errors into these at the seam,
// so callers test with errors.Is and never with a driver's error type.
var (
	// ErrNotFound: no task, step, template or message with that identity.
	ErrNotFound = errors.New("not found")
	// ErrIllegalTransition: the state machine has no such transition.
	ErrIllegalTransition = errors.New("illegal state transition")
	// ErrStaleState: a compare-and-set found another state than expected,
	// because another process or a duplicate message moved it first.
	ErrStaleState = errors.New("stale state")
	// ErrClosed: the component was stopped or closed.
	ErrClosed = errors.New("closed")
	// ErrInvalid: the caller's input is malformed; the message says how.
	ErrInvalid = errors.New("invalid input")
	// ErrReleased: a handler gives its step back unfinished, because the
	// engine is stopping; the step runs again later, the attempt not
	// counted. Returned while the worker is not stopping, it is an ordinary
	// retryable failure under the step's retry policy.
	ErrReleased = errors.New("step released")
	// ErrHandedBack: a handler gives its step back without a verdict on
	// it, whether or not the engine is stopping: a pull worker released the
	// event it held (it deregistered, or stopped gracefully) or never
	// received it. The step is dispatched again at once, the attempt not
	// counted and no backoff applied. A worker that took a step and never
	// answered is no hand-back: its timeout counts as a failed attempt.
	ErrHandedBack = errors.New("step handed back without a verdict")
	// ErrQueueFull: new work is refused because a queue holds as much as
	// its bound allows; the message says which queue and what to do.
	ErrQueueFull = errors.New("queue full")
)

// StaleStateError is a failed compare-and-set: the record with ID was in
// Actual, not Expected. It matches ErrStaleState with errors.Is.
type StaleStateError struct {
	Kind     string // "task" or "step"
	ID       string
	Expected string
	Actual   string // "" when the record no longer exists
}

func (e *StaleStateError) Error() string {
	return fmt.Sprintf("%s %s: expected state %q, found %q (moved by another processor or a duplicate message)",
		e.Kind, e.ID, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrStaleState) true.
func (e *StaleStateError) Is(target error) bool { return target == ErrStaleState }
