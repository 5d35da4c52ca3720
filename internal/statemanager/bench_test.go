package statemanager

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/maypok86/otter/v2"
	"github.com/puzpuzpuz/xsync/v4"

	"github.com/tasker-go/tasker/internal/benchutil"
)

// The state manager's own cost, on orchestration's operations: per result,
// a Peek and a Count under the task's lock and a Put after the commit; a
// task that ends (one result in seven, the dag shape) is invalidated
// instead. Candidates:
//   - mutex-bounded: ours (Cache), a mutex over a map, bounded;
//   - mutex: the analysis's "current" (#2/#3, Mutex<HashMap>) as it would be
//     written for these operations: nothing loads through the cache, so no
//     lock is held across a store read (its real defect, gone with Get);
//     unbounded, as the analysis's is;
//   - xsync: the analysis's recommendation (DashMap), unbounded too;
//   - otter: the bounded cache (S3-FIFO) this package used before.
// What the cache saves against no cache at all is a store read; that is
// BenchmarkLockTask (internal/orchestration), on a real store.

type machineCache interface {
	Peek(uuid.UUID) (*int, bool)
	Put(uuid.UUID, *int)
	Invalidate(uuid.UUID)
	Count(bool)
}

type mutexCache struct {
	mu           sync.Mutex
	m            map[uuid.UUID]*int
	hits, misses uint64
}

func (c *mutexCache) Peek(k uuid.UUID) (*int, bool) {
	c.mu.Lock()
	v, ok := c.m[k]
	c.mu.Unlock()
	return v, ok
}

func (c *mutexCache) Put(k uuid.UUID, v *int) {
	c.mu.Lock()
	c.m[k] = v
	c.mu.Unlock()
}

func (c *mutexCache) Invalidate(k uuid.UUID) {
	c.mu.Lock()
	delete(c.m, k)
	c.mu.Unlock()
}

func (c *mutexCache) Count(hit bool) {
	c.mu.Lock()
	if hit {
		c.hits++
	} else {
		c.misses++
	}
	c.mu.Unlock()
}

// otterCache is the bounded cache this package used before (otter,
// S3-FIFO), with the counters the state manager keeps.
type otterCache struct {
	c            *otter.Cache[uuid.UUID, *int]
	hits, misses atomic.Uint64
}

func newOtterCache(b *testing.B, max int) *otterCache {
	c, err := otter.New(&otter.Options[uuid.UUID, *int]{MaximumSize: max})
	if err != nil {
		b.Fatal(err)
	}
	return &otterCache{c: c}
}

func (c *otterCache) Peek(k uuid.UUID) (*int, bool) { return c.c.GetIfPresent(k) }
func (c *otterCache) Put(k uuid.UUID, v *int)       { c.c.Set(k, v) }
func (c *otterCache) Invalidate(k uuid.UUID)        { c.c.Invalidate(k) }
func (c *otterCache) Count(hit bool) {
	if hit {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
}

type xsyncCache struct {
	m            *xsync.Map[uuid.UUID, *int]
	hits, misses *xsync.Counter
}

func (c xsyncCache) Peek(k uuid.UUID) (*int, bool) { return c.m.Load(k) }
func (c xsyncCache) Put(k uuid.UUID, v *int)       { c.m.Store(k, v) }
func (c xsyncCache) Invalidate(k uuid.UUID)        { c.m.Delete(k) }
func (c xsyncCache) Count(hit bool) {
	if hit {
		c.hits.Inc()
	} else {
		c.misses.Inc()
	}
}

// BenchmarkMachineOps: ns per result, 1024 tasks in flight.
//
//	go test -run '^$' -bench MachineOps -count 6 ./internal/statemanager
func BenchmarkMachineOps(b *testing.B) {
	const inFlight = 1024
	keys := make([]uuid.UUID, inFlight)
	for i := range keys {
		keys[i] = uuid.Must(uuid.NewV7())
	}
	cands := []struct {
		name string
		make func() machineCache
	}{
		{"mutex-bounded", func() machineCache {
			c, err := New[uuid.UUID, *int](Config{MaxEntries: 16384})
			if err != nil {
				b.Fatal(err)
			}
			return c
		}},
		{"mutex", func() machineCache { return &mutexCache{m: map[uuid.UUID]*int{}} }},
		{"xsync", func() machineCache {
			return xsyncCache{xsync.NewMap[uuid.UUID, *int](), xsync.NewCounter(), xsync.NewCounter()}
		}},
		{"otter", func() machineCache { return newOtterCache(b, 16384) }},
	}
	for _, g := range benchutil.Goroutines {
		for _, cand := range cands {
			b.Run(fmt.Sprintf("g%d/%s", g, cand.name), func(b *testing.B) {
				c := cand.make()
				v := new(int)
				for _, k := range keys {
					c.Put(k, v)
				}
				benchutil.RunG(b, g, func(id uint64, next func() bool) {
					i := int(id * 7919)
					for next() {
						k := keys[i%inFlight]
						_, ok := c.Peek(k)
						c.Count(ok)
						if i%7 == 6 {
							c.Invalidate(k)
						} else {
							c.Put(k, v)
						}
						i++
					}
				})
			})
		}
	}
}
