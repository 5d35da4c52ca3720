package taskertype

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Task is one run of a template.
type Task struct {
	ID        uuid.UUID
	Namespace string
	Name      string // template name
	Version   string // template version
	State     TaskState
	// Revision grows with every change of the task that orchestration
	// relies on: each task transition, and each step transition into or out
	// of the in-flight states (BumpsRevision). Caches compare it with the
	// stored task's to know whether what they hold is still current.
	Revision int64
	Context  json.RawMessage // the JSON object the task was created with
	// The task request's fields (tasker-core's TaskRequest; docs/identity.md),
	// read by TaskGet and TaskList (the reads of orchestration leave them
	// zero).
	Request   TaskRequest
	CreatedAt time.Time
	UpdatedAt time.Time
	// FinishedAt is when the task reached a terminal state; zero before.
	FinishedAt time.Time
}

// Step is one node of a task's DAG.
type Step struct {
	ID       uuid.UUID
	TaskID   uuid.UUID
	Name     string
	Handler  string
	Position int // order of the step in its template
	State    StepState
	// DependsOn holds the IDs of the steps this one waits for.
	DependsOn []uuid.UUID
	// Attempts counts the attempts started so far.
	Attempts int
	Retry    RetryPolicy
	// Timeout bounds one attempt of the handler.
	Timeout time.Duration
	// NextRetryAt is when a step waiting for retry may run again; zero otherwise.
	NextRetryAt time.Time
	// Result is the handler's JSON result once the step succeeded.
	Result json.RawMessage
	// Failure describes the last failed attempt; nil if none failed.
	Failure   *StepFailure
	CreatedAt time.Time
	UpdatedAt time.Time
	// AttemptID identifies the last attempt started (a UUIDv7 the worker
	// sets when it starts the step); uuid.Nil before the first. It is the
	// attempt's fencing token: the outcome of an attempt is stored only
	// while the step is in progress with this ID (StepTransitionParams.Attempt),
	// so a late report from an attempt that was superseded changes nothing.
	AttemptID uuid.UUID
	// StartedAt is when the last attempt started; zero before the first.
	StartedAt time.Time
	// FinishedAt is when the last attempt ended; zero while none has.
	FinishedAt time.Time
}

// Backoff names how the delay between attempts grows.
type Backoff string

// Backoff policies.
const (
	BackoffExponential Backoff = "exponential" // base·2^(n-1)
	BackoffLinear      Backoff = "linear"      // base·n
	BackoffFibonacci   Backoff = "fibonacci"   // base·fib(n)
	BackoffNone        Backoff = "none"        // no delay
)

// RetryPolicy says whether and when a failed step runs again.
type RetryPolicy struct {
	// Retryable false means a failure is final whatever the error says.
	Retryable bool `json:"retryable"`
	// MaxAttempts counts all attempts, the first included; at least 1.
	MaxAttempts int     `json:"max_attempts"`
	Backoff     Backoff `json:"backoff"`
	// Base is the first delay; Cap bounds every delay (zero: no cap).
	Base time.Duration `json:"base"`
	Cap  time.Duration `json:"cap"`
	// Jitter in [0, 1] spreads each delay uniformly by ± that fraction.
	Jitter float64 `json:"jitter"`
}

// FailureKind classifies a failed attempt.
type FailureKind string

// Failure kinds.
const (
	FailureHandler FailureKind = "handler" // the handler returned an error
	FailurePanic   FailureKind = "panic"   // the handler panicked
	FailureTimeout FailureKind = "timeout" // the attempt ran past the step's timeout
	FailureLost    FailureKind = "lost"    // the worker running the attempt went away
	// FailureNoHandler: no handler is registered under the step's name.
	// No longer recorded (such a step waits for a handler without spending
	// attempts); kept for the records of earlier versions.
	FailureNoHandler FailureKind = "no_handler"
)

// StepFailure is what a failed attempt reports.
type StepFailure struct {
	Kind    FailureKind `json:"kind"`
	Message string      `json:"message"`
	// Retryable is the error's own verdict; the step's policy may still refuse.
	Retryable bool `json:"retryable"`
	// RetryAfter, when positive, replaces the backoff policy's delay.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	Attempt    int           `json:"attempt"`
}

// Transition is one stored state change of a task or of a step.
type Transition struct {
	// ID orders the transitions of one task (the task's own and its
	// steps') in the order they were applied.
	ID     int64
	TaskID uuid.UUID
	// StepID is uuid.Nil for a task transition.
	StepID    uuid.UUID
	From      string // "" for the record that creates the task or step
	To        string
	Event     string
	At        time.Time
	Processor string // who applied it, e.g. "orchestrator@host:1234"
}

// Clock tells the time. Tests inject a fake one.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
