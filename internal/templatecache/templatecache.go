// Package templatecache caches template lookups in front of the store,
// where every process registers its templates (StoreSource): a miss is a
// database read and a parse of the stored document (about 0.5 ms, nearly
// all of it the parse), a hit a few hundred nanoseconds. Lookups are on
// the task-creation hot path and almost all hit, so a hit takes no lock
// and writes no shared memory in the steady state; the cache is bounded
// (MaxEntries) and its entries expire (TTL). A registered version never
// changes, so only a "latest" lookup can be stale: a newer version
// registered by another process is seen after at most TTL, or at once
// after Invalidate (which this process's own registrations call).
package templatecache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v4"

	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// Defaults applied to the zero fields of a Config.
const (
	DefaultMaxEntries = 1024
	DefaultTTL        = time.Minute
)

// Source is the source of truth for templates. Get returns the template
// namespace/name at version, "" meaning the latest, or an error (one
// matching taskertype.ErrNotFound for an unknown template).
type Source interface {
	Get(ctx context.Context, namespace, name, version string) (*template.Template, error)
}

// Config configures a Manager. The zero value is valid.
type Config struct {
	// MaxEntries bounds the cached lookups. Zero means DefaultMaxEntries
	// (1024); negative is an error.
	MaxEntries int
	// TTL is how long a lookup stays cached. Zero means DefaultTTL (1m);
	// negative is an error.
	TTL time.Duration
	// Clock tells the time; nil means the wall clock.
	Clock taskertype.Clock
	// Logger receives invalidations (Debug) and source panics (Error); nil
	// means none are logged.
	Logger *slog.Logger
}

// Stats counts a Manager's work.
type Stats struct {
	Hits   uint64
	Misses uint64 // lookups not answered from the cache, expired entries included
	// Evictions counts entries removed to make room for another: an expired
	// one first, else the first not looked up since the CLOCK hand last
	// passed. Invalidations and replacements of expired entries are not
	// evictions.
	Evictions uint64
	Loads     uint64 // calls to the source: concurrent misses of one key share one
	Entries   int
}

type key struct{ namespace, name, version string }

func (k key) String() string {
	return template.Key{Namespace: k.namespace, Name: k.name, Version: k.version}.String()
}

// entry is immutable but for ref.
type entry struct {
	t       *template.Template
	k       key
	expires int64       // nanoseconds since Manager.base
	ref     atomic.Bool // CLOCK reference bit: looked up since the hand passed
	slot    int         // index in Manager.ring; guarded by Manager.mu
}

// Manager caches template lookups. It is safe for concurrent use.
//
// Structure: an xsync.Map (a concurrent hash map whose reads take no lock)
// from the exact key asked to an immutable entry, plus a CLOCK ring of the
// entries for the size bound. A hit is a map read, a clock read and, only if
// the entry's reference bit is clear, one store to it; all writes (insert,
// evict, invalidate) are on the miss path and serialised by one mutex, which
// no hit ever takes. Misses of one key load once (a singleflight of its
// own: x/sync's DoChan costs a goroutine per load, Do cannot stop waiting
// on the caller's ctx).
//
// BenchmarkTemplateResolve (store_bench_test.go) measures it on the real
// path, with the SQLite or PostgreSQL store behind it, against no cache
// and against the analysis's RWMutex + LRU; BenchmarkTemplateCache and
// BenchmarkTemplateCacheHit (cache_bench_test.go) compare the structures
// alone, otter and a copy-on-write map included, in front of an in-memory
// source. The figures and the choice are in docs/concurrency.md (#6): the
// cache makes a lookup thousands of times cheaper than a store read and a
// parse; between the structures, on 2 CPUs, the LRU's exclusive lock is
// cheap and the two are close, and what decides is that every LRU hit
// takes that lock (it serialises all hits as cores grow) while an xsync
// hit writes nothing shared. The clock read is most of a hit: time.Since
// costs ~30ns and time.Now ~90ns on this machine.
type Manager struct {
	src   Source
	max   int
	ttl   time.Duration
	clock taskertype.Clock
	log   *slog.Logger
	// Entry times are nanoseconds since base. With the wall clock they are
	// read from the monotonic clock (time.Since), which is cheaper than
	// time.Now and immune to steps of the wall clock.
	base      time.Time
	monotonic bool

	entries *xsync.Map[key, *entry]
	epoch   atomic.Uint64 // bumped by Invalidate: loads begun before are not cached

	fmu     sync.Mutex // guards flights
	flights map[flightKey]*flight

	hits, misses *counter // striped: hits must not contend on one word
	loads        atomic.Uint64

	mu        sync.Mutex // serialises writers of entries and ring
	ring      []*entry
	hand      int
	evictions uint64
}

