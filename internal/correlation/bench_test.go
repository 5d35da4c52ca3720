package correlation

// Benchmarks of the candidate designs for the correlation tracker. The
// winner is Tracker (tracker.go); the others are kept here only to be
// measured, behind the same Track/Complete/Sweep logic (benchTracker).
//
//	go test -run '^$' -bench . -benchtime 1s -count 3 ./internal/correlation/

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/puzpuzpuz/xsync/v4"

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

// inFlight is how many steps each benchmark goroutine keeps tracked: the
// id it completes was tracked inFlight operations before.
const inFlight = 64

// sweepEvery is how many operations pass, over all goroutines, between
// two sweeps (which find nothing to remove: orphans are rare).
const sweepEvery = 1 << 16

// batch is how many operations a benchmark goroutine does between two
// updates of the shared operation count that paces the sweeps.
const batch = 64

// trackerLoop runs the load of one goroutine: Complete the id tracked
// inFlight operations ago, Track a new one, and Sweep once every
// sweepEvery operations of all goroutines.
func trackerLoop(t tracker, next func() bool, ops *atomic.Uint64) {
	g := newIDGen()
	var ring [inFlight]uuid.UUID
	task, step := g.next(), g.next()
	for i := 0; next(); i++ {
		slot := i % inFlight
		if ring[slot] != uuid.Nil {
			if _, ok := t.Complete(ring[slot]); !ok {
				panic("lost a tracked id")
			}
		}
		id := g.next()
		if err := t.Track(Pending{ID: id, TaskID: task, StepID: step, StepName: "charge_card", Attempt: 1}); err != nil {
			panic(err)
		}
		ring[slot] = id
		if i%batch == batch-1 && ops.Add(batch)%sweepEvery < batch {
			t.Sweep()
		}
	}
	for _, id := range ring {
		if id != uuid.Nil {
			t.Complete(id)
		}
	}
}

// fixedClock always tells one time. The benchmarks use it because on the
// benchmark host time.Now costs 100-200 ns, the same for every candidate,
// which would hide their differences.
type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

var benchClock = fixedClock(time.Unix(1_700_000_000, 0))

func BenchmarkCorrelation(b *testing.B) {
	for _, c := range trackerCandidates {
		b.Run(c.name, func(b *testing.B) {
			b.Run("g1", func(b *testing.B) {
				t := c.new(1<<20, time.Hour, benchClock)
				b.ReportAllocs()
				trackerLoop(t, b.Loop, new(atomic.Uint64))
			})
			b.Run("g16", func(b *testing.B) {
				t := c.new(1<<20, time.Hour, benchClock)
				b.ReportAllocs()
				b.SetParallelism(16)
				var ops atomic.Uint64
				b.RunParallel(func(pb *testing.PB) {
					trackerLoop(t, pb.Next, &ops)
				})
			})
		})
	}
}

func TestEveryCandidateEnforcesCapacityExactly(t *testing.T) {
	for _, c := range trackerCandidates {
		t.Run(c.name+" accepts exactly Capacity concurrent tracks", func(t *testing.T) {
			const capacity, goroutines, each = 100, 16, 50
			tr := c.new(capacity, time.Hour, benchClock)
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
