// Package debugtrack keeps, for debugging, the events of the worker's
// recent step executions (dispatched, started, finished...) under their
// correlation id. It is bounded by size, by age and per execution, and is
// read rarely (a debug endpoint lists the recent ones).
package debugtrack

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/taskertype"
)

// DefaultMaxEvents is the events kept per correlation when
// Config.MaxEvents is 0.
const DefaultMaxEvents = 32

// expireOnRecord is how many expired entries a Record removes at most, so
// that the tracker sheds old entries without a sweeper and without making
// any Record slow.
const expireOnRecord = 2

// Config configures a Tracker.
type Config struct {
	// MaxEntries bounds the correlations kept; at least 1. When full, a new
	// correlation evicts the one updated least recently.
	MaxEntries int
	// MaxAge is how long a correlation is kept after its last event; > 0.
	MaxAge time.Duration
	// MaxEvents bounds the events kept per correlation: later ones are only
	// counted (Entry.DroppedEvents). 0 means DefaultMaxEvents.
	MaxEvents int
	// Clock stamps events; nil means the system clock.
	Clock taskertype.Clock
	// Logger receives a Debug line when Cleanup drops entries; nil discards.
	Logger *slog.Logger
}

// EventRecord is one event of a step execution.
type EventRecord struct {
	Name   string // e.g. "dispatched", "started", "finished"
	At     time.Time
	Detail string // e.g. the outcome
}

// Entry is what is known of one step execution. Entries returned by the
// Tracker are copies.
type Entry struct {
	ID       uuid.UUID // correlation id
	TaskID   uuid.UUID
	StepID   uuid.UUID
	StepName string
	// Events holds the first MaxEvents events, oldest first.
	Events []EventRecord
	// DroppedEvents counts the events past MaxEvents, not kept.
	DroppedEvents int
	First, Last   time.Time // times of the first and of the last event
}

// Tracker keeps the recent step executions' events.
//
// Design: a sync.RWMutex over a map and an intrusive list ordered by last
// update (the analysis's "current", #6 there and #7 in our architecture,
// whose advice is to leave it as is), so that size eviction, age
// eviction, Cleanup and Recent all start at an end of the list instead of
// scanning the map. Record holds the write lock for a few pointer moves
// and an append; the clock is read before the lock.
//
// Chosen by `go test -run '^$' -bench . -benchtime 1s -count 3
// ./internal/debugtrack/`, run twice on a shared 2-vCPU AMD EPYC host:
// medians in ns per Record (three events per execution, MaxEntries 10 000
// full, so every third Record evicts; g16 = 32 goroutines), ratio to this
// design in run 1:
//
//	                          with a Recent(50) every 4 096 and a     Record only
//	                          Cleanup every 16 384 Records
//	                          g1 run1/run2     g16 run1/run2          g1 run1/run2    g16 run1/run2
//	a RWMutex+map+list (this) 607/309 (1.00)   562/317 (1.00)         318/303 (1.00)  357/350 (1.00)
//	b xsync.Map + FIFO queue  1116/718 (1.84)  1438/778 (2.56)        282/348 (0.89)  295/253 (0.83)
//	c otter v2 (size, expiry) 2398/1256 (3.95) 1599/1131 (2.84)       955/857 (3.01)  759/750 (2.13)
//
// Record alone is a tie with xsync.Map (within noise); with the reads the
// list wins, since Recent and Cleanup start at one end of it while the
// other candidates scan and sort every entry. Otter's Compute with expiry
// and size bookkeeping costs 2-3 times more, and its size eviction is by
// frequency, not recency: after 1 000 executions of three events each
// into a 100-entry cache, 5 of the 50 newest were left (and 8 of the 100
// oldest), where a debug page wants the newest.
type Tracker struct {
	maxEntries int
	maxAge     time.Duration
	maxEvents  int
	clock      taskertype.Clock
	log        *slog.Logger

	mu         sync.RWMutex
	m          map[uuid.UUID]*entry
	head, tail *entry // head: least recently updated

	dropped       atomic.Uint64 // entries evicted by size or age
	droppedEvents atomic.Uint64 // events past MaxEvents
}

type entry struct {
	Entry
	prev, next *entry
	// buf backs the first events, so that an execution's dispatched,
	// started and finished events cost one allocation with the entry.
	buf [4]EventRecord
}