// New returns a Manager in front of src.
func New(src Source, cfg Config) (*Manager, error) {
	if src == nil {
		return nil, fmt.Errorf("%w: templatecache: Source is nil; give the store's (StoreSource) or another Source", taskertype.ErrInvalid)
	}
	if cfg.MaxEntries < 0 {
		return nil, fmt.Errorf("%w: templatecache: MaxEntries is %d; give at least 1, or 0 for the default %d",
			taskertype.ErrInvalid, cfg.MaxEntries, DefaultMaxEntries)
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("%w: templatecache: TTL is %s; give a positive duration, or 0 for the default %s",
			taskertype.ErrInvalid, cfg.TTL, DefaultTTL)
	}
	m := &Manager{
		src: src, max: cfg.MaxEntries, ttl: cfg.TTL, clock: cfg.Clock, log: cfg.Logger,
		hits: newCounter(), misses: newCounter(), flights: map[flightKey]*flight{},
	}
	if m.max == 0 {
		m.max = DefaultMaxEntries
	}
	if m.ttl == 0 {
		m.ttl = DefaultTTL
	}
	switch m.clock.(type) {
	case nil, taskertype.SystemClock, *taskertype.SystemClock:
		m.clock, m.monotonic = taskertype.SystemClock{}, true
	}
	m.base = m.clock.Now()
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.entries = xsync.NewMap[key, *entry](xsync.WithPresize(m.max))
	m.ring = make([]*entry, 0, m.max)
	return m, nil
}

// Get returns the template namespace/name at version ("" for the latest).
// The lookup is cached under the key as asked, so a cached "latest" is
// looked up again after TTL. Concurrent misses of one key share one load,
// run by the first of them under its ctx; the others stop waiting when
// their own ctx ends, and load again themselves if the first gave up.
// Errors are not cached: an unknown template is asked of the source every
// time (concurrent asks sharing one load), so one registered since is
// found at once.
func (m *Manager) Get(ctx context.Context, namespace, name, version string) (*template.Template, error) {
	k := key{namespace, name, version}
	if e, ok := m.entries.Load(k); ok && m.now() < e.expires {
		if !e.ref.Load() { // a store only when the bit is clear: no cache-line ping-pong on hot keys
			e.ref.Store(true)
		}
		m.hits.Inc()
		return e.t, nil
	}
	m.misses.Inc()
	return m.load(ctx, k)
}

func (m *Manager) now() int64 {
	if m.monotonic {
		return int64(time.Since(m.base))
	}
	return int64(m.clock.Now().Sub(m.base))
}

var errNilTemplate = errors.New("the source returned no template and no error")

// A flight is one load from the source, shared by the callers that miss on
// its key meanwhile. The epoch is part of the key: a Get after an
// Invalidate does not join a load that began before it.
type flightKey struct {
	epoch uint64
	k     key
}

type flight struct {
	done chan struct{} // closed when t and err are set
	t    *template.Template
	err  error
	// leaderGaveUp: the load failed because the caller that ran it gave
	// up (its ctx ended), which says nothing to the others.
	leaderGaveUp bool
}

