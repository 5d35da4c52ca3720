package correlation

// Benchmarks of the candidate designs for the correlation tracker. The
// winner is Tracker (tracker.go); the others are kept here only to be
// measured, behind the same Track/Complete/Sweep logic (benchTracker).
//
//	go test -run '^$' -bench Correlation ./internal/correlation

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/puzpuzpuz/xsync/v4"

	"github.com/tasker-go/tasker/internal/benchutil"
	"github.com/tasker-go/tasker/taskertype"
)

type tracker interface {
	Track(Pending) error
	Complete(uuid.UUID) (Pending, bool)
	Sweep() []Pending
}

// store is the map a candidate puts behind benchTracker.
type store interface {
	insert(p Pending) bool // false if the id is present
	remove(id uuid.UUID) (Pending, bool)
	sweep(cutoff time.Time) []Pending // removes entries with Since <= cutoff
}

// benchTracker enforces Capacity with an atomic counter reserved before
// the insert, so that the bound is exact with every map.
type benchTracker struct {
	capacity    int64
	orphanAfter time.Duration
	clock       taskertype.Clock
	n           atomic.Int64
	s           store

	accepted, completed, orphaned, rejected atomic.Uint64
}

func (t *benchTracker) Track(p Pending) error {
	if p.ID == uuid.Nil {
		return fmt.Errorf("%w: nil id", taskertype.ErrInvalid)
	}
	if p.Since.IsZero() {
		p.Since = t.clock.Now()
	}
	if t.n.Add(1) > t.capacity {
		t.n.Add(-1)
		t.rejected.Add(1)
		return ErrFull
	}
	if !t.s.insert(p) {
		t.n.Add(-1)
		return fmt.Errorf("%w: %s", ErrDuplicate, p.ID)
	}
	t.accepted.Add(1)
	return nil
}

func (t *benchTracker) Complete(id uuid.UUID) (Pending, bool) {
	p, ok := t.s.remove(id)
	if ok {
		t.n.Add(-1)
		t.completed.Add(1)
	}
	return p, ok
}

func (t *benchTracker) Sweep() []Pending {
	out := t.s.sweep(t.clock.Now().Add(-t.orphanAfter))
	t.n.Add(-int64(len(out)))
	t.orphaned.Add(uint64(len(out)))
	slices.SortFunc(out, func(a, b Pending) int { return a.Since.Compare(b.Since) })
	return out
}

// (b) xsync.Map: the analysis's recommendation (DashMap-like).
type xsyncStore struct {
	m *xsync.Map[uuid.UUID, Pending]
}

func (s xsyncStore) insert(p Pending) bool {
	_, loaded := s.m.LoadOrStore(p.ID, p)
	return !loaded
}
func (s xsyncStore) remove(id uuid.UUID) (Pending, bool) { return s.m.LoadAndDelete(id) }
func (s xsyncStore) sweep(cutoff time.Time) []Pending {
	var out []Pending
	s.m.DeleteMatching(func(_ uuid.UUID, p Pending) (bool, bool) {
		if !p.Since.After(cutoff) {
			out = append(out, p)
			return true, false
		}
		return false, false
	})
	return out
}

// (c) sync.Map, values boxed as *Pending so that CompareAndDelete works.
type syncMapStore struct{ m *sync.Map }

func (s syncMapStore) insert(p Pending) bool {
	_, loaded := s.m.LoadOrStore(p.ID, &p)
	return !loaded
}
func (s syncMapStore) remove(id uuid.UUID) (Pending, bool) {
	v, ok := s.m.LoadAndDelete(id)
	if !ok {
		return Pending{}, false
	}
	return *v.(*Pending), true
}
func (s syncMapStore) sweep(cutoff time.Time) []Pending {
	var out []Pending
	s.m.Range(func(k, v any) bool {
		if p := v.(*Pending); !p.Since.After(cutoff) && s.m.CompareAndDelete(k, v) {
			out = append(out, *p)
		}
		return true
	})
	return out
}

