package admission

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// depths is a queue whose only working call is QueueDepth: it reports
// waiting messages, counts its calls and can be made slow or failing.
type depths struct {
	queue.Queue
	waiting atomic.Int64
	calls   atomic.Int64
	fail    atomic.Bool
	gate    chan struct{} // when set, QueueDepth waits for it to close
}

func (d *depths) QueueDepth(ctx context.Context, name string) (int64, error) {
	d.calls.Add(1)
	if d.gate != nil {
		<-d.gate
	}
	if d.fail.Load() {
		return 0, errors.New("connection refused")
	}
	return d.waiting.Load(), nil
}

func newGate(t *testing.T, d *depths, max int64) (*Gate, *testclock.Clock) {
	t.Helper()
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g, err := New(Config{Max: max, Every: time.Second, Queue: d, Clock: clock, Hint: "raise it"})
	if err != nil {
		t.Fatal(err)
	}
	return g, clock
}

func TestNewRefusesBadSettings(t *testing.T) {
	clock := testclock.New(time.Now())
	d := &depths{}
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"zero bound", Config{Max: 0, Every: time.Second, Queue: d, Clock: clock}, "bound is 0"},
		{"negative bound", Config{Max: -3, Every: time.Second, Queue: d, Clock: clock}, "bound is -3"},
		{"no interval", Config{Max: 1, Queue: d, Clock: clock}, "at least 1ms"},
		{"no queue", Config{Max: 1, Every: time.Second, Clock: clock}, "queue"},
	} {
		_, err := New(c.cfg)
		if !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrInvalid mentioning %q", c.name, err, c.want)
		}
	}
}

