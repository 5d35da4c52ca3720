package template

import "encoding/json"

// Dialect names the YAML dialect a template file is written in. Both load
// into the same Template; Marshal writes the tasker dialect.
type Dialect string

// Dialects.
const (
	// DialectTasker is this project's own format (see the package doc).
	DialectTasker Dialect = "tasker"
	// DialectTaskerCore is the format of tasker-core, the Rust original:
	// namespace_name, handler: {callable: ...}, dependencies,
	// timeout_seconds, backoff_base_ms, ... (docs/templates.md).
	DialectTaskerCore Dialect = "tasker-core"
)

// DefaultEnvironment is the environment whose overrides a tasker-core
// template's environments section applies when none is named.
const DefaultEnvironment = "production"

// StepType says how orchestration treats a step.
type StepType string

// Step types, as tasker-core names them.
const (
	// StepStandard runs its handler once its dependencies are done.
	StepStandard StepType = "standard"
	// StepDecision returns which of the steps declared downstream of it to
	// create; the others never exist.
	StepDecision StepType = "decision"
	// StepDeferredConvergence waits for those of its dependencies that were
	// created (by a decision or a batchable step).
	StepDeferredConvergence StepType = "deferred_convergence"
	// StepBatchable returns a batch plan: the engine creates workers from
	// a batch_worker step, one per cursor range.
	StepBatchable StepType = "batchable"
	// StepBatchWorker is a template for batch workers: it never runs
	// itself; its copies {name}_001... do.
	StepBatchWorker StepType = "batch_worker"
)

// StepTypes lists the valid step types.
var StepTypes = []StepType{StepStandard, StepDecision, StepDeferredConvergence, StepBatchable, StepBatchWorker}

// FailureStrategy says what a failed batch worker means for its batch.
type FailureStrategy string

// Failure strategies of batch_config.
const (
	// FailureContinue completes the failed worker with its failure recorded,
	// so the convergence step still runs (tasker-core's default).
	FailureContinue FailureStrategy = "continue_on_failure"
	// FailureFailFast fails the batch, and the task, at the first failure.
	FailureFailFast FailureStrategy = "fail_fast"
	// FailureIsolate leaves the failed worker for an operator to resolve.
	FailureIsolate FailureStrategy = "isolate"
)

// FailureStrategies lists the valid failure strategies.
var FailureStrategies = []FailureStrategy{FailureContinue, FailureFailFast, FailureIsolate}

// Batch defaults and limits, as tasker-core's.
const (
	DefaultBatchSize   = 1000
	MaxBatchSize       = 100000
	DefaultParallelism = 10
	MaxParallelism     = 1000
	DefaultCursorField = "id"
)

// BatchConfig configures a batchable step's workers.
type BatchConfig struct {
	// BatchSize is the most items one worker processes (1..MaxBatchSize).
	BatchSize int
	// Parallelism bounds the workers running at once (1..MaxParallelism).
	Parallelism int
	// CursorField names the field the workers' cursors range over.
	CursorField string
	// WorkerTemplate names the batch_worker step the workers are copies of.
	WorkerTemplate string
	// FailureStrategy: what a failed worker means for the batch.
	FailureStrategy FailureStrategy
}

// EventCondition says on which outcome of its step an event is published.
type EventCondition string

// Event conditions.
const (
	EventOnSuccess          EventCondition = "success"
	EventOnFailure          EventCondition = "failure"
	EventOnRetryableFailure EventCondition = "retryable_failure"
	EventOnPermanentFailure EventCondition = "permanent_failure"
	EventAlways             EventCondition = "always"
)

// EventConditions lists the valid conditions.
var EventConditions = []EventCondition{EventOnSuccess, EventOnFailure, EventOnRetryableFailure, EventOnPermanentFailure, EventAlways}

// DeliveryMode says how a domain event travels.
type DeliveryMode string

// Delivery modes.
const (
	// DeliveryDurable: a queue per namespace, at-least-once (the default).
	DeliveryDurable DeliveryMode = "durable"
	// DeliveryFast: the in-process bus, at most once.
	DeliveryFast DeliveryMode = "fast"
	// DeliveryBroadcast: both.
	DeliveryBroadcast DeliveryMode = "broadcast"
)

// DeliveryModes lists the valid delivery modes.
var DeliveryModes = []DeliveryMode{DeliveryDurable, DeliveryFast, DeliveryBroadcast}

// EventDeclaration is a domain event a step publishes (publishes_events).
type EventDeclaration struct {
	// Name in dotted form, e.g. "payment.processed".
	Name        string
	Description string
	// Condition defaults to EventOnSuccess.
	Condition EventCondition
	// Schema is the JSON Schema of the payload as JSON; nil for none.
	Schema json.RawMessage
	// DeliveryMode defaults to DeliveryDurable.
	DeliveryMode DeliveryMode
	// Publisher names a custom publisher; "" for the generic one.
	Publisher string
}

// DomainEvent is a template-level domain event definition (domain_events).
type DomainEvent struct {
	Name        string
	Description string
	Schema      json.RawMessage // nil for none
}

// SystemDependencies names the systems a template's steps talk to.
type SystemDependencies struct {
	Primary   string // tasker-core's default is "default"
	Secondary []string
}

// StalenessAction says what the staleness detector does with a task stuck
// past a threshold.
type StalenessAction string

// Staleness actions.
const (
	StalenessDLQ   StalenessAction = "dlq" // record a DLQ investigation (the default)
	StalenessError StalenessAction = "error"
	StalenessNone  StalenessAction = "none" // monitoring only
)

// StalenessActions lists the valid actions.
var StalenessActions = []StalenessAction{StalenessDLQ, StalenessError, StalenessNone}

// Default staleness thresholds, in minutes, used where a template's
// lifecycle leaves one unset (tasker-core's defaults).
const (
	DefaultMaxWaitingForDependenciesMinutes = 60
	DefaultMaxWaitingForRetryMinutes        = 30
	DefaultMaxStepsInProcessMinutes         = 30
	DefaultMaxDurationMinutes               = 24 * 60
)

// Limits of lifecycle thresholds, in minutes (tasker-core's).
const (
	MaxDurationMinutesLimit  = 43200 // 30 days
	MaxThresholdMinutesLimit = 10080 // 7 days
)

// Lifecycle holds a template's staleness thresholds. A zero threshold is
// unset: the default applies.
type Lifecycle struct {
	MaxDurationMinutes               int
	MaxWaitingForDependenciesMinutes int
	MaxWaitingForRetryMinutes        int
	MaxStepsInProcessMinutes         int
	// StalenessAction defaults to StalenessDLQ.
	StalenessAction StalenessAction
	// AutoFailOnTimeout and AutoDLQOnTimeout are nil when unset.
	AutoFailOnTimeout *bool
	AutoDLQOnTimeout  *bool
}

// IsStandard reports whether the step is a standard step.
func (s *Step) IsStandard() bool { return s.TypeOf() == StepStandard }

// TypeOf returns the step's type: StepStandard when Type is unset (a step
// built in code).
func (s *Step) TypeOf() StepType {
	if s.Type == "" {
		return StepStandard
	}
	return s.Type
}
