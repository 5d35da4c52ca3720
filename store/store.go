// Package store defines the persistence seam of Tasker: tasks, steps, their
// dependency edges and the log of every state change. The store is the truth;
// every cache in the engine is a hint re-validated against it.
//
// State changes are compare-and-set: a transition names the state it expects
// to leave, and fails with a *taskertype.StaleStateError when the record is in
// another state, so a duplicate or stale message can never move a task or a
// step twice.
//
// Every driver (store/sqlite, and later PostgreSQL) passes the conformance
// suite in store/storetest unchanged.
package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

// Store reads outside transactions and opens write transactions.
type Store interface {
	// TaskGet returns a task, or an error wrapping taskertype.ErrNotFound.
	TaskGet(ctx context.Context, id uuid.UUID) (*taskertype.Task, error)
	// TaskList returns tasks, newest first.
	TaskList(ctx context.Context, p *TaskListParams) ([]*taskertype.Task, error)
	// TaskCount counts the tasks TaskList would page through with p
	// (States and Namespace; Limit, Offset and IdentityHash are ignored).
	TaskCount(ctx context.Context, p *TaskListParams) (int64, error)
	// StepList returns the steps of a task in template order, DependsOn filled.
	StepList(ctx context.Context, taskID uuid.UUID) ([]*taskertype.Step, error)
	// TransitionList returns the stored transitions of a task and of its
	// steps in the order they were applied.
	TransitionList(ctx context.Context, p *TransitionListParams) ([]*taskertype.Transition, error)
	// StepAncestorResults returns the results of the completed ancestors
	// of step stepID of task taskID (its dependencies, theirs, and so on),
	// by step name, in one query that reads those steps only, not the
	// task's others. A step with no completed ancestor, or that does not
	// exist, has none.
	StepAncestorResults(ctx context.Context, taskID, stepID uuid.UUID) (map[string]json.RawMessage, error)
	// StepAttempts returns the state and attempt of each of the steps ids
	// that exists, in no order, in one read that holds nothing: a worker
	// checks with it that the attempts it runs are still wanted.
	StepAttempts(ctx context.Context, ids []uuid.UUID) ([]StepAttempt, error)
	// StepLeaseExtend renews the store lease of a running attempt (see
	// Tx.StepLeaseHold) to p.Lease from the database's now. A step that
	// is not in progress with attempt p.AttemptID is an error wrapping
	// taskertype.ErrNotFound.
	StepLeaseExtend(ctx context.Context, p *StepLeaseParams) error
	// InTx runs fn in one write transaction: everything fn does through tx,
	// messages included, commits together when fn returns nil and not at all
	// otherwise. fn may run more than once if the backend must retry the
	// transaction (a serialization failure), so it must not have effects
	// outside tx. fn must not call methods of the Store or of its queue that
	// write: on a single-writer backend (SQLite) they would wait for the
	// connection fn's transaction holds.
	InTx(ctx context.Context, fn func(tx Tx) error) error
	// TemplatePut stores templates, all or none, in one transaction. A
	// template already stored under its (namespace, name, version) with the
	// same Digest is left as it is (the first registration stands); with
	// another Digest the put fails with a *TemplateConflictError and
	// stores nothing. Safe to call from many processes at once.
	TemplatePut(ctx context.Context, p *TemplatePutParams) error
	// TemplateGet returns one stored template: the version asked, or when
	// p.Version is "" the latest by semantic-version precedence
	// (template.CompareVersions). An unknown one is an error wrapping
	// taskertype.ErrNotFound.
	TemplateGet(ctx context.Context, p *TemplateGetParams) (*Template, error)
	// TemplateList returns stored templates ordered by namespace, name and
	// version precedence, without their Source.
	TemplateList(ctx context.Context, p *TemplateListParams) ([]*Template, error)
	// DLQList returns DLQ entries, the investigations of tasks (not the
	// dead letters of the queues), newest first unless p.Oldest.
	DLQList(ctx context.Context, p *DLQListParams) ([]*taskertype.DLQEntry, error)
	// DLQGet returns one DLQ entry, or an error wrapping
	// taskertype.ErrNotFound.
	DLQGet(ctx context.Context, id uuid.UUID) (*taskertype.DLQEntry, error)
	// DLQUpdate changes one entry as ApplyDLQUpdate says, in one
	// transaction, and returns it as stored. An unknown one is an error
	// wrapping taskertype.ErrNotFound.
	DLQUpdate(ctx context.Context, p *DLQUpdateParams) (*taskertype.DLQEntry, error)
	// DLQStats counts the entries by reason (reasons without entries are
	// left out), in the order of taskertype.DLQReasons.
	DLQStats(ctx context.Context, p *DLQStatsParams) ([]*DLQStats, error)
	// TaskStaleTemplates returns the template versions of the unfinished
	// tasks in p.States that entered their state or were created before
	// the times given, in no order: the staleness detector then asks
	// TaskStaleList for each with its own thresholds.
	TaskStaleTemplates(ctx context.Context, p *TaskStaleTemplatesParams) ([]TemplateKey, error)
	// TaskStaleList returns the stuck tasks of one template version (see
	// TaskStaleListParams).
	TaskStaleList(ctx context.Context, p *TaskStaleListParams) ([]*taskertype.Task, error)
	// PerformanceStats counts the tasks created since p.Since by what they
	// became, with their average run times (analytics).
	PerformanceStats(ctx context.Context, p *PerformanceParams) (*Performance, error)
	// SlowSteps returns the steps slowest on average, by template version
	// and step name (analytics).
	SlowSteps(ctx context.Context, p *SlowParams) ([]*SlowStep, error)
	// SlowTasks returns the template versions whose finished tasks were
	// slowest on average (analytics).
	SlowTasks(ctx context.Context, p *SlowParams) ([]*SlowTask, error)
	// StateCounts counts every task and step by state (analytics).
	StateCounts(ctx context.Context) (*StateCounts, error)
	// LockTry takes the lock name, shared by every process of the
	// database, if no one holds it: held says whether it was taken, and
	// release (non-nil when held) lets it go. A process that dies lets go
	// of its locks. PostgreSQL: a session advisory lock; SQLite: the
	// database has one process, a lock in it.
	LockTry(ctx context.Context, name string) (release func(), held bool, err error)
	Close() error
}

