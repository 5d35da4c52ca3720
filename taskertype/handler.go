package taskertype

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Handler does the work of a step. It returns the step's result, which is
// encoded as JSON (a json.RawMessage or []byte holding JSON is kept as is),
// or an error. An error is retryable unless wrapped with Permanent; wrap it
// with RetryAfter to choose the delay before the next attempt. The context
// ends when the step's timeout passes or the worker shuts down: a handler that
// does I/O should pass it on.
type Handler interface {
	Handle(ctx context.Context, in *StepInput) (any, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, in *StepInput) (any, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, in *StepInput) (any, error) { return f(ctx, in) }

// StepInput is what a handler receives.
type StepInput struct {
	TaskID    uuid.UUID
	StepID    uuid.UUID
	StepName  string
	Namespace string
	// Attempt counts from 1. A release (a worker stopping) or a reset
	// lowers it again, so it does not name one attempt: AttemptID does.
	Attempt int
	// MaxAttempts is the bound of the step's retry policy, the first
	// attempt included: Attempt == MaxAttempts is the last try.
	MaxAttempts int
	// AttemptID names this attempt, and no other, of the step: it is the
	// fencing token the store checks before it records the attempt's
	// outcome. Two attempts of one step may overlap in rare faults (a
	// worker cut off from the database runs on until it notices, while
	// another runs the retry); use AttemptID as the idempotency key of the
	// handler's side effects, or to fence its writes elsewhere, so that a
	// superseded attempt's late write is refused.
	AttemptID uuid.UUID
	// Context is the task's context, a JSON object.
	Context json.RawMessage
	// CorrelationID and ParentCorrelationID are the task's, from its
	// request (uuid.Nil: none): for a handler's logs and traces.
	CorrelationID, ParentCorrelationID uuid.UUID
	// Results holds the result of each dependency, by step name.
	Results map[string]json.RawMessage
	// Ancestors holds the results of the step's completed ancestors (its
	// dependencies, theirs, and so on up), by step name, for a handler
	// that is an AncestorsWanter whose WantsAncestors is true (the pull
	// workers' dispatch channel: tasker-core's handlers receive them),
	// when the transaction that started the step held all their rows (on
	// the embedded backend for tasks of up to 256 steps; on PostgreSQL
	// when it had the task's steps at hand). Nil otherwise;
	// Engine.StepAncestorResults reads them.
	Ancestors map[string]json.RawMessage
	// Config is the step's configuration, from its template (config, or
	// handler.initialization in tasker-core's dialect): a JSON object, nil
	// when the step has none. DecodeConfig decodes it.
	Config json.RawMessage
	// Method is the entry point the template names for the handler
	// (handler.method in tasker-core's dialect); "" for the default one,
	// which tasker-core calls "call". A handler with several entry points
	// dispatches on it.
	Method string
	// Batch is set for a batch worker (a copy of a batch_worker step that
	// a batchable step's outcome created): its cursor range, its batch's
	// settings and its last checkpoint (docs/workflows.md). Nil for every
	// other step.
	Batch *BatchInput
}

// AncestorsWanter is a Handler that asks, with WantsAncestors, for
// StepInput.Ancestors: the worker then gives it the ancestors' results the
// starting transaction holds.
type AncestorsWanter interface {
	Handler
	WantsAncestors() bool
}

// DecodeConfig decodes the step's configuration into v; a step without one
// leaves v as it is.
func (in *StepInput) DecodeConfig(v any) error {
	if len(in.Config) == 0 {
		return nil
	}
	if err := json.Unmarshal(in.Config, v); err != nil {
		return Permanent(fmt.Errorf("decode the configuration of step %q: %w", in.StepName, err))
	}
	return nil
}

// DecodeContext decodes the task's context into v.
func (in *StepInput) DecodeContext(v any) error {
	if err := json.Unmarshal(in.Context, v); err != nil {
		return Permanent(fmt.Errorf("decode task context: %w", err))
	}
	return nil
}

// DecodeResult decodes the result of dependency step into v.
func (in *StepInput) DecodeResult(step string, v any) error {
	raw, ok := in.Results[step]
	if !ok {
		return Permanent(fmt.Errorf("step %q has no dependency named %q", in.StepName, step))
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return Permanent(fmt.Errorf("decode result of %q: %w", step, err))
	}
	return nil
}

// HandlerError is an error from a handler with a verdict on retrying it.
type HandlerError struct {
	Err       error
	Permanent bool
	// RetryAfter, when positive, is the delay before the next attempt,
	// replacing the backoff policy's.
	RetryAfter time.Duration
}

func (e *HandlerError) Error() string {
	if e == nil || e.Err == nil {
		return "handler error without a cause"
	}
	switch {
	case e.Permanent:
		return "permanent: " + e.Err.Error()
	case e.RetryAfter > 0:
		return fmt.Sprintf("%v (retry after %v)", e.Err, e.RetryAfter)
	}
	return e.Err.Error()
}

func (e *HandlerError) Unwrap() error {
	if e == nil {
		return nil
	}
	return e.Err
}

// Permanent marks err as not worth retrying: the step fails at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &HandlerError{Err: err, Permanent: true}
}

// RetryAfter marks err as retryable after d, which overrides the backoff.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &HandlerError{Err: err, RetryAfter: d}
}

// FailureFromError classifies a handler's error for the step's record.
func FailureFromError(err error, attempt int) *StepFailure {
	f := &StepFailure{Kind: FailureHandler, Message: err.Error(), Retryable: true, Attempt: attempt}
	var se *HandlerError
	if errors.As(err, &se) && se != nil {
		f.Retryable = !se.Permanent
		f.RetryAfter = se.RetryAfter
	}
	return f
}

// The types of a decision step's outcome, as tasker-core names them.
const (
	DecisionCreateSteps = "create_steps"
	DecisionNoBranches  = "no_branches"
)

// DecisionPointOutcome is what a decision step's handler decides, in
// tasker-core's wire form. The handler returns it in its result under the
// key "decision_point_outcome" (DecisionResult builds such a result): the
// engine then creates the steps named, which must be steps the template
// declares downstream of the decision, or none.
type DecisionPointOutcome struct {
	Type      string   `json:"type"`
	StepNames []string `json:"step_names,omitempty"`
}

// CreateSteps is the outcome that creates the steps named.
func CreateSteps(names ...string) DecisionPointOutcome {
	return DecisionPointOutcome{Type: DecisionCreateSteps, StepNames: names}
}

// NoBranches is the outcome that creates no step.
func NoBranches() DecisionPointOutcome { return DecisionPointOutcome{Type: DecisionNoBranches} }

// DecisionResult returns a decision handler's result: the fields of data
// (nil for none) and the outcome under "decision_point_outcome".
func DecisionResult(o DecisionPointOutcome, data map[string]any) map[string]any {
	r := make(map[string]any, len(data)+1)
	for k, v := range data {
		r[k] = v
	}
	r["decision_point_outcome"] = o
	return r
}