// (d) 16 mutex-guarded maps, chosen by the id's last 8 bytes.
type shardedStore struct{ shards *[16]shard }

type shard struct {
	mu sync.Mutex
	m  map[uuid.UUID]Pending
	_  [48]byte // keep shards on separate cache lines
}

func newShardedStore() shardedStore {
	s := shardedStore{shards: new([16]shard)}
	for i := range s.shards {
		s.shards[i].m = make(map[uuid.UUID]Pending)
	}
	return s
}

func (s shardedStore) shard(id uuid.UUID) *shard {
	return &s.shards[(binary.LittleEndian.Uint64(id[8:])*0x9E3779B97F4A7C15)>>60]
}
func (s shardedStore) insert(p Pending) bool {
	sh := s.shard(p.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[p.ID]; ok {
		return false
	}
	sh.m[p.ID] = p
	return true
}
func (s shardedStore) remove(id uuid.UUID) (Pending, bool) {
	sh := s.shard(id)
	sh.mu.Lock()
	p, ok := sh.m[id]
	if ok {
		delete(sh.m, id)
	}
	sh.mu.Unlock()
	return p, ok
}
func (s shardedStore) sweep(cutoff time.Time) []Pending {
	var out []Pending
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for id, p := range sh.m {
			if !p.Since.After(cutoff) {
				out = append(out, p)
				delete(sh.m, id)
			}
		}
		sh.mu.Unlock()
	}
	return out
}

type trackerCandidate struct {
	name string
	new  func(capacity int, orphanAfter time.Duration, c taskertype.Clock) tracker
}

func newBenchTracker(capacity int, orphanAfter time.Duration, c taskertype.Clock, s store) *benchTracker {
	return &benchTracker{capacity: int64(capacity), orphanAfter: orphanAfter, clock: c, s: s}
}

var trackerCandidates = []trackerCandidate{
	{"a-mutex-map", func(n int, o time.Duration, c taskertype.Clock) tracker {
		t, err := NewTracker(TrackerConfig{Capacity: n, OrphanAfter: o, Clock: c})
		if err != nil {
			panic(err)
		}
		return t
	}},
	{"b-xsync-map", func(n int, o time.Duration, c taskertype.Clock) tracker {
		return newBenchTracker(n, o, c, xsyncStore{xsync.NewMap[uuid.UUID, Pending]()})
	}},
	{"c-sync-map", func(n int, o time.Duration, c taskertype.Clock) tracker {
		return newBenchTracker(n, o, c, syncMapStore{new(sync.Map)})
	}},
	{"d-sharded16-mutex", func(n int, o time.Duration, c taskertype.Clock) tracker {
		return newBenchTracker(n, o, c, newShardedStore())
	}},
}

// idGen makes random-looking v4-shaped ids cheaply (splitmix64): the
// benchmark measures the tracker, not crypto/rand.
type idGen struct{ s uint64 }

var idSeed atomic.Uint64

// newIDGen starts each generator at a scrambled point of the sequence, so
// that generators do not overlap.
func newIDGen() *idGen {
	g := &idGen{s: idSeed.Add(1)}
	g.s = g.next64()
	return g
}