// New returns an empty Tracker.
func New(cfg Config) (*Tracker, error) {
	if cfg.MaxEntries < 1 {
		return nil, fmt.Errorf("%w: debugtrack: Config.MaxEntries is %d; give how many step executions to keep (at least 1)",
			taskertype.ErrInvalid, cfg.MaxEntries)
	}
	if cfg.MaxAge <= 0 {
		return nil, fmt.Errorf("%w: debugtrack: Config.MaxAge is %v; give how long to keep an execution after its last event (> 0)",
			taskertype.ErrInvalid, cfg.MaxAge)
	}
	switch {
	case cfg.MaxEvents == 0:
		cfg.MaxEvents = DefaultMaxEvents
	case cfg.MaxEvents < 0:
		return nil, fmt.Errorf("%w: debugtrack: Config.MaxEvents is %d; give the events to keep per execution (at least 1), or 0 for %d",
			taskertype.ErrInvalid, cfg.MaxEvents, DefaultMaxEvents)
	}
	t := &Tracker{
		maxEntries: cfg.MaxEntries,
		maxAge:     cfg.MaxAge,
		maxEvents:  cfg.MaxEvents,
		clock:      cfg.Clock,
		log:        cfg.Logger,
		m:          make(map[uuid.UUID]*entry),
	}
	if t.clock == nil {
		t.clock = taskertype.SystemClock{}
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	return t, nil
}

// Record appends an event to the execution id, creating its entry on the
// first event. taskID, stepID and stepName fill the entry's fields the
// first time they are given (non-zero).
func (t *Tracker) Record(id, taskID, stepID uuid.UUID, stepName, event, detail string) {
	now := t.clock.Now()
	cutoff := now.Add(-t.maxAge)
	var evicted uint64
	t.mu.Lock()
	e := t.m[id]
	if e == nil {
		if len(t.m) >= t.maxEntries {
			t.removeLocked(t.head)
			evicted++
		}
		e = &entry{Entry: Entry{ID: id, First: now}}
		e.Events = e.buf[:0:min(len(e.buf), t.maxEvents)]
		t.m[id] = e
	} else {
		t.unlinkLocked(e)
	}
	// Keep the list ordered by Last although goroutines read the clock
	// before taking the lock in any order.
	if t.tail != nil && now.Before(t.tail.Last) {
		now = t.tail.Last
	}
	e.Last = now
	if e.TaskID == uuid.Nil {
		e.TaskID = taskID
	}
	if e.StepID == uuid.Nil {
		e.StepID = stepID
	}
	if e.StepName == "" {
		e.StepName = stepName
	}
	dropEvent := len(e.Events) >= t.maxEvents
	if dropEvent {
		e.DroppedEvents++
	} else {
		e.Events = append(e.Events, EventRecord{Name: event, At: now, Detail: detail})
	}
	t.pushBackLocked(e)
	for i := 0; i < expireOnRecord && t.head != e && !t.head.Last.After(cutoff); i++ {
		t.removeLocked(t.head)
		evicted++
	}
	t.mu.Unlock()
	if evicted > 0 {
		t.dropped.Add(evicted)
	}
	if dropEvent {
		t.droppedEvents.Add(1)
	}
}

// Get returns a copy of the execution id's entry; false if it is unknown
// or older than MaxAge.
func (t *Tracker) Get(id uuid.UUID) (Entry, bool) {
	cutoff := t.clock.Now().Add(-t.maxAge)
	t.mu.RLock()
	defer t.mu.RUnlock()
	e := t.m[id]
	if e == nil || !e.Last.After(cutoff) {
		return Entry{}, false
	}
	return e.copy(), true
}

// Recent returns copies of the n most recently updated entries (younger
// than MaxAge), newest first.
func (t *Tracker) Recent(n int) []Entry {
	if n <= 0 {
		return nil
	}
	cutoff := t.clock.Now().Add(-t.maxAge)
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]Entry, 0, min(n, len(t.m)))
	for e := t.tail; e != nil && len(out) < n && e.Last.After(cutoff); e = e.prev {
		out = append(out, e.copy())
	}
	return out
}

// Cleanup drops the entries whose last event is MaxAge old or older and
// returns how many it dropped. Record sheds a few on its way, so calling
// Cleanup is only needed to release memory while the worker is idle.
func (t *Tracker) Cleanup() int {
	cutoff := t.clock.Now().Add(-t.maxAge)
	n := 0
	t.mu.Lock()
	for t.head != nil && !t.head.Last.After(cutoff) {
		t.removeLocked(t.head)
		n++
	}
	left := len(t.m)
	t.mu.Unlock()
	if n > 0 {
		t.dropped.Add(uint64(n))
		t.log.Debug("debugtrack: dropped old step executions", "dropped", n, "kept", left, "max_age", t.maxAge)
	}
	return n
}

// Len returns the number of entries kept, expired ones not yet dropped
// included.
func (t *Tracker) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// Dropped returns how many entries were evicted, by size or by age.
func (t *Tracker) Dropped() uint64 { return t.dropped.Load() }

// DroppedEvents returns how many events were not kept because their entry
// had MaxEvents already.
func (t *Tracker) DroppedEvents() uint64 { return t.droppedEvents.Load() }

func (e *entry) copy() Entry {
	c := e.Entry
	c.Events = append([]EventRecord(nil), e.Events...)
	return c
}

func (t *Tracker) unlinkLocked(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		t.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		t.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (t *Tracker) pushBackLocked(e *entry) {
	e.prev = t.tail
	if t.tail != nil {
		t.tail.next = e
	} else {
		t.head = e
	}
	t.tail = e
}

func (t *Tracker) removeLocked(e *entry) {
	t.unlinkLocked(e)
	delete(t.m, e.ID)
}
