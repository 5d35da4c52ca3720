// Package correlation tracks the steps the worker has handed to a handler
// and whose outcome is not stored yet, so that a handler that never
// reports is found (an orphan) instead of being waited for forever.
package correlation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/taskertype"
)

// ErrFull is returned by Track when Capacity steps are tracked already:
// back-pressure for the caller, who should wait for completions before
// dispatching more (nothing is dropped silently).
var ErrFull = errors.New("correlation: tracker full")

// ErrDuplicate is returned by Track for an id that is tracked already. It
// matches taskertype.ErrInvalid too.
var ErrDuplicate = fmt.Errorf("%w: correlation id already tracked", taskertype.ErrInvalid)

// MinSweepInterval bounds how often Run sweeps.
const MinSweepInterval = 10 * time.Millisecond

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	// Capacity bounds the steps tracked at once; at least 1. Size it to the
	// worker's concurrency (the most steps it has in handlers at a time).
	Capacity int
	// OrphanAfter is how long a step may stay tracked before Sweep takes it
	// as orphaned; > 0. Give more than the longest step timeout.
	OrphanAfter time.Duration
	// Clock stamps Track calls that leave Pending.Since zero, and ages
	// entries; nil means the system clock.
	Clock taskertype.Clock
	// Logger receives a Warn per orphan; nil discards.
	Logger *slog.Logger
	// OnOrphans, if set, receives what each of Run's sweeps removed (only
	// when it removed something), on Run's goroutine and with no lock
	// held: e.g. to fail those steps as lost.
	OnOrphans func([]Pending)
}

// Pending is one step handed to a handler, waiting for its outcome.
type Pending struct {
	ID       uuid.UUID // correlation id
	TaskID   uuid.UUID
	StepID   uuid.UUID
	StepName string
	Attempt  int
	// Since is when the step was dispatched; zero means now (Track stamps it).
	Since time.Time
	// Expect, when positive, is how long this step may take before it
	// counts as an orphan (its timeout and grace); zero means OrphanAfter.
	Expect time.Duration
}

// TrackerCounts are the tracker's counters. Accepted = Completed +
// Orphaned + Tracked whenever no call is in flight.
type TrackerCounts struct {
	Tracked   uint64 // tracked now
	Accepted  uint64 // Track calls that succeeded, since start
	Completed uint64 // removed by Complete
	Orphaned  uint64 // removed by Sweep
	Rejected  uint64 // Track calls refused with ErrFull
	// OldestAge is the age of the oldest tracked entry; 0 if none.
	OldestAge time.Duration
}

// Tracker is the completion listener's correlation tracker.
//
// Design: one sync.Mutex over a Go map (the analysis's "current", #4 there
// and #5 in our architecture). The lock is held for one map operation,
// never across anything that blocks; Sweep and Counts scan the map under
// it, which Capacity bounds. Capacity is checked under the same lock, so
// the bound is exact.
//
// Measured on the worker's path (BenchmarkCorrelation: a UUIDv7, Track with
// the system clock and Complete per attempt, Capacity twice the slots)
// against no tracking at all, a runtime timer per attempt (no shared
// structure), xsync.Map (the analysis's DashMap), sync.Map and a sharded
// map: figures and command in docs/concurrency.md (#5). The mutex map ties
// with the best and is the only one of them that also gives the count and
// age of the tracked attempts (Counts) without a second structure.
type Tracker struct {
	capacity    int
	orphanAfter time.Duration
	clock       taskertype.Clock
	log         *slog.Logger
	onOrphans   func([]Pending)

	mu sync.Mutex
	m  map[uuid.UUID]Pending

	accepted, completed, orphaned, rejected atomic.Uint64
}

