package dispatch

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/taskertype"
)

// broadcaster wakes every waiter at once: wait returns a channel that the
// next wake closes. Its state is one channel, whatever the number of
// waiters.
type broadcaster struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcaster) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcaster) wake() {
	b.mu.Lock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
	b.mu.Unlock()
}

// heldSince is when the complete timeout of a pending event started: when
// it was polled, or when its pull worker last extended it.
func (e *entry) heldSince() time.Time {
	if t := e.touched.Load(); t != 0 {
		if u := time.Unix(0, t); u.After(e.ev.PolledAt) {
			return u
		}
	}
	return e.ev.PolledAt
}

// PollMatch takes the oldest queued event that match accepts, if any. It
// never blocks. match is called under the queue's lock for each queued
// event (at most Capacity): it must be quick and must not call c.
func (c *Channel) PollMatch(match func(*Event) bool) (*Event, bool) {
	if c.isClosed.Load() {
		return nil, false
	}
	for {
		e := c.queue.takeFirst(func(e *entry) bool { return match(&e.ev) })
		if e == nil {
			return nil, false
		}
		e.ev.PolledAt = c.clock.Now()
		if !e.state.CompareAndSwap(stateQueued, statePending) {
			continue // its Handle gave up between the take and here
		}
		c.pending.insert(e.ev.ID, e)
		if e.state.Load() != statePending {
			c.pending.remove(e.ev.ID)
			continue
		}
		ev := e.ev
		return &ev, true
	}
}

// PollWaitMatch is PollMatch that waits until an event match accepts is
// queued, ctx ends (its cause is returned) or the channel is closed
// (taskertype.ErrClosed). Waiters with different filters never take each
// other's wake-up: every queued event wakes them all.
func (c *Channel) PollWaitMatch(ctx context.Context, match func(*Event) bool) (*Event, error) {
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	for {
		if c.isClosed.Load() {
			return nil, taskertype.ErrClosed
		}
		// Take the wake-up channel before polling, so that an event queued
		// between the poll and the wait still wakes us.
		woken := c.waiters.wait()
		if ev, ok := c.PollMatch(match); ok {
			return ev, nil
		}
		select {
		case <-woken:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-c.closed:
			return nil, taskertype.ErrClosed
		}
	}
}

// Extend restarts the complete timeout of pending event id, as if it had
// just been polled: its pull worker is still working on it. False if id is
// not pending (unknown, completed, timed out or abandoned).
func (c *Channel) Extend(id uuid.UUID) bool {
	now := c.clock.Now().UnixNano()
	found := false
	c.pending.rangeOne(id, func(e *entry) {
		if e.state.Load() == statePending {
			e.touched.Store(now)
			found = true
		}
	})
	return found
}

// IsPending reports whether event id is polled and not completed.
func (c *Channel) IsPending(id uuid.UUID) bool {
	found := false
	c.pending.rangeOne(id, func(e *entry) { found = e.state.Load() == statePending })
	return found
}

// CompleteTimeout is how long a pull worker may hold a polled event
// (Config.CompleteTimeout).
func (c *Channel) CompleteTimeout() time.Duration { return c.cfg.CompleteTimeout }
