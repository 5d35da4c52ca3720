package debugtrack

// Benchmarks of the candidate designs for the debug tracker. The winner is
// Tracker (debugtrack.go); the others are kept here only to be measured.
//
//	go test -run '^$' -bench . -benchtime 1s -count 3 ./internal/debugtrack/

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/maypok86/otter/v2"
	"github.com/puzpuzpuz/xsync/v4"

	"github.com/tasker-go/tasker/taskertype"
)

type debugTracker interface {
	Record(id, taskID, stepID uuid.UUID, stepName, event, detail string)
	Get(id uuid.UUID) (Entry, bool)
	Recent(n int) []Entry
	Cleanup() int
}

// shared is an entry of the map-based candidates: its own mutex guards
// the events; Last is an atomic so that scans read it without the mutex.
type shared struct {
	mu   sync.Mutex
	e    Entry
	last atomic.Int64 // Unix ns
}

func (s *shared) record(taskID, stepID uuid.UUID, stepName, event, detail string, now time.Time, maxEvents int) (dropped bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e.TaskID == uuid.Nil {
		s.e.TaskID = taskID
	}
	if s.e.StepID == uuid.Nil {
		s.e.StepID = stepID
	}
	if s.e.StepName == "" {
		s.e.StepName = stepName
	}
	s.e.Last = now
	s.last.Store(now.UnixNano())
	if len(s.e.Events) >= maxEvents {
		s.e.DroppedEvents++
		return true
	}
	s.e.Events = append(s.e.Events, EventRecord{Name: event, At: now, Detail: detail})
	return false
}

func (s *shared) copy() Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.e
	c.Events = append([]EventRecord(nil), s.e.Events...)
	return c
}

func newShared(id uuid.UUID, now time.Time) *shared {
	s := &shared{e: Entry{ID: id, First: now, Events: make([]EventRecord, 0, 4)}}
	s.last.Store(now.UnixNano())
	return s
}

// recentOf sorts entries newest first and copies the first n.
func recentOf(all []*shared, n int, cutoff int64) []Entry {
	slices.SortFunc(all, func(a, b *shared) int { return int(b.last.Load() - a.last.Load()) })
	out := make([]Entry, 0, min(n, len(all)))
	for _, s := range all {
		if len(out) == n || s.last.Load() <= cutoff {
			break
		}
		out = append(out, s.copy())
	}
	return out
}

// (b) xsync.Map of entries with their own mutex. Size is bounded by a
// FIFO (an MPMC queue of MaxEntries) of the entries in creation order:
// every entry is in it, so the map never holds more than it does (but for
// the instant between insert and enqueue); a full queue evicts its oldest.
type xsyncTracker struct {
	maxAge    time.Duration
	maxEvents int
	clock     taskertype.Clock
	m         *xsync.Map[uuid.UUID, *shared]
	fifo      *xsync.MPMCQueue[*shared]
	dropped   atomic.Uint64
}

func newXsyncTracker(maxEntries int, maxAge time.Duration, c taskertype.Clock) *xsyncTracker {
	return &xsyncTracker{maxAge: maxAge, maxEvents: DefaultMaxEvents, clock: c,
		m: xsync.NewMap[uuid.UUID, *shared](), fifo: xsync.NewMPMCQueue[*shared](maxEntries)}
}

func (t *xsyncTracker) Record(id, taskID, stepID uuid.UUID, stepName, event, detail string) {
	now := t.clock.Now()
	s, ok := t.m.Load(id)
	if !ok {
		var created bool
		s, _ = t.m.LoadOrCompute(id, func() (*shared, bool) {
			created = true
			return newShared(id, now), false
		})
		if created {
			for !t.fifo.TryEnqueue(s) {
				if old, ok := t.fifo.TryDequeue(); ok {
					if _, deleted := t.m.Compute(old.e.ID, func(cur *shared, loaded bool) (*shared, xsync.ComputeOp) {
						if loaded && cur == old {
							return nil, xsync.DeleteOp
						}
						return cur, xsync.CancelOp
					}); !deleted {
						t.dropped.Add(1)
					}
				}
			}
		}
	}
	s.record(taskID, stepID, stepName, event, detail, now, t.maxEvents)
}