// NewTracker returns an empty Tracker.
func NewTracker(cfg TrackerConfig) (*Tracker, error) {
	if cfg.Capacity < 1 {
		return nil, fmt.Errorf("%w: correlation: TrackerConfig.Capacity is %d; give the most steps the worker runs at once (at least 1)",
			taskertype.ErrInvalid, cfg.Capacity)
	}
	if cfg.OrphanAfter <= 0 {
		return nil, fmt.Errorf("%w: correlation: TrackerConfig.OrphanAfter is %v; give a positive duration longer than the longest step timeout",
			taskertype.ErrInvalid, cfg.OrphanAfter)
	}
	t := &Tracker{
		capacity:    cfg.Capacity,
		orphanAfter: cfg.OrphanAfter,
		clock:       cfg.Clock,
		log:         cfg.Logger,
		onOrphans:   cfg.OnOrphans,
		m:           make(map[uuid.UUID]Pending),
	}
	if t.clock == nil {
		t.clock = taskertype.SystemClock{}
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	return t, nil
}

// Track starts tracking p. It returns ErrFull when Capacity entries are
// tracked, ErrDuplicate when p.ID is tracked already, and an error
// matching taskertype.ErrInvalid for a nil ID.
func (t *Tracker) Track(p Pending) error {
	if p.ID == uuid.Nil {
		return fmt.Errorf("%w: correlation: Pending.ID is nil; give the step execution's correlation id", taskertype.ErrInvalid)
	}
	if p.Since.IsZero() {
		p.Since = t.clock.Now()
	}
	t.mu.Lock()
	if _, dup := t.m[p.ID]; dup {
		t.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrDuplicate, p.ID)
	}
	if len(t.m) >= t.capacity {
		t.mu.Unlock()
		t.rejected.Add(1)
		return fmt.Errorf("%w: %d steps tracked (TrackerConfig.Capacity); wait for one to complete", ErrFull, t.capacity)
	}
	t.m[p.ID] = p
	t.mu.Unlock()
	t.accepted.Add(1)
	return nil
}

// Complete stops tracking id and returns what was tracked. It returns
// false for an id that is not tracked (unknown, completed already, or
// swept as an orphan).
func (t *Tracker) Complete(id uuid.UUID) (Pending, bool) {
	t.mu.Lock()
	p, ok := t.m[id]
	if ok {
		delete(t.m, id)
	}
	t.mu.Unlock()
	if ok {
		t.completed.Add(1)
	}
	return p, ok
}

// Sweep removes the entries tracked for their Expect, or OrphanAfter, or longer, logs each
// at Warn and returns them, oldest first. A step swept here and completed
// later gets false from Complete: exactly one of the two takes it.
func (t *Tracker) Sweep() []Pending {
	now := t.clock.Now()
	var out []Pending
	t.mu.Lock()
	for id, p := range t.m {
		limit := t.orphanAfter
		if p.Expect > 0 {
			limit = p.Expect
		}
		if now.Sub(p.Since) >= limit {
			out = append(out, p)
			delete(t.m, id)
		}
	}
	t.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	t.orphaned.Add(uint64(len(out)))
	slices.SortFunc(out, func(a, b Pending) int { return a.Since.Compare(b.Since) })
	for _, p := range out {
		t.log.Warn("correlation: step handler never reported an outcome; no longer waiting for it",
			"correlation_id", p.ID, "task_id", p.TaskID, "step_id", p.StepID, "step", p.StepName,
			"attempt", p.Attempt, "pending_for", now.Sub(p.Since))
	}
	return out
}

// Counts returns the counters and the age of the oldest entry (a scan of
// the tracked entries: meant for a metrics endpoint, not a hot path).
func (t *Tracker) Counts() TrackerCounts {
	now := t.clock.Now()
	var oldest time.Time
	t.mu.Lock()
	n := len(t.m)
	for _, p := range t.m {
		if oldest.IsZero() || p.Since.Before(oldest) {
			oldest = p.Since
		}
	}
	t.mu.Unlock()
	c := TrackerCounts{
		Tracked:   uint64(n),
		Accepted:  t.accepted.Load(),
		Completed: t.completed.Load(),
		Orphaned:  t.orphaned.Load(),
		Rejected:  t.rejected.Load(),
	}
	if !oldest.IsZero() {
		c.OldestAge = max(now.Sub(oldest), 0)
	}
	return c
}

// SweepInterval is how often Run sweeps: OrphanAfter/4, at least
// MinSweepInterval.
func (t *Tracker) SweepInterval() time.Duration { return max(t.orphanAfter/4, MinSweepInterval) }

// Run sweeps every SweepInterval until ctx ends, handing what each sweep
// removed to TrackerConfig.OnOrphans.
func (t *Tracker) Run(ctx context.Context) {
	tick := time.NewTicker(t.SweepInterval())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if out := t.Sweep(); len(out) > 0 && t.onOrphans != nil {
				t.onOrphans(out)
			}
		}
	}
}