func TestRefusesAtTheBoundAndReadsOncePerInterval(t *testing.T) {
	d := &depths{}
	g, clock := newGate(t, d, 10)
	ctx := t.Context()
	d.waiting.Store(9)
	if err := g.Admit(ctx, "shop"); err != nil {
		t.Fatalf("9 waiting, bound 10: %v", err)
	}
	d.waiting.Store(10)
	for range 100 { // within the interval: the reading of 9 stands
		if err := g.Admit(ctx, "shop"); err != nil {
			t.Fatalf("within the interval: %v", err)
		}
	}
	if n := d.calls.Load(); n != 1 {
		t.Fatalf("%d reads within one interval, want 1", n)
	}
	clock.Advance(time.Second)
	err := g.Admit(ctx, "shop")
	if !errors.Is(err, taskertype.ErrQueueFull) {
		t.Fatalf("10 waiting, bound 10: %v, want ErrQueueFull", err)
	}
	for _, w := range []string{`"worker_shop"`, "holds 10", "bound of 10", `namespace "shop"`, "raise it"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	// Another namespace has its own reading.
	d.waiting.Store(0)
	if err := g.Admit(ctx, "billing"); err != nil {
		t.Fatalf("another namespace: %v", err)
	}
	// Drained: admitted again once the next reading is due.
	clock.Advance(time.Second)
	if err := g.Admit(ctx, "shop"); err != nil {
		t.Fatalf("after draining: %v", err)
	}
}

func TestAnUnreadableDepthAdmitsUntilTheNextReading(t *testing.T) {
	d := &depths{}
	g, clock := newGate(t, d, 5)
	d.waiting.Store(5)
	if err := g.Admit(t.Context(), "shop"); !errors.Is(err, taskertype.ErrQueueFull) {
		t.Fatalf("full: %v", err)
	}
	d.fail.Store(true)
	clock.Advance(time.Second)
	for range 10 {
		if err := g.Admit(t.Context(), "shop"); err != nil {
			t.Fatalf("the depth cannot be read: %v, want admitted", err)
		}
	}
	if n := d.calls.Load(); n != 2 {
		t.Fatalf("%d reads, want 2: a failed read is not tried again before the interval", n)
	}
	d.fail.Store(false)
	clock.Advance(time.Second)
	if err := g.Admit(t.Context(), "shop"); !errors.Is(err, taskertype.ErrQueueFull) {
		t.Fatalf("readable and full again: %v", err)
	}
}

func TestACallerWaitsForAReadingOnlyUntilItsContextEnds(t *testing.T) {
	d := &depths{gate: make(chan struct{})}
	g, _ := newGate(t, d, 5)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := g.Admit(ctx, "shop"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled caller: %v, want context.Canceled", err)
	}
	close(d.gate) // the read goes on for the others, and ends
	for d.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := g.Admit(t.Context(), "shop"); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentCallersShareOneRead: many callers finding the reading
// stale at once wait for one QueueDepth, under the race detector.
func TestConcurrentCallersShareOneRead(t *testing.T) {
	d := &depths{gate: make(chan struct{})}
	g, _ := newGate(t, d, 100)
	d.waiting.Store(100)
	var wg sync.WaitGroup
	var full atomic.Int64
	for range 64 {
		wg.Go(func() {
			if errors.Is(g.Admit(t.Context(), "shop"), taskertype.ErrQueueFull) {
				full.Add(1)
			}
		})
	}
	for d.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others join the read in flight
	close(d.gate)
	wg.Wait()
	if n := d.calls.Load(); n > 2 {
		t.Errorf("%d reads for 64 callers at once, want them to share one", n)
	}
	if full.Load() != 64 {
		t.Errorf("%d of 64 callers refused, want all", full.Load())
	}
}

// estimating is a depths queue that also estimates its size
// (queue.DepthEstimator).
type estimating struct {
	depths
	estimate  atomic.Int64
	estimates atomic.Int64
	failEst   atomic.Bool
}

func (e *estimating) QueueDepthEstimate(ctx context.Context, name string) (int64, error) {
	e.estimates.Add(1)
	if e.failEst.Load() {
		return 0, errors.New("connection refused")
	}
	return e.estimate.Load(), nil
}

// TestCountsOnlyWhenTheEstimateReachesTheBound: with a queue that
// estimates its size, an estimate under the bound admits without a count;
// at the bound, or when the estimate fails, the count decides.
func TestCountsOnlyWhenTheEstimateReachesTheBound(t *testing.T) {
	e := &estimating{}
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	g, err := New(Config{Max: 10, Every: time.Second, Queue: e, Clock: clock, Hint: "raise it"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	step := func(estimate, waiting int64, failEst bool) error {
		e.estimate.Store(estimate)
		e.waiting.Store(waiting)
		e.failEst.Store(failEst)
		clock.Advance(time.Second)
		return g.Admit(ctx, "shop")
	}
	// The count would refuse; the estimate under the bound admits
	// without it (it counts claimed and delayed messages, so it is never
	// below the count but for a lag).
	if err := step(9, 100, false); err != nil || e.calls.Load() != 0 {
		t.Fatalf("estimate 9, bound 10: %v after %d counts; want admitted without a count", err, e.calls.Load())
	}
	// At the bound the count decides: 9 visible (the rest claimed).
	if err := step(10, 9, false); err != nil || e.calls.Load() != 1 {
		t.Fatalf("estimate 10, 9 waiting: %v after %d counts; want admitted after one count", err, e.calls.Load())
	}
	if err := step(12, 10, false); !errors.Is(err, taskertype.ErrQueueFull) || !strings.Contains(err.Error(), "holds 10 steps") {
		t.Fatalf("estimate 12, 10 waiting: %v; want ErrQueueFull saying it holds 10", err)
	}
	// An estimate that fails falls back on the count.
	if err := step(0, 10, true); !errors.Is(err, taskertype.ErrQueueFull) || e.calls.Load() != 3 {
		t.Fatalf("estimate failing, 10 waiting: %v after %d counts; want ErrQueueFull after a third count", err, e.calls.Load())
	}
	if n := e.estimates.Load(); n != 4 {
		t.Errorf("%d estimates, want one per reading (4)", n)
	}
}
