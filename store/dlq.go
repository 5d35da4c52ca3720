package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/taskertype"
)

// Bounds of the DLQ's inputs.
const (
	// DefaultDLQListLimit is DLQListParams.Limit's default (tasker-core's).
	DefaultDLQListLimit = 50
	// MaxDLQListLimit bounds DLQListParams.Limit.
	MaxDLQListLimit = 1000
	// MaxDLQText bounds ResolutionNotes, in bytes; ResolvedBy is bounded
	// to 255 (tasker-core's VARCHAR(255)).
	MaxDLQText = 64 << 10
	// MaxDLQJSON bounds TaskSnapshot and Metadata, in bytes.
	MaxDLQJSON = 4 << 20
	// MaxStaleListLimit bounds TaskStaleListParams.Limit.
	MaxStaleListLimit = 10_000
)

// DLQEntryCreateParams is a new DLQ entry (Tx.DLQEntryCreate).
type DLQEntryCreateParams struct {
	// Entry must carry ID, TaskID, OriginalState, Reason and At;
	// TaskSnapshot and Metadata are JSON objects (nil: {}). Its status is
	// set to pending and CreatedAt, UpdatedAt to At.
	Entry *taskertype.DLQEntry
}

// Validate checks the params.
func (p *DLQEntryCreateParams) Validate() error {
	if p == nil || p.Entry == nil {
		return fmt.Errorf("dlq entry create: no entry given: %w", taskertype.ErrInvalid)
	}
	e := p.Entry
	switch {
	case e.ID == uuid.Nil || e.TaskID == uuid.Nil:
		return fmt.Errorf("dlq entry create: ID and TaskID must be set: %w", taskertype.ErrInvalid)
	case !e.OriginalState.Valid():
		return fmt.Errorf("dlq entry create: original state %q is not a task state: %w", e.OriginalState, taskertype.ErrInvalid)
	case !e.Reason.Valid():
		return fmt.Errorf("dlq entry create: reason %q: use one of %v: %w", e.Reason, taskertype.DLQReasons, taskertype.ErrInvalid)
	case e.At.IsZero():
		return fmt.Errorf("dlq entry create: At must be set: %w", taskertype.ErrInvalid)
	}
	if err := checkObject("TaskSnapshot", e.TaskSnapshot); err != nil {
		return fmt.Errorf("dlq entry create: %w", err)
	}
	if err := checkObject("Metadata", e.Metadata); err != nil {
		return fmt.Errorf("dlq entry create: %w", err)
	}
	return nil
}

// DLQListParams filters DLQList. Entries come newest first (At, then ID).
type DLQListParams struct {
	// TaskID keeps one task's entries; uuid.Nil keeps all.
	TaskID uuid.UUID
	// Status keeps entries in that status; "" keeps all.
	Status taskertype.DLQResolutionStatus
	// Reason keeps entries of that reason; "" keeps all.
	Reason taskertype.DLQReason
	// Oldest lists oldest first instead.
	Oldest bool
	// Limit bounds the answer: zero means DefaultDLQListLimit, at most
	// MaxDLQListLimit.
	Limit int
	// Offset skips that many entries first.
	Offset int
}

// Validate checks the params and applies the default limit.
func (p *DLQListParams) Validate() error {
	switch {
	case p.Status != "" && !p.Status.Valid():
		return fmt.Errorf("dlq list: status %q: use one of %v: %w", p.Status, taskertype.DLQResolutionStatuses, taskertype.ErrInvalid)
	case p.Reason != "" && !p.Reason.Valid():
		return fmt.Errorf("dlq list: reason %q: use one of %v: %w", p.Reason, taskertype.DLQReasons, taskertype.ErrInvalid)
	case p.Limit < 0 || p.Limit > MaxDLQListLimit:
		return fmt.Errorf("dlq list: limit %d is out of range 0..%d (0: %d): %w", p.Limit, MaxDLQListLimit, DefaultDLQListLimit, taskertype.ErrInvalid)
	case p.Offset < 0:
		return fmt.Errorf("dlq list: offset %d is negative: %w", p.Offset, taskertype.ErrInvalid)
	}
	if p.Limit == 0 {
		p.Limit = DefaultDLQListLimit
	}
	return nil
}

// DLQUpdateParams changes the investigation of one entry. Nil fields are
// left as they are.
type DLQUpdateParams struct {
	ID uuid.UUID
	// Status moves the entry: only from pending, to another status (a
	// closed investigation is not reopened: send the task to the DLQ
	// again). The same status again is no change. Leaving pending sets
	// ResolvedAt to At.
	Status *taskertype.DLQResolutionStatus
	Notes  *string
	// ResolvedBy names who acted (at most 255 bytes).
	ResolvedBy *string
	// Metadata replaces the entry's metadata (a JSON object).
	Metadata json.RawMessage
	At       time.Time
}

// Validate checks the params.
func (p *DLQUpdateParams) Validate() error {
	switch {
	case p == nil || p.ID == uuid.Nil:
		return fmt.Errorf("dlq update: no entry ID given: %w", taskertype.ErrInvalid)
	case p.Status != nil && !p.Status.Valid():
		return fmt.Errorf("dlq update: resolution status %q: use one of %v: %w", *p.Status, taskertype.DLQResolutionStatuses, taskertype.ErrInvalid)
	case p.Notes != nil && len(*p.Notes) > MaxDLQText:
		return fmt.Errorf("dlq update: notes are %d bytes, more than %d: %w", len(*p.Notes), MaxDLQText, taskertype.ErrInvalid)
	case p.ResolvedBy != nil && len(*p.ResolvedBy) > 255:
		return fmt.Errorf("dlq update: resolved_by is %d bytes, more than 255: %w", len(*p.ResolvedBy), taskertype.ErrInvalid)
	case p.Status == nil && p.Notes == nil && p.ResolvedBy == nil && p.Metadata == nil:
		return fmt.Errorf("dlq update: nothing to change: give a status, notes, resolved_by or metadata: %w", taskertype.ErrInvalid)
	case p.At.IsZero():
		return fmt.Errorf("dlq update: At must be set: %w", taskertype.ErrInvalid)
	}
	if p.Metadata != nil {
		if err := checkObject("Metadata", p.Metadata); err != nil {
			return fmt.Errorf("dlq update: %w", err)
		}
	}
	return nil
}

