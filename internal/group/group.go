// Package group commits units of work in groups: a unit that arrives while
// no group is being committed is committed at once, together with whatever
// else is waiting, by the goroutine that brought it; units that arrive during
// a commit wait and go into the next group, which the same goroutine leads.
// A lone unit pays no hand-off to another goroutine, and many units arriving
// together share one transaction: one commit and one write of each page they
// share. This is how the engine gets throughput out of SQLite's single writer.
package group

import (
	"slices"
	"sync"
)

// Committer groups units of type T. The zero value is not usable: set Max
// and Commit.
type Committer[T any] struct {
	// Max bounds the units in one group.
	Max int
	// Commit stores a group. It must settle every unit (record its result
	// or error on it) before it returns; it is never called concurrently.
	Commit func(units []T)

	mu      sync.Mutex // never held across Commit
	pending []T
	done    []chan struct{}
	leading bool
}

// Do commits u in a group and returns once that group's Commit returned.
// The number of units waiting is bounded by the number of goroutines
// calling Do.
func (c *Committer[T]) Do(u T) {
	done := make(chan struct{})
	c.mu.Lock()
	c.pending = append(c.pending, u)
	c.done = append(c.done, done)
	if c.leading {
		c.mu.Unlock()
		<-done
		return
	}
	c.leading = true
	for len(c.pending) > 0 {
		n := min(len(c.pending), max(c.Max, 1))
		units, dones := slices.Clone(c.pending[:n]), slices.Clone(c.done[:n])
		c.pending = slices.Delete(c.pending, 0, n)
		c.done = slices.Delete(c.done, 0, n)
		c.mu.Unlock()
		c.Commit(units)
		for _, d := range dones {
			close(d)
		}
		c.mu.Lock()
	}
	c.leading = false
	c.mu.Unlock()
}
