package stats

// Benchmarks of the candidate designs for the latency buffer. The winner
// lives in latency.go; the others are kept here only to be measured.
//
//	go test -run '^$' -bench . -benchtime 1s -count 3 ./internal/stats/
//
// Candidate (e), a prometheus Histogram, needs client_golang's own
// dependencies, which go.mod does not list; it is behind the promcand
// build tag and runs with a scratch module file:
//
//	cp go.mod /tmp/p.mod && cp go.sum /tmp/p.sum
//	go get -modfile=/tmp/p.mod github.com/prometheus/client_golang/prometheus@v1.25.0 github.com/prometheus/client_model/go
//	go test -modfile=/tmp/p.mod -tags promcand -run '^$' -bench . -benchtime 1s -count 3 ./internal/stats/

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/tasker-go/tasker/taskertype"
)

type latencyRecorder interface {
	Record(time.Duration)
	Snapshot() LatencySnapshot
}

type latencyCandidate struct {
	name string
	new  func(window int, clock taskertype.Clock) latencyRecorder
}

var latencyCandidates = []latencyCandidate{
	{"a-current-drain", func(w int, c taskertype.Clock) latencyRecorder { return newDrainLatency(w, c) }},
	{"b-mutex-ring", func(w int, c taskertype.Clock) latencyRecorder {
		l, err := NewLatency(LatencyConfig{Window: w, Clock: c})
		if err != nil {
			panic(err)
		}
		return l
	}},
	{"c-atomic-ring", func(w int, c taskertype.Clock) latencyRecorder { return newAtomicRing(w, c) }},
	{"d-hdr-mutex", func(w int, c taskertype.Clock) latencyRecorder { return newHDRLatency(w, c) }},
}

// (a) The analysis's "current": Mutex<Vec<Duration>> drained of its oldest
// half when it passes the window (Vec::drain(0..500) at 1000), and
// last_processing_time behind a mutex of its own.
type drainLatency struct {
	clock  taskertype.Clock
	window int

	mu    sync.Mutex
	buf   []sample
	count uint64

	lastMu sync.Mutex
	last   int64
}

func newDrainLatency(w int, c taskertype.Clock) *drainLatency {
	return &drainLatency{clock: c, window: w, buf: make([]sample, 0, w+1), last: noTime}
}

func (l *drainLatency) Record(d time.Duration) {
	at := l.clock.Now().UnixNano()
	l.mu.Lock()
	l.buf = append(l.buf, sample{dur: int64(max(d, 0)), at: at})
	if len(l.buf) > l.window {
		n := copy(l.buf, l.buf[l.window/2:])
		l.buf = l.buf[:n]
	}
	l.count++
	l.mu.Unlock()
	l.lastMu.Lock()
	l.last = max(l.last, at)
	l.lastMu.Unlock()
}

func (l *drainLatency) Snapshot() LatencySnapshot {
	l.mu.Lock()
	durs := make([]int64, len(l.buf))
	for i, s := range l.buf {
		durs[i] = s.dur
	}
	tail := l.buf[max(0, len(l.buf)-RateEvents):]
	ats := make([]int64, len(tail))
	for i, s := range tail {
		ats[i] = s.at
	}
	count := l.count
	l.mu.Unlock()
	l.lastMu.Lock()
	last := l.last
	l.lastMu.Unlock()
	return summarize(durs, ats, count, last)
}

// (c) A lock-free ring: fixed slots of atomics and an atomic cursor. Each
// slot carries the number of the event it holds (0 while being written),
// so that a reader skips slots being written. Two writers on one slot (one
// lapped by Window events while preempted mid-Record) may leave a pair
// from two events: both in the window, so the figures stay plausible.
type atomicRing struct {
	clock  taskertype.Clock
	slots  []atomicSlot
	cursor atomic.Uint64
	last   atomic.Int64
}

type atomicSlot struct {
	seq atomic.Uint64
	dur atomic.Int64
	at  atomic.Int64
}

func newAtomicRing(w int, c taskertype.Clock) *atomicRing {
	r := &atomicRing{clock: c, slots: make([]atomicSlot, w)}
	r.last.Store(noTime)
	return r
}

func (r *atomicRing) Record(d time.Duration) {
	at := r.clock.Now().UnixNano()
	n := r.cursor.Add(1)
	s := &r.slots[(n-1)%uint64(len(r.slots))]
	s.seq.Store(0)
	s.dur.Store(int64(max(d, 0)))
	s.at.Store(at)
	s.seq.Store(n)
	storeMax(&r.last, at)
}

