package stats

import (
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/taskertype"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newLatency(t *testing.T, window int) (*Latency, *testclock.Clock) {
	t.Helper()
	clk := testclock.New(t0)
	l, err := NewLatency(LatencyConfig{Window: window, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return l, clk
}

func TestLatencyConfig(t *testing.T) {
	for _, w := range []int{-1, 1, 99} {
		t.Run("a window of "+itoa(w)+" events is refused with an error naming Window", func(t *testing.T) {
			l, err := NewLatency(LatencyConfig{Window: w})
			if l != nil || !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), "Window") ||
				!strings.Contains(err.Error(), "at least 100") {
				t.Fatalf("got %v, %v; want an ErrInvalid naming Window and saying what to give", l, err)
			}
		})
	}
	t.Run("a zero window means the default of 1000 events", func(t *testing.T) {
		l, _ := newLatency(t, 0)
		for range 1500 {
			l.Record(time.Millisecond)
		}
		if s := l.Snapshot(); s.Window != DefaultWindow || s.Count != 1500 {
			t.Fatalf("window %d count %d, want %d and 1500", s.Window, s.Count, DefaultWindow)
		}
	})
	t.Run("a nil clock means the system clock", func(t *testing.T) {
		l, err := NewLatency(LatencyConfig{})
		if err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		l.Record(time.Millisecond)
		if got := l.LastProcessed(); got.Before(before.Add(-time.Second)) || got.After(time.Now().Add(time.Second)) {
			t.Fatalf("LastProcessed %v, want about %v", got, before)
		}
	})
}