// Tx is a write transaction.
type Tx interface {
	// TaskCreate stores a new task in state pending with its steps (pending)
	// and their edges, and records the "create" transition of each.
	TaskCreate(ctx context.Context, p *TaskCreateParams) error
	// TaskGetForUpdate returns a task and holds it against concurrent
	// transactions on the same task until this one ends. The task comes
	// without its Context (nil): decisions are taken on its state, and a
	// context may be large; StepInputs and Store.TaskGet carry it.
	TaskGetForUpdate(ctx context.Context, id uuid.UUID) (*taskertype.Task, error)
	// TaskTransition moves a task from p.From to p.To and records it. It
	// keeps no reference to p past the call (the caller may reuse it).
	TaskTransition(ctx context.Context, p *TaskTransitionParams) error
	// StepGet returns a step without its DependsOn (StepList fills it): the
	// hot paths that read one step do not need its edges.
	StepGet(ctx context.Context, id uuid.UUID) (*taskertype.Step, error)
	// StepList returns the steps of a task in template order, DependsOn filled.
	StepList(ctx context.Context, taskID uuid.UUID) ([]*taskertype.Step, error)
	// StepTransition moves a step from p.From to p.Step.State, writes the
	// step's mutable fields from p.Step and records the transition. p.Step
	// must carry its ID and TaskID, as a step read from the store does.
	// It keeps no reference to p or p.Step past the call (the caller may
	// reuse them), but sets p.Step.UpdatedAt; the bytes of p.Step.Result
	// may be kept until the transaction ends, so they must not be changed
	// in place.
	StepTransition(ctx context.Context, p *StepTransitionParams) error
	// StepInputs returns what a handler needs: the task's context and the
	// results of the step's dependencies.
	StepInputs(ctx context.Context, stepID uuid.UUID) (*StepInputs, error)
	// StepAncestorsHeld returns what Store.StepAncestorResults would read
	// for step stepID (HeldAncestors), from the rows this transaction
	// holds, without a read; nil when it does not hold them all. A pull
	// worker's step takes them with its inputs.
	StepAncestorsHeld(stepID uuid.UUID) map[string]json.RawMessage
	// StepLeaseHold gives the attempt a step runs a store lease of p.Lease
	// from the database's now, written with the commit (no round trip of
	// its own): a worker whose queue does not share the store's database
	// takes it when it starts the step, and renews it
	// (Store.StepLeaseExtend) with its claim. The step must be in progress
	// with attempt p.AttemptID by the commit; otherwise nothing is
	// written.
	StepLeaseHold(ctx context.Context, p *StepLeaseParams) error
	// StepLeaseLeft returns how long the store lease of attempt attemptID
	// of a step still runs by the database's clock: 0 when it ended, was
	// never taken, or the step runs another attempt or none.
	StepLeaseLeft(ctx context.Context, stepID, attemptID uuid.UUID) (time.Duration, error)
	// Prefetch reads many tasks and all their steps at once and holds them
	// as TaskGetForUpdate and StepGet would, so that the reads of them that
	// follow in this transaction cost nothing: one round trip for a batch
	// of work instead of several per item. It changes no answer: rows this
	// transaction holds already keep their changes. It returns the tasks
	// it did not read: those that do not exist and, with p.SkipLocked,
	// those another transaction held at that moment (the caller must not
	// count on holding them; it may, if one was let go of meanwhile). A
	// backend without round trips may take every task without reading it.
	Prefetch(ctx context.Context, p *PrefetchParams) (missed []uuid.UUID, err error)
	// MessageSend sends a message that becomes visible when the transaction
	// commits, and is never sent if it rolls back.
	MessageSend(ctx context.Context, p *queue.SendParams) error
	// MessageClaim claims messages of the store's co-located queue within
	// this transaction: the claim holds only if the transaction commits.
	// A store whose queue lives elsewhere returns an error wrapping
	// errors.ErrUnsupported (its queue's Capabilities().SharesStoreDatabase
	// is false): the caller claims through the queue instead.
	MessageClaim(ctx context.Context, p *queue.ClaimParams) ([]*queue.Message, error)
	// MessageAck acknowledges messages of the co-located queue within this
	// transaction, so that the work a message asked for and its
	// acknowledgement commit together. Unsupported as for MessageClaim.
	MessageAck(ctx context.Context, p *queue.AckParams) error
	// StepCreate adds steps to a task that exists, in state pending, with
	// their edges, and records the "create" transition of each, as
	// TaskCreate does for a task's first steps: the steps a decision or a
	// batchable step creates at run time. Their DependsOn may name steps
	// of the task stored before and steps of p.Steps. The task's Revision
	// grows. A task that does not exist is an error wrapping
	// taskertype.ErrNotFound; a step name or ID the task has already, an
	// error wrapping taskertype.ErrInvalid.
	StepCreate(ctx context.Context, p *StepCreateParams) error
	// Notify wakes the subscribers of the named queue (queue.Queue.Subscribe)
	// in every process once the transaction commits, as a message sent there
	// would, without sending one; nothing if it rolls back. Unsupported as
	// for MessageClaim: the caller then relies on its fallback (a poll).
	Notify(ctx context.Context, name string) error
	// DLQEntryCreate records a pending DLQ entry for a task, unless the
	// task has a pending one already: created says which. It commits with
	// the transaction (the state change that sent the task there).
	DLQEntryCreate(ctx context.Context, p *DLQEntryCreateParams) (created bool, err error)
}

