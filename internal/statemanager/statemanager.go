// Package statemanager is orchestration's cache of task state machines: a
// task with its steps as orchestration last saw them, so that processing a
// result does not read all the task's steps again.
//
// The store stays the truth. Every change of a task or of its steps that
// orchestration relies on raises the task's Revision in the store
// (taskertype.BumpsRevision); orchestration reads the task row under its
// lock anyway, so a cached machine whose revision differs from the row's is
// stale and is not used. Writes are compare-and-set in the store whatever
// the cache says.
//
// Its one user is orchestration's lockTask (internal/orchestration): Peek
// under the task's row lock, Put after the commit, Invalidate when the task
// ends or a compare-and-set met a stale state. Nothing loads through the
// cache: a miss is read in the caller's transaction, under the row lock,
// which is the read the cache saves on a hit (one round trip per result on
// PostgreSQL; docs/concurrency.md, #2/#3). The cache is bounded and evicts
// (otter, S3-FIFO).
package statemanager

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/maypok86/otter/v2"
)

// Cache is a bounded cache of values of type V by key K.
type Cache[K comparable, V any] struct {
	entries *otter.Cache[K, V]

	hits, misses, evictions atomic.Uint64
}

// Config configures a Cache.
type Config struct {
	// MaxEntries bounds the cache; at least 1.
	MaxEntries int
}

// ErrConfig wraps the configuration errors.
var ErrConfig = errors.New("statemanager: invalid configuration")

// New returns an empty cache.
func New[K comparable, V any](cfg Config) (*Cache[K, V], error) {
	if cfg.MaxEntries < 1 {
		return nil, fmt.Errorf("%w: MaxEntries is %d: give at least 1", ErrConfig, cfg.MaxEntries)
	}
	c := &Cache[K, V]{}
	entries, err := otter.New(&otter.Options[K, V]{
		MaximumSize: cfg.MaxEntries,
		OnDeletion: func(e otter.DeletionEvent[K, V]) {
			if e.WasEvicted() {
				c.evictions.Add(1)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c.entries = entries
	return c, nil
}

// Peek returns the cached value without counting a hit or a miss: the
// caller may find the value stale, and says so with Count.
func (c *Cache[K, V]) Peek(key K) (V, bool) { return c.entries.GetIfPresent(key) }

// Count records a lookup made with Peek: a hit when the value was there and
// used, a miss otherwise.
func (c *Cache[K, V]) Count(hit bool) {
	if hit {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
}

// Put stores a value, as orchestration does after a commit with the state
// it left the task in.
func (c *Cache[K, V]) Put(key K, v V) { c.entries.Set(key, v) }

// Invalidate drops a key: a stale entry, or a finished task.
func (c *Cache[K, V]) Invalidate(key K) { c.entries.Invalidate(key) }

// Stats counts the cache's work.
type Stats struct {
	Entries                 int
	Hits, Misses, Evictions uint64
}

// HitRatio is Hits / (Hits + Misses), 0 before any lookup.
func (s Stats) HitRatio() float64 {
	if s.Hits+s.Misses == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Misses)
}

// Stats returns the counters.
func (c *Cache[K, V]) Stats() Stats {
	return Stats{
		Entries: c.entries.EstimatedSize(), Hits: c.hits.Load(), Misses: c.misses.Load(),
		Evictions: c.evictions.Load(),
	}
}