// ApplyDLQUpdate applies p to e as every driver does: it returns an error
// wrapping taskertype.ErrIllegalTransition when the status may not move.
// Drivers read the entry, call it and write the entry back in one
// transaction.
func ApplyDLQUpdate(e *taskertype.DLQEntry, p *DLQUpdateParams) error {
	if p.Status != nil && *p.Status != e.ResolutionStatus {
		if e.ResolutionStatus != taskertype.DLQPending {
			return fmt.Errorf("dlq update: entry %s is %s already; a closed investigation is not reopened (send the task to the DLQ again for a new one): %w",
				e.ID, e.ResolutionStatus, taskertype.ErrIllegalTransition)
		}
		if *p.Status == taskertype.DLQPending {
			return nil
		}
		e.ResolutionStatus, e.ResolvedAt = *p.Status, p.At
	}
	if p.Notes != nil {
		e.ResolutionNotes = *p.Notes
	}
	if p.ResolvedBy != nil {
		e.ResolvedBy = *p.ResolvedBy
	}
	if p.Metadata != nil {
		e.Metadata = p.Metadata
	}
	e.UpdatedAt = p.At
	return nil
}

// DLQStats are the entries of one reason, by status (tasker-core's
// v_dlq_dashboard row).
type DLQStats struct {
	Reason            taskertype.DLQReason
	Total             int64
	Pending           int64
	ManuallyResolved  int64
	PermanentlyFailed int64
	Cancelled         int64
	// Oldest and Newest are the entries' earliest and latest At.
	Oldest, Newest time.Time
	// AvgResolutionMinutes averages, over the entries, the minutes from At
	// to ResolvedAt, or to DLQStatsParams.At for those still pending.
	AvgResolutionMinutes float64
}

// DLQStatsParams asks for DLQStats.
type DLQStatsParams struct {
	// At is "now" for the entries still pending; zero: the store's clock.
	At time.Time
}

// TaskStaleTemplatesParams asks which templates have unfinished tasks in
// some states that entered them, or were created, before a time.
type TaskStaleTemplatesParams struct {
	States []taskertype.TaskState
	// EnteredBefore keeps tasks whose current state began (UpdatedAt) at or
	// before it; CreatedBefore keeps tasks created at or before it. A task
	// matching either is kept.
	EnteredBefore, CreatedBefore time.Time
	// Limit bounds the answer (zero: 1000).
	Limit int
}

// TemplateKey names a template version.
type TemplateKey struct{ Namespace, Name, Version string }

// TaskStaleListParams lists the unfinished tasks of one template version
// that are stuck: in a state of EnteredBefore since at or before the time
// given there, or in one of those states and created at or before
// CreatedBefore (zero: not this way). Tasks come without their Context,
// longest in their state first.
type TaskStaleListParams struct {
	Template      TemplateKey
	EnteredBefore map[taskertype.TaskState]time.Time
	CreatedBefore time.Time
	// Limit bounds the answer: at least 1, at most MaxStaleListLimit.
	Limit int
}

// Validate checks the params.
func (p *TaskStaleListParams) Validate() error {
	if p.Limit < 1 || p.Limit > MaxStaleListLimit {
		return fmt.Errorf("task stale list: limit %d is out of range 1..%d: %w", p.Limit, MaxStaleListLimit, taskertype.ErrInvalid)
	}
	if len(p.EnteredBefore) == 0 {
		return fmt.Errorf("task stale list: no state given: %w", taskertype.ErrInvalid)
	}
	for s := range p.EnteredBefore {
		if !s.Valid() || s.Terminal() {
			return fmt.Errorf("task stale list: %q is not a state a task can be stuck in: %w", s, taskertype.ErrInvalid)
		}
	}
	return nil
}

// StaleStates returns the states of EnteredBefore in lifecycle order.
func (p *TaskStaleListParams) StaleStates() []taskertype.TaskState {
	var out []taskertype.TaskState
	for _, s := range taskertype.TaskStates {
		if _, ok := p.EnteredBefore[s]; ok {
			out = append(out, s)
		}
	}
	return out
}

// Validate checks the params and applies the default limit.
func (p *TaskStaleTemplatesParams) Validate() error {
	if len(p.States) == 0 {
		return fmt.Errorf("task stale templates: no state given: %w", taskertype.ErrInvalid)
	}
	if p.Limit < 0 || p.Limit > MaxStaleListLimit {
		return fmt.Errorf("task stale templates: limit %d is out of range 0..%d: %w", p.Limit, MaxStaleListLimit, taskertype.ErrInvalid)
	}
	if p.Limit == 0 {
		p.Limit = 1000
	}
	return nil
}

func checkObject(field string, b json.RawMessage) error {
	if b == nil {
		return nil
	}
	if len(b) > MaxDLQJSON {
		return fmt.Errorf("%s is %d bytes, more than %d: %w", field, len(b), MaxDLQJSON, taskertype.ErrInvalid)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return fmt.Errorf("%s is not a JSON object: %w", field, taskertype.ErrInvalid)
	}
	return nil
}
