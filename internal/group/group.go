// Package group commits units of work in groups: a unit that arrives while
// no group is being committed is committed at once, together with whatever
// else is waiting, by the goroutine that brought it; units that arrive during
// a commit wait and go into the next group, which the first of them leads,
// unless the commit takes them into its own group first (More: a store
// whose transactions wait for a writer takes in what came during the wait).
// A lone unit pays no hand-off to another goroutine, and many units arriving
// together share one transaction: one commit and one write of each page they
// share. This is how the engine gets throughput out of SQLite's single writer.
package group

import (
	"sync"
)

// Committer groups units of type T. The zero value is not usable: set Max
// and Commit.
type Committer[T any] struct {
	// Max bounds the units in one group.
	Max int
	// Size, if set, gives a unit's size (bytes it adds to the group's
	// transaction, say), and MaxSize bounds the sum over a group: a group
	// takes units in line while the sum stays within MaxSize, and always
	// at least one unit.
	Size    func(T) int
	MaxSize int
	// Commit stores a group. It must settle every unit (record its result
	// or error on it) before it returns, those More gave it included; it is
	// never called concurrently. If it panics, the panic goes on in the
	// goroutine that led the group, after the group's other callers (those
	// More took included, settled or not) were released and the next group
	// was handed on: a panic never wedges the committer.
	Commit func(units []T)

	mu         sync.Mutex // never held across Commit
	pending    []*waiter[T]
	leading    bool         // a group is being committed, or its leader is chosen
	committing bool         // Commit is running: More may add to group
	group      []*waiter[T] // the group being committed
	size       int          // the sum of its units' sizes, when Size is set
}

type waiter[T any] struct {
	unit T
	wake chan struct{} // one value: committed, or asked to lead
	done bool          // guarded by mu: the unit's group was committed
}

// Do commits u in a group and returns once that group's Commit returned.
// A caller waits at most for the group being committed when it arrives and
// then for its own: the leader of a group returns after that group and hands
// the next one to the first unit waiting. The units waiting are bounded by
// the goroutines calling Do.
func (c *Committer[T]) Do(u T) {
	w := &waiter[T]{unit: u, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	c.pending = append(c.pending, w)
	if !c.leading {
		c.leading = true
		c.mu.Unlock()
		c.lead()
		return
	}
	c.mu.Unlock()
	<-w.wake
	c.mu.Lock()
	done := w.done
	c.mu.Unlock()
	if !done {
		c.lead() // handed the lead: w is first in line
	}
}

// lead commits one group, the first units in line, then wakes them and
// hands the lead to the next unit in line, if any.
func (c *Committer[T]) lead() {
	c.mu.Lock()
	c.size = 0
	units := c.takeLocked()
	c.committing = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.committing = false
		for _, w := range c.group {
			w.done = true
			w.wake <- struct{}{}
		}
		clear(c.group) // no waiter kept past its group
		c.group = c.group[:0]
		if len(c.pending) > 0 {
			c.pending[0].wake <- struct{}{} // not done: lead
		} else {
			c.leading = false
		}
		c.mu.Unlock()
	}()
	c.Commit(units)
}

// More takes the units that arrived since the group being committed was
// formed into that group, as far as Max and MaxSize allow, and returns them
// (none, if none are waiting or the group is full). It is for Commit: a
// store whose transactions wait for a single writer calls it once the
// writer is held, so that the units that came during the wait share the
// transaction instead of waiting for the next one. Commit then settles them
// with the rest of its group. While no Commit runs it returns nothing; it
// must not be called from another goroutine than the Commit's, nor after
// the Commit returned.
func (c *Committer[T]) More() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.committing {
		return nil
	}
	return c.takeLocked()
}

// takeLocked moves the first units in line into the group, within Max and
// MaxSize (a group always gets at least one unit), and returns them.
func (c *Committer[T]) takeLocked() []T {
	n := min(len(c.pending), max(c.Max, 1)-len(c.group))
	if c.Size != nil {
		for i, w := range c.pending[:n] {
			s := c.Size(w.unit)
			if (i > 0 || len(c.group) > 0) && c.size+s > c.MaxSize {
				n = i
				break
			}
			c.size += s
		}
	}
	if n <= 0 {
		return nil
	}
	units := make([]T, 0, n)
	for _, w := range c.pending[:n] {
		c.group = append(c.group, w)
		units = append(units, w.unit)
	}
	c.pending = append(c.pending[:0], c.pending[n:]...)
	clear(c.pending[len(c.pending):cap(c.pending)][:n]) // drop the moved waiters' old slots
	return units
}