func (t *xsyncTracker) Get(id uuid.UUID) (Entry, bool) {
	s, ok := t.m.Load(id)
	if !ok || s.last.Load() <= t.clock.Now().Add(-t.maxAge).UnixNano() {
		return Entry{}, false
	}
	return s.copy(), true
}

func (t *xsyncTracker) Recent(n int) []Entry {
	var all []*shared
	t.m.Range(func(_ uuid.UUID, s *shared) bool { all = append(all, s); return true })
	return recentOf(all, n, t.clock.Now().Add(-t.maxAge).UnixNano())
}

func (t *xsyncTracker) Cleanup() int {
	cutoff := t.clock.Now().Add(-t.maxAge).UnixNano()
	n := t.m.DeleteMatching(func(_ uuid.UUID, s *shared) (bool, bool) { return s.last.Load() <= cutoff, false })
	t.dropped.Add(uint64(n))
	return n
}

// (c) otter v2: MaximumSize and ExpiryWriting(MaxAge). Record is a
// Compute that appends (under the entry's mutex) and returns WriteOp, so
// that each event renews the entry's expiry.
type otterTracker struct {
	maxEvents int
	clock     taskertype.Clock
	c         *otter.Cache[uuid.UUID, *shared]
	dropped   atomic.Uint64
	expired   atomic.Uint64
}

// otterClock gives otter our clock; no ticks: no periodic clean-up
// goroutine (expired entries are invisible anyway, and removed by
// maintenance and Cleanup).
type otterClock struct{ c taskertype.Clock }

func (o otterClock) NowNano() int64                      { return o.c.Now().UnixNano() }
func (o otterClock) Tick(time.Duration) <-chan time.Time { return nil }

func newOtterTracker(maxEntries int, maxAge time.Duration, c taskertype.Clock) *otterTracker {
	t := &otterTracker{maxEvents: DefaultMaxEvents, clock: c}
	t.c = otter.Must(&otter.Options[uuid.UUID, *shared]{
		MaximumSize:      maxEntries,
		ExpiryCalculator: otter.ExpiryWriting[uuid.UUID, *shared](maxAge),
		Clock:            otterClock{c},
		OnAtomicDeletion: func(e otter.DeletionEvent[uuid.UUID, *shared]) {
			if e.WasEvicted() {
				t.dropped.Add(1)
				if e.Cause == otter.CauseExpiration {
					t.expired.Add(1)
				}
			}
		},
	})
	return t
}

func (t *otterTracker) Record(id, taskID, stepID uuid.UUID, stepName, event, detail string) {
	now := t.clock.Now()
	t.c.Compute(id, func(s *shared, found bool) (*shared, otter.ComputeOp) {
		if !found {
			s = newShared(id, now)
		}
		s.record(taskID, stepID, stepName, event, detail, now, t.maxEvents)
		return s, otter.WriteOp
	})
}

func (t *otterTracker) Get(id uuid.UUID) (Entry, bool) {
	s, ok := t.c.GetIfPresent(id)
	if !ok {
		return Entry{}, false
	}
	return s.copy(), true
}

func (t *otterTracker) Recent(n int) []Entry {
	var all []*shared
	for _, s := range t.c.All() {
		all = append(all, s)
	}
	return recentOf(all, n, t.clock.Now().Add(-time.Duration(1<<62)).UnixNano())
}

func (t *otterTracker) Cleanup() int {
	before := t.expired.Load()
	t.c.CleanUp()
	return int(t.expired.Load() - before)
}

