// Package statemanager is orchestration's cache of task state machines: a
// task with its steps as orchestration last saw them, so that processing a
// result does not read the whole task again.
//
// The store stays the truth. Every change of a task or of its steps that
// orchestration relies on raises the task's Revision in the store
// (taskertype.BumpsRevision); orchestration reads the task row under its
// lock anyway, so a cached machine whose revision differs from the row's is
// stale and is loaded again. Writes are compare-and-set in the store whatever the
// cache says.
//
// Get-or-create: a hit is a lookup in a concurrent map and never waits for
// another key's miss; concurrent misses for one key load once (the others
// wait for that load, not for a lock); loads run outside any lock. The cache
// is bounded and evicts (otter, S3-FIFO).
package statemanager

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"
)

// Cache is a bounded get-or-create cache of values of type V by key K.
type Cache[K comparable, V any] struct {
	entries *otter.Cache[K, V]
	load    func(ctx context.Context, key K) (V, error)
	group   singleflight.Group
	keyOf   func(K) string

	hits, misses, loads, evictions atomic.Uint64
}

// Config configures a Cache.
type Config[K comparable, V any] struct {
	// MaxEntries bounds the cache; at least 1.
	MaxEntries int
	// Load reads a value from the store on a miss. It runs outside any
	// lock; concurrent misses for one key share one call.
	Load func(ctx context.Context, key K) (V, error)
	// KeyString renders a key for the load deduplication; fmt's %v when nil.
	KeyString func(K) string
}

// ErrConfig wraps the configuration errors.
var ErrConfig = errors.New("statemanager: invalid configuration")

// New returns an empty cache.
func New[K comparable, V any](cfg Config[K, V]) (*Cache[K, V], error) {
	switch {
	case cfg.MaxEntries < 1:
		return nil, fmt.Errorf("%w: MaxEntries is %d: give at least 1", ErrConfig, cfg.MaxEntries)
	case cfg.Load == nil:
		return nil, fmt.Errorf("%w: Load is nil: give the function that reads an entry from the store", ErrConfig)
	}
	c := &Cache[K, V]{load: cfg.Load, keyOf: cfg.KeyString}
	if c.keyOf == nil {
		c.keyOf = func(k K) string { return fmt.Sprint(k) }
	}
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

// Peek returns the cached value without loading it and without counting
// a hit or a miss: the caller may find the value stale, and says so with
// Count.
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

// Get returns the cached value, loading it on a miss. A load that fails is
// not cached.
func (c *Cache[K, V]) Get(ctx context.Context, key K) (V, error) {
	if v, ok := c.Peek(key); ok {
		c.Count(true)
		return v, nil
	}
	c.Count(false)
	r, err, _ := c.group.Do(c.keyOf(key), func() (any, error) {
		if v, ok := c.entries.GetIfPresent(key); ok { // loaded while we queued
			return v, nil
		}
		c.loads.Add(1)
		v, err := c.load(ctx, key)
		if err != nil {
			return v, err
		}
		c.entries.Set(key, v)
		return v, nil
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return r.(V), nil
}

// Put stores a value, as orchestration does after a commit with the state
// it left the task in.
func (c *Cache[K, V]) Put(key K, v V) { c.entries.Set(key, v) }

// Invalidate drops a key: a stale entry, or a finished task.
func (c *Cache[K, V]) Invalidate(key K) { c.entries.Invalidate(key) }

// Stats counts the cache's work.
type Stats struct {
	Entries                        int
	Hits, Misses, Loads, Evictions uint64
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
		Loads: c.loads.Load(), Evictions: c.evictions.Load(),
	}
}
