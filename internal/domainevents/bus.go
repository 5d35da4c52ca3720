package domainevents

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"sync/atomic"
)

// ErrPattern is wrapped by the errors for a bad subscription pattern.
var ErrPattern = errors.New("domain events: bad subscription pattern")

// ErrBufferSize is returned for a subscription buffer below 1.
var ErrBufferSize = errors.New("domain events: subscription buffer must be at least 1")

// CheckPattern checks a subscription pattern: a glob over event names
// (path.Match syntax: * any run of characters, ? one, [a-z] a class), e.g.
// "order.*" or "*".
func CheckPattern(pattern string) error {
	if pattern == "" {
		return fmt.Errorf("%w: the pattern is empty; use \"*\" for every event or a glob like \"order.*\"", ErrPattern)
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return fmt.Errorf("%w: %q: %v; use a glob like \"order.*\" (* any characters, ? one, [abc] a class)", ErrPattern, pattern, err)
	}
	return nil
}

// Bus hands fast and broadcast domain events to the subscribers whose
// pattern matches their name. Publishing never blocks: each subscription
// has a bounded buffer and an event that does not fit is dropped, counted
// on the subscription and on the bus.
type Bus struct {
	mu      sync.Mutex // serialises subscribe and close
	subs    atomic.Pointer[[]*Subscription]
	dropped atomic.Uint64
}

// NewBus returns a bus without subscribers.
func NewBus() *Bus {
	b := &Bus{}
	b.subs.Store(&[]*Subscription{})
	return b
}

// Subscribe registers a subscription to the events whose name matches
// pattern, with a buffer of size events.
func (b *Bus) Subscribe(pattern string, size int) (*Subscription, error) {
	if err := CheckPattern(pattern); err != nil {
		return nil, err
	}
	if size < 1 {
		return nil, fmt.Errorf("%w (got %d)", ErrBufferSize, size)
	}
	s := &Subscription{bus: b, pattern: pattern, ch: make(chan Event, size)}
	b.mu.Lock()
	next := append(slices.Clip(*b.subs.Load()), s)
	b.subs.Store(&next)
	b.mu.Unlock()
	return s, nil
}

// Publish offers e to every matching subscription and returns how many
// took it.
func (b *Bus) Publish(e *Event) (delivered int) {
	for _, s := range *b.subs.Load() {
		if ok, _ := path.Match(s.pattern, e.Name); !ok {
			continue
		}
		select {
		case s.ch <- *e:
			delivered++
		default:
			s.dropped.Add(1)
			b.dropped.Add(1)
		}
	}
	return delivered
}

// Subscribers returns the number of live subscriptions.
func (b *Bus) Subscribers() int { return len(*b.subs.Load()) }

// Dropped counts the events that did not fit in a subscription's buffer,
// closed subscriptions' included.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Subscription receives the domain events matching its pattern.
type Subscription struct {
	bus     *Bus
	pattern string
	ch      chan Event
	dropped atomic.Uint64
}

// C delivers the events. It is never closed: a reader also selects on its
// own context.
func (s *Subscription) C() <-chan Event { return s.ch }

// Pattern returns the subscription's pattern.
func (s *Subscription) Pattern() string { return s.pattern }

// Dropped counts the events that did not fit in this subscription's buffer.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription. It reports false when it was already closed.
func (s *Subscription) Close() bool {
	b := s.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.subs.Load()
	i := slices.Index(old, s)
	if i < 0 {
		return false
	}
	next := slices.Delete(slices.Clone(old), i, i+1)
	b.subs.Store(&next)
	return true
}
