// Package stats keeps the orchestration's event-processing statistics: the
// latency of the last events processed, their rate and when the last one
// was processed.
package stats

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasker-go/tasker/taskertype"
)

// DefaultWindow is the number of events kept when LatencyConfig.Window is 0.
const DefaultWindow = 1000

// MinWindow is the smallest window accepted: the rate needs the last
// RateEvents events.
const MinWindow = RateEvents

// LatencyConfig configures a Latency.
type LatencyConfig struct {
	// Window is how many of the most recent events the average and the
	// percentiles are computed over. 0 means DefaultWindow; otherwise at
	// least MinWindow.
	Window int
	// Clock stamps each event; nil means the system clock.
	Clock taskertype.Clock
}

// Latency records the processing latency of events.
//
// Design: a ring of Window (duration, time) pairs under a sync.Mutex, the
// analysis's recommendation (#3 there, #4 in our architecture) translated:
// Record overwrites the oldest slot in O(1) and holds the lock for a few
// stores, never across anything that blocks (the clock is read before the
// lock). LastProcessed lives in an atomic so that it can be read without
// the lock (the analysis's `last_processing_time`).
//
// Measured by BenchmarkLatencyRecord (bench_test.go; with the system
// clock, as orchestration records) against the analysis's "current"
// Mutex<Vec> drained by halves, a lock-free ring, an HDR histogram under a
// mutex and (with -tags promcand) a prometheus histogram: figures and
// command in docs/concurrency.md (#4). The ring under a mutex is exact
// (always the last Window events; the lock-free ring can pair a duration
// with another event's time) and simple; HDR and prometheus histograms lose
// the per-event window (HDR approximates it with two halves rotated every
// Window/2 events; a prometheus histogram has no window at all) and still
// need a ring of the last 100 times for the rate.
type Latency struct {
	clock  taskertype.Clock
	window int

	last atomic.Int64 // Unix ns of the newest event recorded; noTime if none

	mu    sync.Mutex
	ring  []sample // len window
	next  int      // slot the next event goes to
	count uint64   // events recorded since start
}

type sample struct {
	dur int64 // ns
	at  int64 // Unix ns
}

// NewLatency returns an empty Latency.
func NewLatency(cfg LatencyConfig) (*Latency, error) {
	w, err := cfg.window()
	if err != nil {
		return nil, err
	}
	l := &Latency{clock: clockOrSystem(cfg.Clock), window: w, ring: make([]sample, w)}
	l.last.Store(noTime)
	return l, nil
}

func (cfg LatencyConfig) window() (int, error) {
	switch {
	case cfg.Window == 0:
		return DefaultWindow, nil
	case cfg.Window < MinWindow:
		return 0, fmt.Errorf("%w: stats: LatencyConfig.Window is %d; give at least %d (the rate needs the last %d events), or 0 for the default %d",
			taskertype.ErrInvalid, cfg.Window, MinWindow, RateEvents, DefaultWindow)
	}
	return cfg.Window, nil
}

func clockOrSystem(c taskertype.Clock) taskertype.Clock {
	if c == nil {
		return taskertype.SystemClock{}
	}
	return c
}

// Record adds the latency of one processed event, stamped with the clock's
// time. A negative d counts as 0. Safe from any number of goroutines.
func (l *Latency) Record(d time.Duration) { l.RecordAt(d, l.clock.Now()) }

// RecordAt is Record for a caller that has just read the time (to compute
// d, typically): it saves a clock read, the bulk of Record's cost.
func (l *Latency) RecordAt(d time.Duration, now time.Time) {
	at := now.UnixNano()
	d = max(d, 0)
	l.mu.Lock()
	l.ring[l.next] = sample{dur: int64(d), at: at}
	l.next++
	if l.next == len(l.ring) {
		l.next = 0
	}
	l.count++
	l.mu.Unlock()
	storeMax(&l.last, at)
}

// storeMax raises a to v if v is larger: LastProcessed never goes back
// when goroutines race.
func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// LastProcessed is when the last event was recorded (zero if none). It
// reads one atomic: no lock.
func (l *Latency) LastProcessed() time.Time {
	if ns := l.last.Load(); ns != noTime {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Snapshot computes the statistics. It copies the window under the lock
// (O(Window)) and sorts the copy outside it.
func (l *Latency) Snapshot() LatencySnapshot {
	l.mu.Lock()
	n := int(min(l.count, uint64(len(l.ring))))
	count := l.count
	durs := make([]int64, n)
	ats := make([]int64, min(n, RateEvents))
	// The window's events, oldest first, end just before l.next.
	start := l.next - n
	if start < 0 {
		start += len(l.ring)
	}
	for i := range n {
		s := l.ring[(start+i)%len(l.ring)]
		durs[i] = s.dur
		if j := i - (n - len(ats)); j >= 0 {
			ats[j] = s.at
		}
	}
	l.mu.Unlock()
	return summarize(durs, ats, count, l.last.Load())
}