// TaskListParams filters TaskList.
type TaskListParams struct {
	// States keeps tasks in one of these states; empty keeps all.
	States []taskertype.TaskState
	// Limit bounds the answer; zero means 100.
	Limit int
	// Offset skips this many tasks of the order first (a page).
	Offset int
	// Namespace, if set, keeps only this namespace's tasks.
	Namespace string
	// IdentityHash, if set, keeps only the task with this identity hash
	// (taskertype.TaskRequest.IdentityHash): at most one, since it is
	// unique. States is ignored then.
	IdentityHash string
}

// TransitionListParams filters TransitionList.
type TransitionListParams struct {
	TaskID uuid.UUID
	// StepID keeps only one step's transitions; uuid.Nil keeps the task's
	// own and all its steps'.
	StepID uuid.UUID
	// After keeps only the transitions whose ID is greater: a cursor, the
	// ID of the last transition read. 0 keeps them all.
	After int64
}

// TaskCreateParams describes a new task.
type TaskCreateParams struct {
	// Task must have ID, Namespace, Name, Version and Context set; its state
	// is set to pending and its times to At.
	Task *taskertype.Task
	// Steps must have ID, Name, Handler, Position, Retry, Timeout and
	// DependsOn (IDs of other steps in this list) set.
	Steps     []*taskertype.Step
	At        time.Time
	Processor string
}