func (r *atomicRing) Snapshot() LatencySnapshot {
	c := r.cursor.Load()
	w := uint64(len(r.slots))
	n := min(c, w)
	durs := make([]int64, 0, n)
	ats := make([]int64, 0, RateEvents)
	for e := c - n + 1; e <= c; e++ {
		s := &r.slots[(e-1)%w]
		seq := s.seq.Load()
		d, at := s.dur.Load(), s.at.Load()
		if seq == 0 || s.seq.Load() != seq {
			continue // being written
		}
		durs = append(durs, d)
		if e+RateEvents > c {
			ats = append(ats, at)
		}
	}
	slices.Sort(ats) // a slot may have been overwritten by a newer event
	return summarize(durs, ats, c, r.last.Load())
}

// (d) An HDR histogram (1 ns to 1 h, 3 significant digits) under a mutex.
// It keeps counts, not events, so the window is approximated as the
// "current" design does: two histograms rotated every Window/2 events
// (the window holds Window/2 to Window events); the rate needs the times
// of the last 100 events, kept in a ring of their own beside it.
type hdrLatency struct {
	clock taskertype.Clock
	half  int

	mu     sync.Mutex
	w      *hdrhistogram.WindowedHistogram
	inCur  int
	ats    [RateEvents]int64
	atNext int
	count  uint64

	last atomic.Int64
}

const hdrMax = int64(time.Hour)

func newHDRLatency(w int, c taskertype.Clock) *hdrLatency {
	l := &hdrLatency{clock: c, half: w / 2, w: hdrhistogram.NewWindowed(2, 1, hdrMax, 3)}
	l.last.Store(noTime)
	return l
}

func (l *hdrLatency) Record(d time.Duration) {
	at := l.clock.Now().UnixNano()
	v := min(max(int64(d), 1), hdrMax)
	l.mu.Lock()
	_ = l.w.Current.RecordValue(v) // v is within range
	l.inCur++
	if l.inCur == l.half {
		l.w.Rotate()
		l.inCur = 0
	}
	l.ats[l.atNext] = at
	l.atNext = (l.atNext + 1) % RateEvents
	l.count++
	l.mu.Unlock()
	storeMax(&l.last, at)
}

func (l *hdrLatency) Snapshot() LatencySnapshot {
	l.mu.Lock()
	h := l.w.Merge()
	n := int(min(l.count, RateEvents))
	ats := make([]int64, n)
	for i := range n {
		ats[i] = l.ats[(l.atNext-n+i+RateEvents)%RateEvents]
	}
	count := l.count
	l.mu.Unlock()
	s := summarize(nil, ats, count, l.last.Load())
	if tc := h.TotalCount(); tc > 0 {
		s.Window = int(tc)
		s.Average = time.Duration(h.Mean())
		s.P50 = time.Duration(h.ValueAtQuantile(50))
		s.P95 = time.Duration(h.ValueAtQuantile(95))
		s.P99 = time.Duration(h.ValueAtQuantile(99))
	}
	return s
}

// benchDuration spreads the recorded values over 1 µs to ~1 s.
func benchDuration(i int) time.Duration {
	return time.Duration(1+(i*7919)%1_000_000) * time.Microsecond
}

// BenchmarkLatencyRecord measures Record as orchestration calls it, with
// the system clock. On the benchmark host time.Now itself costs 100-200 ns
// (see BenchmarkClockNow), so BenchmarkLatencyRecordFixedClock isolates
// the structures' own cost with a clock that always returns one time.
func BenchmarkLatencyRecord(b *testing.B) { benchRecord(b, taskertype.SystemClock{}) }

func BenchmarkLatencyRecordFixedClock(b *testing.B) {
	benchRecord(b, fixedClock(time.Unix(1_700_000_000, 0)))
}

func BenchmarkClockNow(b *testing.B) {
	var c taskertype.Clock = taskertype.SystemClock{}
	var sink int64
	for b.Loop() {
		sink += c.Now().UnixNano()
	}
	_ = sink
}

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

func benchRecord(b *testing.B, clock taskertype.Clock) {
	for _, c := range latencyCandidates {
		b.Run(c.name, func(b *testing.B) {
			b.Run("g1", func(b *testing.B) {
				l := c.new(DefaultWindow, clock)
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					l.Record(benchDuration(i))
				}
			})
			b.Run("g16", func(b *testing.B) {
				l := c.new(DefaultWindow, clock)
				b.ReportAllocs()
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					for i := 0; pb.Next(); i++ {
						l.Record(benchDuration(i))
					}
				})
			})
		})
	}
}

func BenchmarkLatencySnapshot(b *testing.B) {
	for _, c := range latencyCandidates {
		b.Run(c.name, func(b *testing.B) {
			l := c.new(DefaultWindow, taskertype.SystemClock{})
			for i := range 10 * DefaultWindow {
				l.Record(benchDuration(i))
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = l.Snapshot()
			}
		})
	}
}
