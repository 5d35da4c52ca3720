//go:build promcand

package stats

// Candidate (e): a prometheus Histogram (not registered) for Record. It
// needs modules go.mod does not list: see bench_test.go for the command.

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tasker-go/tasker/taskertype"
)

func init() {
	latencyCandidates = append(latencyCandidates, latencyCandidate{
		"e-prom-histogram", func(w int, c taskertype.Clock) latencyRecorder { return newPromLatency(c) },
	})
}

// promLatency observes into a classic histogram with exponential buckets
// (1 µs·2^k, 30 buckets: up to ~9 min). Percentiles are interpolated
// within buckets (as PromQL's histogram_quantile does) and, like the
// average, cover every event since start: a histogram has no window. The
// rate needs the times of the last 100 events: a lock-free ring of them
// sits beside the histogram.
type promLatency struct {
	clock  taskertype.Clock
	h      prometheus.Histogram
	ats    [RateEvents]atomic.Int64
	cursor atomic.Uint64
	last   atomic.Int64
}

func newPromLatency(c taskertype.Clock) *promLatency {
	l := &promLatency{clock: c, h: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tasker_event_latency_seconds",
		Help:    "Latency of processed events.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 2, 30),
	})}
	l.last.Store(noTime)
	return l
}

func (l *promLatency) Record(d time.Duration) {
	at := l.clock.Now().UnixNano()
	l.h.Observe(max(d, 0).Seconds())
	n := l.cursor.Add(1)
	l.ats[(n-1)%RateEvents].Store(at)
	storeMax(&l.last, at)
}

func (l *promLatency) Snapshot() LatencySnapshot {
	c := l.cursor.Load()
	ats := make([]int64, 0, RateEvents)
	for i := range min(c, RateEvents) {
		ats = append(ats, l.ats[i].Load())
	}
	slices.Sort(ats)
	s := summarize(nil, ats, c, l.last.Load())
	var m dto.Metric
	if err := l.h.Write(&m); err != nil {
		return s
	}
	h := m.GetHistogram()
	n := h.GetSampleCount()
	if n == 0 {
		return s
	}
	s.Window = int(n)
	s.Average = time.Duration(h.GetSampleSum() / float64(n) * float64(time.Second))
	q := func(p float64) time.Duration {
		rank := p * float64(n)
		lower, below := 0.0, uint64(0)
		for _, b := range h.GetBucket() {
			cum := b.GetCumulativeCount()
			if float64(cum) >= rank {
				frac := 1.0
				if in := cum - below; in > 0 {
					frac = (rank - float64(below)) / float64(in)
				}
				return time.Duration((lower + frac*(b.GetUpperBound()-lower)) * float64(time.Second))
			}
			lower, below = b.GetUpperBound(), cum
		}
		return time.Duration(lower * float64(time.Second))
	}
	s.P50, s.P95, s.P99 = q(0.50), q(0.95), q(0.99)
	return s
}