func (g *idGen) next64() uint64 {
	g.s += 0x9E3779B97F4A7C15
	z := g.s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func (g *idGen) next() uuid.UUID {
	var id uuid.UUID
	binary.LittleEndian.PutUint64(id[:8], g.next64())
	binary.LittleEndian.PutUint64(id[8:], g.next64())
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// attempt is how the worker uses a candidate for one step attempt (execute.go,
// work): start it when the handler is dispatched, end it once the outcome
// is stored. end reports whether the attempt was still tracked.
type attempt interface {
	start(p Pending) (end func() bool, err error)
}

// mapAttempt tracks attempts in a shared map (a tracker candidate): a
// sweep finds the orphans.
type mapAttempt struct{ t tracker }

func (m mapAttempt) start(p Pending) (func() bool, error) {
	if err := m.t.Track(p); err != nil {
		return nil, err
	}
	return func() bool { _, ok := m.t.Complete(p.ID); return ok }, nil
}

// timerAttempt has no shared structure: each attempt arms a runtime timer
// that reports it as an orphan when it fires; ending the attempt stops the
// timer. What it cannot give is the count and age of the tracked attempts
// (TrackerCounts) without a structure again.
type timerAttempt struct{ orphan func(Pending) }

func (a timerAttempt) start(p Pending) (func() bool, error) {
	t := time.AfterFunc(p.Expect, func() { a.orphan(p) })
	return t.Stop, nil
}

// noAttempt tracks nothing: the cost of the rest of the loop.
type noAttempt struct{}

func (noAttempt) start(Pending) (func() bool, error) { return func() bool { return true }, nil }

// BenchmarkCorrelation is the tracker on the worker's path: each goroutine
// is a worker slot running attempts one after another; an attempt gets a
// fresh UUIDv7 and is started (Track, stamped by the system clock) and
// ended (Complete), as execute.go's work does. Capacity is twice the
// slots, as the worker sizes it; Run's sweep comes every OrphanAfter/4
// (minutes), so at most once here. ns per attempt, candidates side by side:
// no tracking at all, a timer per attempt (no shared structure), the mutex
// map (ours; the analysis's "current"), xsync.Map (the analysis's DashMap),
// sync.Map and a 16-way sharded mutex map.
//
//	go test -run '^$' -bench Correlation -count 1 ./internal/correlation (repeated, interleaved)
func BenchmarkCorrelation(b *testing.B) {
	type cand struct {
		name string
		new  func(capacity int) attempt
	}
	cands := []cand{
		{"none", func(int) attempt { return noAttempt{} }},
		{"timer", func(int) attempt { return timerAttempt{orphan: func(Pending) { panic("orphan") }} }},
	}
	for _, c := range trackerCandidates {
		cands = append(cands, cand{c.name, func(n int) attempt { return mapAttempt{c.new(n, time.Hour, taskertype.SystemClock{})} }})
	}
	for _, g := range benchutil.Goroutines {
		for _, c := range cands {
			b.Run(fmt.Sprintf("g%d/%s", g, c.name), func(b *testing.B) {
				a := c.new(2 * g * runtime.GOMAXPROCS(0))
				task, step := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
				b.ReportAllocs()
				benchutil.RunG(b, g, func(_ uint64, next func() bool) {
					for next() {
						end, err := a.start(Pending{ID: uuid.Must(uuid.NewV7()), TaskID: task, StepID: step,
							StepName: "charge_card", Attempt: 1, Expect: time.Hour})
						if err != nil {
							panic(err)
						}
						if !end() {
							panic("lost a tracked attempt")
						}
					}
				})
				if mt, ok := a.(mapAttempt); ok && len(mt.t.Sweep()) != 0 {
					b.Fatal("an attempt was left tracked")
				}
			})
		}
	}
}

func TestEveryCandidateEnforcesCapacityExactly(t *testing.T) {
	for _, c := range trackerCandidates {
		t.Run(c.name+" accepts exactly Capacity concurrent tracks", func(t *testing.T) {
			const capacity, goroutines, each = 100, 16, 50
			tr := c.new(capacity, time.Hour, taskertype.SystemClock{})
			var ok, full atomic.Int64
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					g := newIDGen()
					for range each {
						switch err := tr.Track(Pending{ID: g.next()}); {
						case err == nil:
							ok.Add(1)
						case errors.Is(err, ErrFull):
							full.Add(1)
						default:
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			if ok.Load() != capacity || full.Load() != goroutines*each-capacity {
				t.Fatalf("%d accepted, %d refused; want %d and %d", ok.Load(), full.Load(), capacity, goroutines*each-capacity)
			}
			if n := len(tr.Sweep()); n != 0 {
				t.Fatalf("swept %d young entries", n)
			}
		})
	}
}
