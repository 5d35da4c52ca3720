package templatecache

// The designs BenchmarkTemplateCache measures against Manager. Each has the
// Manager's behaviour where it matters to the benchmark: TTL, size bound,
// one load per key at a time, no cached errors.

import (
	"container/list"
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"
	"golang.org/x/sync/singleflight"

	"github.com/tasker-go/tasker/template"
)

type candidate interface {
	Get(ctx context.Context, namespace, name, version string) (*template.Template, error)
	counts() (hits, misses uint64)
}

func (m *Manager) counts() (uint64, uint64) { s := m.Stats(); return s.Hits, s.Misses }

// monoNow is the candidates' clock: the monotonic clock, as Manager and
// otter read it with the wall clock (time.Now costs twice as much).
var monoBase = time.Now()

func monoNow() int64 { return int64(time.Since(monoBase)) }

func sfKey(k key) string { return k.namespace + "\x00" + k.name + "\x00" + k.version }

// lruCache is the analysis's current design: one RWMutex over a map and an
// LRU list. A hit moves its entry to the front, so it takes the write lock.
type lruCache struct {
	src Source
	max int
	ttl time.Duration
	sf  singleflight.Group

	mu     sync.RWMutex
	m      map[key]*list.Element
	lru    *list.List // of *lruEntry, most recent first
	hits   uint64
	misses uint64
}

type lruEntry struct {
	k       key
	t       *template.Template
	expires int64
}

func newLRU(src Source, max int, ttl time.Duration) *lruCache {
	return &lruCache{src: src, max: max, ttl: ttl, m: map[key]*list.Element{}, lru: list.New()}
}

func (c *lruCache) Get(ctx context.Context, ns, name, version string) (*template.Template, error) {
	k := key{ns, name, version}
	now := monoNow()
	c.mu.Lock()
	if el, ok := c.m[k]; ok && now < el.Value.(*lruEntry).expires {
		c.lru.MoveToFront(el)
		c.hits++
		t := el.Value.(*lruEntry).t
		c.mu.Unlock()
		return t, nil
	}
	c.misses++
	c.mu.Unlock()
	v, err, _ := c.sf.Do(sfKey(k), func() (any, error) {
		t, err := c.src.Get(ctx, ns, name, version)
		if err != nil {
			return nil, err
		}
		e := &lruEntry{k: k, t: t, expires: monoNow() + int64(c.ttl)}
		c.mu.Lock()
		if el, ok := c.m[k]; ok {
			el.Value = e
			c.lru.MoveToFront(el)
		} else {
			c.m[k] = c.lru.PushFront(e)
			if c.lru.Len() > c.max {
				last := c.lru.Back()
				c.lru.Remove(last)
				delete(c.m, last.Value.(*lruEntry).k)
			}
		}
		c.mu.Unlock()
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*template.Template), nil
}

func (c *lruCache) counts() (uint64, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.hits, c.misses
}

// cowCache is a copy-on-write snapshot: a hit is an atomic load and a map
// read; a miss copies the whole map (and evicts the entry that expires
// first, which is the oldest inserted: FIFO).
type cowCache struct {
	src          Source
	max          int
	ttl          time.Duration
	sf           singleflight.Group
	snap         atomic.Pointer[map[key]*cowEntry]
	mu           sync.Mutex
	hits, misses *counter
}

type cowEntry struct {
	t       *template.Template
	expires int64
}

func newCOW(src Source, max int, ttl time.Duration) *cowCache {
	c := &cowCache{src: src, max: max, ttl: ttl, hits: newCounter(), misses: newCounter()}
	c.snap.Store(&map[key]*cowEntry{})
	return c
}

func (c *cowCache) Get(ctx context.Context, ns, name, version string) (*template.Template, error) {
	k := key{ns, name, version}
	if e, ok := (*c.snap.Load())[k]; ok && monoNow() < e.expires {
		c.hits.Inc()
		return e.t, nil
	}
	c.misses.Inc()
	v, err, _ := c.sf.Do(sfKey(k), func() (any, error) {
		t, err := c.src.Get(ctx, ns, name, version)
		if err != nil {
			return nil, err
		}
		e := &cowEntry{t: t, expires: monoNow() + int64(c.ttl)}
		c.mu.Lock()
		next := maps.Clone(*c.snap.Load())
		if _, ok := next[k]; !ok && len(next) >= c.max {
			var oldest key
			first := true
			var min int64
			for kk, ee := range next {
				if first || ee.expires < min {
					oldest, min, first = kk, ee.expires, false
				}
			}
			delete(next, oldest)
		}
		next[k] = e
		c.snap.Store(&next)
		c.mu.Unlock()
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*template.Template), nil
}

func (c *cowCache) counts() (uint64, uint64) { return c.hits.Value(), c.misses.Value() }

// otterCache is otter v2: S3-FIFO-style admission and eviction, expiry
// after write, its own per-key load deduplication and striped stats.
type otterCache struct {
	c         *otter.Cache[key, *template.Template]
	st        *stats.Counter
	src       Source
	evictions atomic.Uint64
}

func newOtter(src Source, max int, ttl time.Duration) *otterCache {
	o := &otterCache{st: stats.NewCounter(), src: src}
	o.c = otter.Must(&otter.Options[key, *template.Template]{
		MaximumSize:      max,
		ExpiryCalculator: otter.ExpiryWriting[key, *template.Template](ttl),
		StatsRecorder:    o.st,
		OnAtomicDeletion: func(e otter.DeletionEvent[key, *template.Template]) {
			if e.WasEvicted() {
				o.evictions.Add(1)
			}
		},
	})
	return o
}

func (o *otterCache) Get(ctx context.Context, ns, name, version string) (*template.Template, error) {
	return o.c.Get(ctx, key{ns, name, version}, otter.LoaderFunc[key, *template.Template](
		func(ctx context.Context, k key) (*template.Template, error) {
			return o.src.Get(ctx, k.namespace, k.name, k.version)
		}))
}

func (o *otterCache) counts() (uint64, uint64) {
	s := o.st.Snapshot()
	return s.Hits, s.Misses
}

func (o *otterCache) close() { o.c.StopAllGoroutines() }
