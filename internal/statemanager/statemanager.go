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
// Its one user is orchestration's lockTask (internal/orchestration), on
// PostgreSQL: Peek under the task's row lock, Put after the commit,
// Invalidate when the task ends or a compare-and-set met a stale state.
// Nothing loads through the cache: a miss is read in the caller's
// transaction, under the row lock, which is the read the cache saves on a
// hit (one round trip per result; docs/concurrency.md, #2/#3).
//
// Design: one sync.Mutex over a Go map, held for one map operation and
// never across anything that blocks, bounded by MaxEntries: a Put into a
// full cache drops an entry the map's iteration picks (at random), which
// costs its task one miss. On orchestration's operations it beat otter
// (S3-FIFO, which this replaced) by an order of magnitude and tied with
// xsync.Map (BenchmarkMachineOps).
package statemanager

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Cache is a bounded cache of values of type V by key K.
type Cache[K comparable, V any] struct {
	max int

	mu sync.Mutex
	m  map[K]V

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
	return &Cache[K, V]{max: cfg.MaxEntries, m: make(map[K]V, min(cfg.MaxEntries, 1024))}, nil
}

// Peek returns the cached value without counting a hit or a miss: the
// caller may find the value stale, and says so with Count.
func (c *Cache[K, V]) Peek(key K) (V, bool) {
	c.mu.Lock()
	v, ok := c.m[key]
	c.mu.Unlock()
	return v, ok
}

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
// it left the task in. In a full cache it drops another entry first.
func (c *Cache[K, V]) Put(key K, v V) {
	c.mu.Lock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			c.evictions.Add(1)
			break
		}
	}
	c.m[key] = v
	c.mu.Unlock()
}

// Invalidate drops a key: a stale entry, or a finished task.
func (c *Cache[K, V]) Invalidate(key K) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

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
	c.mu.Lock()
	n := len(c.m)
	c.mu.Unlock()
	return Stats{Entries: n, Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load()}
}
