// Package events is the in-process event bus: components publish what
// happened (a task or a step changed state) and anyone may subscribe, to all
// events or to some kinds or to one task. Publishing never blocks: each
// subscriber has a bounded buffer, and an event that does not fit is dropped
// and counted on that subscriber.
package events

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/puzpuzpuz/xsync/v4"

	"github.com/tasker-go/tasker/taskertype"
)

// Event kinds.
const (
	KindTaskTransition = "task.transition"
	KindStepTransition = "step.transition"
)

// Event is something that happened, published after it was committed.
type Event struct {
	Kind     string
	TaskID   uuid.UUID
	StepID   uuid.UUID // uuid.Nil for task events
	StepName string
	From, To string
	Event    string // the state machine's event
	At       time.Time
	Attempt  int
	// Failure is set on the step transitions that record a failed attempt.
	Failure *taskertype.StepFailure
	// Namespace is the task's namespace when the publisher knew it (every
	// task transition, and the step transitions orchestration judges).
	Namespace string
	// Handler is the step's handler; "" for task events.
	Handler string
	// Duration is the last attempt's run time (its finish minus its start)
	// on step transitions after an attempt ended; 0 otherwise.
	Duration time.Duration
}

// Filter selects events. The zero Filter selects all.
type Filter struct {
	// Kinds keeps events of these kinds; empty keeps all kinds.
	Kinds []string
	// TaskID keeps one task's events; uuid.Nil keeps every task's.
	TaskID uuid.UUID
	// To keeps transitions into these states; empty keeps all.
	To []string
}

func (f *Filter) match(e *Event) bool {
	if f.TaskID != uuid.Nil && f.TaskID != e.TaskID {
		return false
	}
	return (len(f.Kinds) == 0 || slices.Contains(f.Kinds, e.Kind)) && (len(f.To) == 0 || slices.Contains(f.To, e.To))
}

// ErrBufferSize is returned for a subscription buffer below 1.
var ErrBufferSize = errors.New("events: subscription buffer must be at least 1")

// Bus fans events out to subscribers. Subscribing is rare and publishing is
// on every state change. Subscribers of every task sit in a copy-on-write
// slice (one atomic load per publish, no lock); subscribers of one task (as
// WaitTask makes them, many at once) sit in an index by task, so that a
// publish looks up its own task's few subscribers instead of scanning all.
// Measured by BenchmarkBusPublish (bus_bench_test.go) with the subscribers
// a real engine has (none in a serving process, WaitTask callers, a CLI's
// progress subscriber): figures and command in docs/concurrency.md (#9).
type Bus struct {
	mu     sync.Mutex // serialises writers
	all    atomic.Pointer[[]*Subscription]
	byTask *xsync.Map[uuid.UUID, []*Subscription]
	tasks  atomic.Int64 // tasks with subscribers: skips the lookup when 0
	n      atomic.Int64
	// observer sees every event synchronously (the engine's counters).
	observer atomic.Pointer[func(*Event)]
}

// NewBus returns a bus without subscribers.
func NewBus() *Bus {
	b := &Bus{byTask: xsync.NewMap[uuid.UUID, []*Subscription]()}
	b.all.Store(&[]*Subscription{})
	return b
}

// Subscribe registers a subscriber with a buffer of size events.
func (b *Bus) Subscribe(f Filter, size int) (*Subscription, error) {
	if size < 1 {
		return nil, fmt.Errorf("%w (got %d)", ErrBufferSize, size)
	}
	s := &Subscription{bus: b, filter: f, ch: make(chan Event, size)}
	b.mu.Lock()
	if f.TaskID == uuid.Nil {
		next := append(slices.Clip(*b.all.Load()), s)
		b.all.Store(&next)
	} else {
		l, _ := b.byTask.Load(f.TaskID)
		if len(l) == 0 {
			b.tasks.Add(1)
		}
		b.byTask.Store(f.TaskID, append(slices.Clip(l), s))
	}
	b.n.Add(1)
	b.mu.Unlock()
	return s, nil
}

// Observe makes fn see every event published from now on, synchronously,
// before the subscribers: fn must be quick, must not block and must not
// keep the pointer past its call (the engine's counters). A later call
// replaces fn.
func (b *Bus) Observe(fn func(*Event)) { b.observer.Store(&fn) }

// Publish hands a copy of e to every matching subscriber without waiting;
// it keeps no reference to e. (A pointer: the observer's call made an
// Event passed by value escape, one allocation per event.)
func (b *Bus) Publish(e *Event) {
	if fn := b.observer.Load(); fn != nil {
		(*fn)(e)
	}
	for _, s := range *b.all.Load() {
		s.offer(e)
	}
	if b.tasks.Load() == 0 {
		return
	}
	l, _ := b.byTask.Load(e.TaskID)
	for _, s := range l {
		s.offer(e)
	}
}

// Subscribers returns the number of live subscriptions.
func (b *Bus) Subscribers() int { return int(b.n.Load()) }

// Dropped sums the events dropped by the live subscriptions.
func (b *Bus) Dropped() uint64 {
	var n uint64
	for _, s := range *b.all.Load() {
		n += s.Dropped()
	}
	b.byTask.Range(func(_ uuid.UUID, l []*Subscription) bool {
		for _, s := range l {
			n += s.Dropped()
		}
		return true
	})
	return n
}

func (b *Bus) remove(s *Subscription) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.filter.TaskID == uuid.Nil {
		old := *b.all.Load()
		i := slices.Index(old, s)
		if i < 0 {
			return false
		}
		next := slices.Delete(slices.Clone(old), i, i+1)
		b.all.Store(&next)
	} else {
		l, _ := b.byTask.Load(s.filter.TaskID)
		i := slices.Index(l, s)
		if i < 0 {
			return false
		}
		if len(l) == 1 {
			b.byTask.Delete(s.filter.TaskID)
			b.tasks.Add(-1)
		} else {
			b.byTask.Store(s.filter.TaskID, slices.Delete(slices.Clone(l), i, i+1))
		}
	}
	b.n.Add(-1)
	return true
}

// Subscription receives events on C until closed.
type Subscription struct {
	bus     *Bus
	filter  Filter
	ch      chan Event
	dropped atomic.Uint64
}

// C delivers the events. It is never closed (a publisher may still hold the
// old snapshot), so a reader also selects on its own context.
func (s *Subscription) C() <-chan Event { return s.ch }

// offer hands e over if it matches, or counts it dropped when the buffer
// is full.
func (s *Subscription) offer(e *Event) {
	if !s.filter.match(e) {
		return
	}
	select {
	case s.ch <- *e:
	default:
		s.dropped.Add(1)
	}
}

// Dropped counts the events that did not fit in the buffer.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription. It reports false when it was already closed.
func (s *Subscription) Close() bool { return s.bus.remove(s) }