// StepCreateParams describes steps added to an existing task.
type StepCreateParams struct {
	TaskID uuid.UUID
	// Steps must have ID, Name, Handler, Position, Retry, Timeout and
	// DependsOn (IDs of steps of the task or of this list) set; TaskID,
	// State and the times are set by the store.
	Steps     []*taskertype.Step
	At        time.Time
	Processor string
}

// TaskTransitionParams is a compare-and-set on a task's state.
type TaskTransitionParams struct {
	ID        uuid.UUID
	From      taskertype.TaskState
	To        taskertype.TaskState
	Event     taskertype.TaskEvent
	At        time.Time
	Processor string
}

// StepTransitionParams is a compare-and-set on a step's state that also
// writes its mutable fields: State (the new state), Attempts, NextRetryAt,
// Result, Failure, AttemptID, StartedAt and FinishedAt, all taken from Step.
type StepTransitionParams struct {
	Step *taskertype.Step
	From taskertype.StepState
	// Attempt, when not uuid.Nil, is the fencing token of the attempt whose
	// outcome this writes: the compare-and-set then also requires the stored
	// step's AttemptID to be Attempt, and fails with the same
	// *taskertype.StaleStateError as a state mismatch when it is not (the
	// attempt was superseded: reported lost, cancelled, started again).
	Attempt   uuid.UUID
	Event     taskertype.StepEvent
	At        time.Time
	Processor string
}

// PrefetchParams says what Prefetch reads. Tasks are locked in the order
// of their ids, so transactions that each take all their tasks in one
// Prefetch never wait for each other in a cycle; a transaction that holds
// tasks already and takes more should set SkipLocked.
type PrefetchParams struct {
	// TaskIDs are the tasks read, with all their steps.
	TaskIDs []uuid.UUID
	// ContextsOf are tasks whose contexts are read too, for StepInputs;
	// they are read as if they were in TaskIDs as well.
	ContextsOf []uuid.UUID
	// SkipLocked skips the tasks another transaction holds, instead of
	// waiting for them, and returns them.
	SkipLocked bool
}

// StepLeaseParams names a running attempt and the length of its store
// lease (Tx.StepLeaseHold, Store.StepLeaseExtend).
type StepLeaseParams struct {
	StepID, AttemptID uuid.UUID
	// Lease is how long the lease runs from the database's now; more than
	// zero.
	Lease time.Duration
}

// Validate checks p; its errors wrap taskertype.ErrInvalid.
func (p *StepLeaseParams) Validate() error {
	if p.StepID == uuid.Nil || p.AttemptID == uuid.Nil {
		return invalid("step lease", "step %s, attempt %s: name both the step and its running attempt", p.StepID, p.AttemptID)
	}
	if p.Lease <= 0 {
		return invalid("step lease", "step %s: lease %v: want more than zero", p.StepID, p.Lease)
	}
	return nil
}

// StepAttempt is where a step stands: its state and its last attempt.
type StepAttempt struct {
	ID        uuid.UUID
	State     taskertype.StepState
	AttemptID uuid.UUID
}

// StepInputs is what a handler receives besides its step.
type StepInputs struct {
	Context json.RawMessage
	// CorrelationID and ParentCorrelationID are the task's (its
	// request's; uuid.Nil: none), read with the context.
	CorrelationID, ParentCorrelationID uuid.UUID
	// Results maps the name of each dependency to its result (JSON null
	// when it was resolved by hand without one).
	Results map[string]json.RawMessage
}

// HeldAncestors returns the results of a step's completed ancestors (its
// dependencies, theirs, and so on up), by step name, as
// Store.StepAncestorResults has them, from rows a transaction holds:
// held(id) returns the row of step id, or nil when the transaction does
// not hold it. It returns nil, and no partial answer, when an ancestor's
// row is not held; an empty map when the step has no completed ancestor
// with a result.
func HeldAncestors(st *taskertype.Step, held func(uuid.UUID) *taskertype.Step) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	if len(st.DependsOn) == 0 {
		return out
	}
	seen := make(map[uuid.UUID]bool, len(st.DependsOn))
	next := append([]uuid.UUID(nil), st.DependsOn...)
	for len(next) > 0 {
		id := next[len(next)-1]
		next = next[:len(next)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		a := held(id)
		if a == nil {
			return nil
		}
		if a.State == taskertype.StepComplete && len(a.Result) > 0 {
			out[a.Name] = a.Result
		}
		next = append(next, a.DependsOn...)
	}
	return out
}
