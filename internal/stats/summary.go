package stats

import (
	"math"
	"slices"
	"time"
)

// RateEvents is how many of the most recent events the rate is computed over.
const RateEvents = 100

// LatencySnapshot is what the stats endpoint reports about event latencies.
type LatencySnapshot struct {
	// Count is the number of events recorded since start.
	Count uint64
	// RatePerSec is n / (time of the last event - time of the nth last),
	// n = min(Count, 100): events per second over the last 100 events.
	// It is 0 with fewer than 2 events, or when they all carry the same
	// time.
	RatePerSec float64
	// Average, P50, P95 and P99 are over the window (the last Window
	// events). Percentiles are nearest-rank: each is a recorded value.
	Average       time.Duration
	P50, P95, P99 time.Duration
	// Window is how many events the figures above were computed over.
	Window int
	// LastProcessed is when the last event was recorded; zero if none.
	LastProcessed time.Time
}

// noTime marks "no event yet" in the atomic that holds LastProcessed.
const noTime = math.MinInt64

// summarize builds a snapshot. durs holds the window's durations in any
// order and is sorted in place; ats holds the times (Unix ns) of the last
// events, oldest first (only the last RateEvents are used).
func summarize(durs, ats []int64, count uint64, last int64) LatencySnapshot {
	s := LatencySnapshot{Count: count, Window: len(durs)}
	if last != noTime {
		s.LastProcessed = time.Unix(0, last)
	}
	if len(ats) > RateEvents {
		ats = ats[len(ats)-RateEvents:]
	}
	if n := len(ats); n >= 2 {
		if span := ats[n-1] - ats[0]; span > 0 {
			s.RatePerSec = float64(n) / (float64(span) / float64(time.Second))
		}
	}
	if len(durs) == 0 {
		return s
	}
	slices.Sort(durs)
	var sum float64
	for _, d := range durs {
		sum += float64(d)
	}
	s.Average = time.Duration(sum / float64(len(durs)))
	s.P50 = time.Duration(nearestRank(durs, 0.50))
	s.P95 = time.Duration(nearestRank(durs, 0.95))
	s.P99 = time.Duration(nearestRank(durs, 0.99))
	return s
}

// nearestRank returns the p-quantile of sorted (non-empty) by the
// nearest-rank method: the smallest value with at least p·n values at or
// below it.
func nearestRank(sorted []int64, p float64) int64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}