func (m *Manager) load(ctx context.Context, k key) (*template.Template, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("template %s: %w", k, err)
		}
		fk := flightKey{m.epoch.Load(), k}
		m.fmu.Lock()
		f, joined := m.flights[fk]
		if !joined {
			// A flight caches its template before it leaves m.flights, so a
			// caller that finds no flight here finds the last one's result
			// in the cache: it must not load again.
			if e, ok := m.entries.Load(k); ok && m.now() < e.expires {
				m.fmu.Unlock()
				return e.t, nil
			}
			f = &flight{done: make(chan struct{})}
			m.flights[fk] = f
		}
		m.fmu.Unlock()
		if !joined {
			return m.lead(ctx, fk, f)
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("template %s: %w", k, ctx.Err())
		}
		if f.leaderGaveUp {
			continue // load it ourselves, under our own ctx
		}
		return f.t, f.err
	}
}

// lead runs the load of flight f on the calling goroutine, under its ctx
// (no goroutine, no timer), and hands the result to the callers waiting.
func (m *Manager) lead(ctx context.Context, fk flightKey, f *flight) (*template.Template, error) {
	finished := false
	defer func() {
		if !finished { // the source panicked; the panic goes on in this caller
			f.err = fmt.Errorf("template %s: the template source panicked", fk.k)
		}
		m.fmu.Lock()
		delete(m.flights, fk)
		m.fmu.Unlock()
		close(f.done)
	}()
	m.loads.Add(1)
	t, err := m.src.Get(ctx, fk.k.namespace, fk.k.name, fk.k.version)
	if err == nil && t == nil {
		err = fmt.Errorf("template %s: %w", fk.k, errNilTemplate)
	}
	if err == nil {
		m.insert(fk.k, t, fk.epoch) // before the flight ends: a caller then finds it cached
	}
	f.t, f.err, f.leaderGaveUp = t, err, err != nil && ctx.Err() != nil
	finished = true
	return t, err
}

// insert caches t under k unless an Invalidate ran since the load began.
func (m *Manager) insert(k key, t *template.Template, epoch uint64) {
	now := m.now()
	e := &entry{t: t, k: k, expires: now + int64(m.ttl)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.epoch.Load() != epoch {
		return
	}
	if old, ok := m.entries.Load(k); ok { // expired, or loaded twice across an epoch
		e.slot = old.slot
		m.ring[e.slot] = e
		m.entries.Store(k, e)
		return
	}
	if len(m.ring) < m.max {
		e.slot = len(m.ring)
		m.ring = append(m.ring, e)
		m.entries.Store(k, e)
		return
	}
	// CLOCK: give a second chance to entries looked up since the hand last
	// passed; take the first expired or unreferenced one. One turn clears
	// every bit, so this ends within len(ring)+1 steps.
	for {
		c := m.ring[m.hand]
		if c.expires > now && c.ref.Load() {
			c.ref.Store(false)
			m.hand = (m.hand + 1) % len(m.ring)
			continue
		}
		m.entries.Delete(c.k)
		m.evictions++
		e.slot = m.hand
		m.ring[m.hand] = e
		m.entries.Store(k, e)
		m.hand = (m.hand + 1) % len(m.ring)
		return
	}
}

// Invalidate drops every cached version of namespace/name, "latest"
// included. A load of it in flight is not cached, and a Get that follows
// loads again.
func (m *Manager) Invalidate(namespace, name string) {
	m.mu.Lock()
	m.epoch.Add(1)
	dropped := 0
	for i := 0; i < len(m.ring); {
		e := m.ring[i]
		if e.k.namespace != namespace || e.k.name != name {
			i++
			continue
		}
		m.entries.Delete(e.k)
		last := len(m.ring) - 1
		m.ring[i] = m.ring[last]
		m.ring[i].slot = i
		m.ring[last] = nil
		m.ring = m.ring[:last]
		dropped++
	}
	if m.hand >= len(m.ring) {
		m.hand = 0
	}
	m.mu.Unlock()
	m.log.Debug("template cache invalidated", "namespace", namespace, "name", name, "entries", dropped)
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{
		Hits: m.hits.Value(), Misses: m.misses.Value(),
		Evictions: m.evictions, Loads: m.loads.Load(), Entries: len(m.ring),
	}
}
