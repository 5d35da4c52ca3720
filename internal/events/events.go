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
// on every state change, so the subscriber list is a copy-on-write snapshot:
// Publish reads it with one atomic load and never takes a lock.
type Bus struct {
	mu   sync.Mutex // serialises writers of subs
	subs atomic.Pointer[[]*Subscription]
}

// NewBus returns a bus without subscribers.
func NewBus() *Bus {
	b := &Bus{}
	b.subs.Store(&[]*Subscription{})
	return b
}

// Subscribe registers a subscriber with a buffer of size events.
func (b *Bus) Subscribe(f Filter, size int) (*Subscription, error) {
	if size < 1 {
		return nil, fmt.Errorf("%w (got %d)", ErrBufferSize, size)
	}
	s := &Subscription{bus: b, filter: f, ch: make(chan Event, size)}
	b.mu.Lock()
	old := *b.subs.Load()
	next := make([]*Subscription, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	b.subs.Store(&next)
	b.mu.Unlock()
	return s, nil
}

// Publish hands e to every matching subscriber without waiting.
func (b *Bus) Publish(e Event) {
	for _, s := range *b.subs.Load() {
		if !s.filter.match(&e) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			s.dropped.Add(1)
		}
	}
}

// Subscribers returns the number of live subscriptions.
func (b *Bus) Subscribers() int { return len(*b.subs.Load()) }

func (b *Bus) remove(s *Subscription) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.subs.Load()
	i := slices.Index(old, s)
	if i < 0 {
		return false
	}
	next := make([]*Subscription, 0, len(old)-1)
	next = append(next, old[:i]...)
	next = append(next, old[i+1:]...)
	b.subs.Store(&next)
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

// Dropped counts the events that did not fit in the buffer.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription. It reports false when it was already closed.
func (s *Subscription) Close() bool { return s.bus.remove(s) }
