package correlation

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/taskertype"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTracker(t *testing.T, capacity int, orphanAfter time.Duration) (*Tracker, *testclock.Clock, *syncBuffer) {
	t.Helper()
	clk := testclock.New(t0)
	logs := &syncBuffer{}
	tr, err := NewTracker(TrackerConfig{Capacity: capacity, OrphanAfter: orphanAfter, Clock: clk,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return tr, clk, logs
}

func pending(name string) Pending {
	return Pending{ID: uuid.New(), TaskID: uuid.New(), StepID: uuid.New(), StepName: name, Attempt: 1}
}

func TestTrackerConfig(t *testing.T) {
	cases := []struct {
		name, field string
		cfg         TrackerConfig
	}{
		{"a zero capacity is refused with an error naming Capacity", "Capacity", TrackerConfig{OrphanAfter: time.Minute}},
		{"a negative capacity is refused with an error naming Capacity", "Capacity", TrackerConfig{Capacity: -3, OrphanAfter: time.Minute}},
		{"a zero orphan timeout is refused with an error naming OrphanAfter", "OrphanAfter", TrackerConfig{Capacity: 1}},
		{"a negative orphan timeout is refused with an error naming OrphanAfter", "OrphanAfter", TrackerConfig{Capacity: 1, OrphanAfter: -time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, err := NewTracker(c.cfg)
			if tr != nil || !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), c.field) ||
				!strings.Contains(err.Error(), "give") {
				t.Fatalf("got %v, %v; want an ErrInvalid naming %s and saying what to give", tr, err, c.field)
			}
		})
	}
	t.Run("nil clock and logger mean the system clock and no logging", func(t *testing.T) {
		tr, err := NewTracker(TrackerConfig{Capacity: 1, OrphanAfter: time.Nanosecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Track(pending("a")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if got := tr.Sweep(); len(got) != 1 {
			t.Fatalf("swept %d, want 1", len(got))
		}
	})
	t.Run("the sweep interval is a quarter of the orphan timeout but at least 10ms", func(t *testing.T) {
		tr, _, _ := newTracker(t, 1, time.Minute)
		short, _, _ := newTracker(t, 1, time.Millisecond)
		if tr.SweepInterval() != 15*time.Second || short.SweepInterval() != MinSweepInterval {
			t.Fatalf("got %v and %v", tr.SweepInterval(), short.SweepInterval())
		}
	})
}

func TestTrackAndComplete(t *testing.T) {
	t.Run("a tracked step is returned by Complete, stamped when it was tracked", func(t *testing.T) {
		tr, clk, _ := newTracker(t, 4, time.Minute)
		p := pending("charge")
		if err := tr.Track(p); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		got, ok := tr.Complete(p.ID)
		p.Since = t0
		if !ok || got != p {
			t.Fatalf("got %+v, %v; want %+v", got, ok, p)
		}
		if c := tr.Counts(); c != (TrackerCounts{Accepted: 1, Completed: 1}) {
			t.Fatalf("counts %+v", c)
		}
	})
	t.Run("a Since given by the caller is kept", func(t *testing.T) {
		tr, _, _ := newTracker(t, 4, time.Minute)
		p := pending("charge")
		p.Since = t0.Add(-time.Hour)
		_ = tr.Track(p)
		if got, _ := tr.Complete(p.ID); !got.Since.Equal(p.Since) {
			t.Fatalf("Since %v, want %v", got.Since, p.Since)
		}
	})
	t.Run("completing an unknown id returns false", func(t *testing.T) {
		tr, _, _ := newTracker(t, 4, time.Minute)
		if _, ok := tr.Complete(uuid.New()); ok {
			t.Fatal("completed an id never tracked")
		}
		if _, ok := tr.Complete(uuid.Nil); ok {
			t.Fatal("completed the nil id")
		}
	})
	t.Run("completing twice returns false the second time", func(t *testing.T) {
		tr, _, _ := newTracker(t, 4, time.Minute)
		p := pending("charge")
		_ = tr.Track(p)
		tr.Complete(p.ID)
		if _, ok := tr.Complete(p.ID); ok {
			t.Fatal("completed twice")
		}
		if c := tr.Counts(); c.Completed != 1 {
			t.Fatalf("completed %d, want 1", c.Completed)
		}
	})
	t.Run("tracking an id already tracked is an error and keeps the first", func(t *testing.T) {
		tr, _, _ := newTracker(t, 4, time.Minute)
		p := pending("first")
		_ = tr.Track(p)
		q := p
		q.StepName = "second"
		err := tr.Track(q)
		if !errors.Is(err, ErrDuplicate) || !errors.Is(err, taskertype.ErrInvalid) {
			t.Fatalf("got %v, want ErrDuplicate", err)
		}
		if got, _ := tr.Complete(p.ID); got.StepName != "first" {
			t.Fatalf("kept %q", got.StepName)
		}
	})
	t.Run("tracking the nil id is an error", func(t *testing.T) {
		tr, _, _ := newTracker(t, 4, time.Minute)
		if err := tr.Track(Pending{}); !errors.Is(err, taskertype.ErrInvalid) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a full tracker refuses with ErrFull until a step completes", func(t *testing.T) {
		tr, _, _ := newTracker(t, 2, time.Minute)
		a, b, c := pending("a"), pending("b"), pending("c")
		_ = tr.Track(a)
		_ = tr.Track(b)
		if err := tr.Track(c); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "Capacity") {
			t.Fatalf("got %v, want ErrFull naming Capacity", err)
		}
		tr.Complete(a.ID)
		if err := tr.Track(c); err != nil {
			t.Fatalf("after a completion: %v", err)
		}
		if n := tr.Counts(); n.Tracked != 2 || n.Rejected != 1 || n.Accepted != 3 {
			t.Fatalf("counts %+v", n)
		}
	})
}

func TestSweep(t *testing.T) {
	t.Run("steps pending for the orphan timeout are removed, returned oldest first and logged", func(t *testing.T) {
		tr, clk, logs := newTracker(t, 8, time.Minute)
		old1, old2, young := pending("old1"), pending("old2"), pending("young")
		_ = tr.Track(old1)
		clk.Advance(10 * time.Second)
		_ = tr.Track(old2)
		clk.Advance(60 * time.Second)
		_ = tr.Track(young)
		got := tr.Sweep()
		if len(got) != 2 || got[0].ID != old1.ID || got[1].ID != old2.ID {
			t.Fatalf("swept %+v, want old1 then old2", got)
		}
		if _, ok := tr.Complete(old1.ID); ok {
			t.Fatal("an orphan was completed after the sweep")
		}
		if c := tr.Counts(); c.Tracked != 1 || c.Orphaned != 2 || c.OldestAge != 0 {
			t.Fatalf("counts %+v", c)
		}
		out := logs.String()
		if strings.Count(out, "level=WARN") != 2 || !strings.Contains(out, old1.ID.String()) || !strings.Contains(out, "step=old2") {
			t.Fatalf("logs:\n%s", out)
		}
	})
	t.Run("a sweep with nothing old returns nothing and logs nothing", func(t *testing.T) {
		tr, clk, logs := newTracker(t, 8, time.Minute)
		_ = tr.Track(pending("a"))
		clk.Advance(59 * time.Second)
		if got := tr.Sweep(); got != nil || logs.String() != "" {
			t.Fatalf("swept %v, logged %q", got, logs.String())
		}
		if c := tr.Counts(); c.OldestAge != 59*time.Second {
			t.Fatalf("oldest age %v", c.OldestAge)
		}
	})
}

func TestRun(t *testing.T) {
	t.Run("Run sweeps periodically, hands orphans over and stops with its context", func(t *testing.T) {
		clk := testclock.New(t0)
		got := make(chan []Pending, 4)
		tr, err := NewTracker(TrackerConfig{Capacity: 8, OrphanAfter: 40 * time.Millisecond, Clock: clk,
			OnOrphans: func(p []Pending) { got <- p }})
		if err != nil {
			t.Fatal(err)
		}
		p := pending("lost")
		_ = tr.Track(p)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { tr.Run(ctx); close(done) }()
		clk.Advance(time.Minute)
		select {
		case o := <-got:
			if len(o) != 1 || o[0].ID != p.ID {
				t.Fatalf("orphans %+v", o)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run never swept")
		}
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	})
}

// TestTrackerUnderConcurrentLoad drives Track, Complete (often from
// another goroutine than the Track), Sweep and Counts together and checks
// that every tracked step is taken exactly once.
func TestTrackerUnderConcurrentLoad(t *testing.T) {
	t.Run("every step is completed, orphaned or still tracked, exactly once, within capacity", func(t *testing.T) {
		const (
			capacity  = 64
			producers = 8
			each      = 2000
		)
		tr, clk, _ := newTracker(t, capacity, 50*time.Millisecond)
		handoff := make(chan uuid.UUID, 256)
		var (
			mu                            sync.Mutex
			tracked, completed, orphaned  = map[uuid.UUID]bool{}, map[uuid.UUID]bool{}, map[uuid.UUID]bool{}
			full                          atomic.Uint64
			producersWG, consumersWG, bgW sync.WaitGroup
			errs                          = make(chan string, 16)
		)
		for range producers {
			producersWG.Go(func() {
				for range each {
					p := pending("s")
					switch err := tr.Track(p); {
					case errors.Is(err, ErrFull):
						full.Add(1)
						continue
					case err != nil:
						errs <- err.Error()
						return
					}
					mu.Lock()
					tracked[p.ID] = true
					mu.Unlock()
					if rand.IntN(10) == 0 {
						continue // never reported: left for the sweeper
					}
					if rand.IntN(2) == 0 {
						handoff <- p.ID // completed by another goroutine
					} else if _, ok := tr.Complete(p.ID); ok {
						mu.Lock()
						completed[p.ID] = true
						mu.Unlock()
					}
				}
			})
		}
		for range 4 {
			consumersWG.Go(func() {
				for id := range handoff {
					if _, ok := tr.Complete(id); ok {
						mu.Lock()
						completed[id] = true
						mu.Unlock()
					}
					if _, ok := tr.Complete(id); ok {
						errs <- "completed twice"
					}
				}
			})
		}
		stop := make(chan struct{})
		bgW.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				clk.Advance(time.Millisecond)
				for _, p := range tr.Sweep() {
					mu.Lock()
					orphaned[p.ID] = true
					mu.Unlock()
				}
				if c := tr.Counts(); c.Tracked > capacity {
					errs <- "over capacity"
				}
			}
		})
		producersWG.Wait()
		close(handoff)
		consumersWG.Wait()
		close(stop)
		bgW.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}

		c := tr.Counts()
		t.Logf("%+v", c)
		if c.Orphaned == 0 || c.Rejected == 0 {
			t.Errorf("the load never orphaned or never filled the tracker: %+v", c)
		}
		if c.Accepted != c.Completed+c.Orphaned+c.Tracked {
			t.Fatalf("counts do not balance: %+v", c)
		}
		if c.Accepted != uint64(len(tracked)) || c.Completed != uint64(len(completed)) ||
			c.Orphaned != uint64(len(orphaned)) || c.Rejected != full.Load() {
			t.Fatalf("counts %+v; saw %d tracked, %d completed, %d orphaned, %d refused",
				c, len(tracked), len(completed), len(orphaned), full.Load())
		}
		if c.Accepted+c.Rejected != producers*each {
			t.Fatalf("%d accepted + %d refused, want %d", c.Accepted, c.Rejected, producers*each)
		}
		for id := range completed {
			if orphaned[id] {
				t.Fatalf("%s both completed and orphaned", id)
			}
		}
		clk.Advance(time.Hour)
		rest := tr.Sweep()
		for _, p := range rest {
			if !tracked[p.ID] || completed[p.ID] || orphaned[p.ID] {
				t.Fatalf("%s left over but not tracked or already taken", p.ID)
			}
		}
		if uint64(len(rest)) != c.Tracked || tr.Counts().Tracked != 0 {
			t.Fatalf("%d left over, counts said %d", len(rest), c.Tracked)
		}
	})
}
