package taskertype

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// DLQReason says why a task entered the DLQ: the investigation queue of
// tasks that need an operator (tasker-core's dlq_reason). The DLQ of tasks
// is not the dead letters of the orchestration queues (queue.DeadLetter):
// those are messages set aside, these are investigations of tasks.
type DLQReason string

// DLQ reasons, as tasker-core names them.
const (
	// DLQStalenessTimeout: the task stayed in a waiting state past its
	// threshold, or lived past its maximum duration (the staleness
	// detector).
	DLQStalenessTimeout DLQReason = "staleness_timeout"
	// DLQMaxRetriesExceeded: the task ended in error because a step used
	// every attempt its retry policy allows.
	DLQMaxRetriesExceeded DLQReason = "max_retries_exceeded"
	// DLQDependencyCycleDetected: a circular dependency was found.
	DLQDependencyCycleDetected DLQReason = "dependency_cycle_detected"
	// DLQWorkerUnavailable: no worker took the task's steps for a long time.
	DLQWorkerUnavailable DLQReason = "worker_unavailable"
	// DLQManual: an operator sent the task to the DLQ.
	DLQManual DLQReason = "manual_dlq"
)

// DLQReasons lists the reasons, most urgent first (the order of
// DLQReason.Priority).
var DLQReasons = []DLQReason{DLQDependencyCycleDetected, DLQMaxRetriesExceeded, DLQStalenessTimeout, DLQWorkerUnavailable, DLQManual}

// Valid reports whether r is one of DLQReasons.
func (r DLQReason) Valid() bool {
	for _, v := range DLQReasons {
		if r == v {
			return true
		}
	}
	return false
}

// Priority is the base triage score of a reason in the investigation queue
// (tasker-core's v_dlq_investigation_queue): a pending entry's score is
// this plus its minutes in the DLQ.
func (r DLQReason) Priority() float64 {
	switch r {
	case DLQDependencyCycleDetected:
		return 1000
	case DLQMaxRetriesExceeded:
		return 500
	case DLQStalenessTimeout:
		return 100
	case DLQWorkerUnavailable:
		return 50
	}
	return 10
}

// DLQResolutionStatus is where the investigation of a DLQ entry stands. It
// is not the task's state: an operator fixes the task through the step
// actions (reset, resolve, complete) and records here what was done.
type DLQResolutionStatus string

// Resolution statuses. An entry starts pending and may move once, to any of
// the other three.
const (
	DLQPending           DLQResolutionStatus = "pending"
	DLQManuallyResolved  DLQResolutionStatus = "manually_resolved"
	DLQPermanentlyFailed DLQResolutionStatus = "permanently_failed"
	DLQCancelled         DLQResolutionStatus = "cancelled"
)

// DLQResolutionStatuses lists the statuses.
var DLQResolutionStatuses = []DLQResolutionStatus{DLQPending, DLQManuallyResolved, DLQPermanentlyFailed, DLQCancelled}

// Valid reports whether s is one of DLQResolutionStatuses.
func (s DLQResolutionStatus) Valid() bool {
	for _, v := range DLQResolutionStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// DLQEntry is one investigation of a task (tasker-core's tasks_dlq row). A
// task may have many over time, at most one of them pending.
type DLQEntry struct {
	ID     uuid.UUID
	TaskID uuid.UUID
	// OriginalState is the task's state when the entry was made.
	OriginalState TaskState
	Reason        DLQReason
	// At is when the task entered the DLQ (dlq_timestamp).
	At               time.Time
	ResolutionStatus DLQResolutionStatus
	// ResolvedAt is when the status left pending; zero while pending.
	ResolvedAt      time.Time
	ResolutionNotes string
	ResolvedBy      string
	// TaskSnapshot is a JSON object: the task and its steps when the entry
	// was made (see docs/dlq.md for its keys).
	TaskSnapshot json.RawMessage
	// Metadata is a JSON object: how the entry was made (detection
	// method, time in state, threshold, the failed step, ...).
	Metadata  json.RawMessage
	CreatedAt time.Time
	UpdatedAt time.Time
}