func itoa(i int) string {
	if i < 0 {
		return "-" + itoa(-i)
	}
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestLatencySnapshot(t *testing.T) {
	t.Run("an empty buffer reports zeros and no last processing time", func(t *testing.T) {
		l, _ := newLatency(t, 0)
		s := l.Snapshot()
		if s != (LatencySnapshot{}) || !l.LastProcessed().IsZero() {
			t.Fatalf("got %+v, %v; want the zero snapshot", s, l.LastProcessed())
		}
	})
	t.Run("one event gives no rate but its latency and time", func(t *testing.T) {
		l, _ := newLatency(t, 0)
		l.Record(7 * time.Millisecond)
		s := l.Snapshot()
		if s.Count != 1 || s.RatePerSec != 0 || s.Average != 7*time.Millisecond || s.P50 != 7*time.Millisecond ||
			s.P99 != 7*time.Millisecond || !s.LastProcessed.Equal(t0) {
			t.Fatalf("got %+v", s)
		}
	})
	t.Run("the rate is 100 over the time between the last event and the 100th last", func(t *testing.T) {
		l, clk := newLatency(t, 0)
		for range 150 {
			clk.Advance(10 * time.Millisecond)
			l.Record(time.Millisecond)
		}
		// 100 events, the first and the last 99×10 ms apart.
		if got, want := l.Snapshot().RatePerSec, 100/0.99; !near(got, want) {
			t.Fatalf("rate %v, want %v", got, want)
		}
	})
	t.Run("with fewer than 100 events the rate is over all of them", func(t *testing.T) {
		l, clk := newLatency(t, 0)
		for range 11 {
			l.Record(time.Millisecond)
			clk.Advance(100 * time.Millisecond)
		}
		if got, want := l.Snapshot().RatePerSec, 11/1.0; !near(got, want) {
			t.Fatalf("rate %v, want %v", got, want)
		}
	})
	t.Run("events all at one instant give a zero rate, not an infinite one", func(t *testing.T) {
		l, _ := newLatency(t, 0)
		l.Record(time.Millisecond)
		l.Record(time.Millisecond)
		if r := l.Snapshot().RatePerSec; r != 0 {
			t.Fatalf("rate %v, want 0", r)
		}
	})
	t.Run("average and percentiles are nearest-rank over recorded values", func(t *testing.T) {
		l, _ := newLatency(t, 0)
		for _, i := range rand.Perm(1000) {
			l.Record(time.Duration(i+1) * time.Millisecond)
		}
		s := l.Snapshot()
		want := LatencySnapshot{Count: 1000, Window: 1000, Average: 500500 * time.Microsecond,
			P50: 500 * time.Millisecond, P95: 950 * time.Millisecond, P99: 990 * time.Millisecond}
		if !s.LastProcessed.Equal(t0) {
			t.Fatalf("LastProcessed %v, want %v", s.LastProcessed, t0)
		}
		s.LastProcessed = time.Time{}
		if s != want {
			t.Fatalf("got  %+v\nwant %+v", s, want)
		}
	})
	t.Run("events older than the window no longer count", func(t *testing.T) {
		l, _ := newLatency(t, 100)
		for range 250 {
			l.Record(time.Hour)
		}
		for range 100 {
			l.Record(time.Millisecond)
		}
		s := l.Snapshot()
		if s.Count != 350 || s.Window != 100 || s.Average != time.Millisecond || s.P99 != time.Millisecond {
			t.Fatalf("got %+v, want only the last 100 (1 ms) events", s)
		}
	})
	t.Run("RecordAt stamps the event with the time given, not the clock's", func(t *testing.T) {
		l, _ := newLatency(t, 0)
		at := t0.Add(time.Hour)
		l.RecordAt(time.Millisecond, at)
		l.RecordAt(time.Millisecond, at.Add(time.Second))
		if s := l.Snapshot(); !s.LastProcessed.Equal(at.Add(time.Second)) || s.RatePerSec != 2 {
			t.Fatalf("got %+v", s)
		}
	})
	t.Run("a negative latency counts as zero", func(t *testing.T) {
		l, _ := newLatency(t, 0)
		l.Record(-time.Second)
		if s := l.Snapshot(); s.Average != 0 || s.P50 != 0 {
			t.Fatalf("got %+v", s)
		}
	})
	t.Run("the last processing time is the newest event's and never goes back", func(t *testing.T) {
		l, clk := newLatency(t, 0)
		clk.Advance(time.Second)
		l.Record(time.Millisecond)
		clk.Set(t0) // a clock stepping back
		l.Record(time.Millisecond)
		if got, want := l.LastProcessed(), t0.Add(time.Second); !got.Equal(want) || !l.Snapshot().LastProcessed.Equal(want) {
			t.Fatalf("LastProcessed %v, want %v", got, want)
		}
	})
}

func near(a, b float64) bool { return a > b*0.999999 && a < b*1.000001 }

// TestLatencyUnderConcurrentLoad records from many goroutines while others
// take snapshots, and checks that nothing is lost and every figure stays
// within what was recorded.
func TestLatencyUnderConcurrentLoad(t *testing.T) {
	t.Run("counts balance and figures stay within the recorded range", func(t *testing.T) {
		const (
			writers = 16
			each    = 3000
			lo, hi  = 2 * time.Millisecond, 90 * time.Millisecond
		)
		l, clk := newLatency(t, 500)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		errs := make(chan string, 64)
		for range 3 {
			wg.Go(func() {
				var prevCount uint64
				var prevLast time.Time
				for {
					select {
					case <-stop:
						return
					default:
					}
					s := l.Snapshot()
					switch {
					case s.Count < prevCount:
						errs <- "Count went back"
					case s.LastProcessed.Before(prevLast):
						errs <- "LastProcessed went back"
					case s.Window > 500:
						errs <- "window over its bound"
					case s.Count > 0 && (s.P50 < lo || s.P99 > hi || s.P50 > s.P95 || s.P95 > s.P99 || s.Average < lo || s.Average > hi):
						errs <- "figures out of the recorded range: " + s.P50.String() + " " + s.P99.String()
					case s.RatePerSec < 0:
						errs <- "negative rate"
					}
					prevCount, prevLast = s.Count, s.LastProcessed
				}
			})
		}
		var writersWG sync.WaitGroup
		for range writers {
			writersWG.Go(func() {
				for range each {
					clk.Advance(time.Microsecond)
					l.Record(lo + rand.N(hi-lo+1))
				}
			})
		}
		writersWG.Wait()
		close(stop)
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		s := l.Snapshot()
		if s.Count != writers*each || s.Window != 500 || !s.LastProcessed.Equal(clk.Now()) {
			t.Fatalf("got %+v; want Count %d, Window 500, LastProcessed %v", s, writers*each, clk.Now())
		}
	})
}