type debugCandidate struct {
	name string
	new  func(maxEntries int, maxAge time.Duration, c taskertype.Clock) debugTracker
}

var debugCandidates = []debugCandidate{
	{"a-rwmutex-map-list", func(n int, a time.Duration, c taskertype.Clock) debugTracker {
		t, err := New(Config{MaxEntries: n, MaxAge: a, Clock: c})
		if err != nil {
			panic(err)
		}
		return t
	}},
	{"b-xsync-map-fifo", func(n int, a time.Duration, c taskertype.Clock) debugTracker { return newXsyncTracker(n, a, c) }},
	{"c-otter", func(n int, a time.Duration, c taskertype.Clock) debugTracker { return newOtterTracker(n, a, c) }},
}

// fixedClock always tells one time. The benchmarks use it because on the
// benchmark host time.Now costs 100-200 ns, the same for every candidate,
// which would hide their differences.
type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

var benchClock = fixedClock(time.Unix(1_700_000_000, 0))

var idSeed atomic.Uint64

func splitmix(s *uint64) uint64 {
	*s += 0x9E3779B97F4A7C15
	z := *s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func benchID(s *uint64) uuid.UUID {
	var id uuid.UUID
	binary.LittleEndian.PutUint64(id[:8], splitmix(s))
	binary.LittleEndian.PutUint64(id[8:], splitmix(s))
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

const (
	benchMaxEntries = 10_000
	recentEvery     = 1 << 12 // operations, over all goroutines, between two Recent(50)
	cleanupEvery    = 1 << 14 // and between two Cleanup
)

var benchEvents = [3]struct{ name, detail string }{{"dispatched", ""}, {"started", ""}, {"finished", "success"}}

// batch is how many operations a benchmark goroutine does between two
// updates of the shared operation count that paces the rare calls.
const batch = 64

// debugLoop runs the load of one goroutine: three events per execution
// (dispatched, started, finished), a new execution every three, and, once
// every recentEvery operations of all goroutines, a Recent(50) (and a
// Cleanup once every cleanupEvery).
// A nil ops leaves the rare calls out.
func debugLoop(t debugTracker, next func() bool, ops *atomic.Uint64) {
	seed := idSeed.Add(1)
	seed = splitmix(&seed)
	task, step := benchID(&seed), benchID(&seed)
	var id uuid.UUID
	for i := 0; next(); i++ {
		k := i % 3
		if k == 0 {
			id = benchID(&seed)
		}
		t.Record(id, task, step, "charge_card", benchEvents[k].name, benchEvents[k].detail)
		if ops != nil && i%batch == batch-1 {
			n := ops.Add(batch)
			if n%recentEvery < batch {
				_ = t.Recent(50)
			}
			if n%cleanupEvery < batch {
				t.Cleanup()
			}
		}
	}
}

func BenchmarkDebugTrack(b *testing.B) { benchDebug(b, true) }

// BenchmarkDebugTrackRecordOnly leaves out Recent and Cleanup, to tell the
// cost of Record from that of the scans some candidates need.
func BenchmarkDebugTrackRecordOnly(b *testing.B) { benchDebug(b, false) }

func benchDebug(b *testing.B, rare bool) {
	counter := func() *atomic.Uint64 {
		if rare {
			return new(atomic.Uint64)
		}
		return nil
	}
	for _, c := range debugCandidates {
		b.Run(c.name, func(b *testing.B) {
			b.Run("g1", func(b *testing.B) {
				t := c.new(benchMaxEntries, time.Hour, benchClock)
				b.ReportAllocs()
				debugLoop(t, b.Loop, counter())
			})
			b.Run("g16", func(b *testing.B) {
				t := c.new(benchMaxEntries, time.Hour, benchClock)
				b.ReportAllocs()
				b.SetParallelism(16)
				ops := counter()
				b.RunParallel(func(pb *testing.PB) {
					debugLoop(t, pb.Next, ops)
				})
			})
		})
	}
}
