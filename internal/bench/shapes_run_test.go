package bench

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The shapes replace every handler by the noop after parsing: the engine
// must run the shapes as changed, not as their files say (the template is
// stored and read back through the store).
func TestEveryShapeRunsWithTheNoopHandler(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	shapes, err := Shapes()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, Backend{Dir: t.TempDir()}, nil, shapes...)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, s := range shapes {
		if err := RunTask(ctx, b.Engine, s); err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
	}
}

// A load run creates tasks at the fraction of the saturation rate asked,
// all of them, and reports their latency.
func TestLoadRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := Run(ctx, Options{Backend: Backend{Dir: t.TempDir()}, Shapes: []string{"single_workflow"},
		Sequential: 5, InFlight: 16, Saturation: 2 * time.Second, Load: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0]
	if want := int(0.9 * r.TasksPerSec * 2); r.LoadTasks != want {
		t.Fatalf("load run of %d tasks, want 2 s of 0.9 × %.0f tasks/s = %d", r.LoadTasks, r.TasksPerSec, want)
	}
	if r.LoadRateReached <= 0 || r.LoadRateReached > 1.01*r.LoadRate {
		t.Fatalf("load run created %.1f tasks/s, asked %.1f: an open loop never runs ahead of its due times", r.LoadRateReached, r.LoadRate)
	}
	if r.LoadP50 <= 0 {
		t.Fatalf("load p50 %v", r.LoadP50)
	}
}

// The open loop starts every run, none before its due time, and counts a
// run's latency from its due time: a run held back by the bound on runs in
// flight has the wait in its latency.
func TestOpenLoop(t *testing.T) {
	ctx := context.Background()
	const rate, n = 200.0, 40
	every := time.Duration(float64(time.Second) / rate)

	var mu sync.Mutex
	var starts []time.Time
	res, err := openLoop(ctx, rate, n, n, func(context.Context) error {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(starts) != n || res.limited {
		t.Fatalf("%d runs started (limited %v), want %d, not limited", len(starts), res.limited, n)
	}
	slices.SortFunc(starts, time.Time.Compare)
	for i, at := range starts {
		if early := time.Duration(i)*every - at.Sub(starts[0]); early > time.Millisecond {
			t.Fatalf("run %d started %v before its due time", i, early)
		}
	}
	if res.rate > rate*1.01 {
		t.Fatalf("reached %.1f runs/s, asked %.1f", res.rate, rate)
	}

	// One run at a time, the first one 100 ms long: the second, due 5 ms
	// after the first, waits for it.
	var calls atomic.Int32
	res, err = openLoop(ctx, rate, 10, 1, func(context.Context) error {
		if calls.Add(1) == 1 {
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 10 || !res.limited {
		t.Fatalf("%d runs (limited %v), want 10, limited", calls.Load(), res.limited)
	}
	if res.lat[1] < 90*time.Millisecond {
		t.Fatalf("the second run's latency %v: want its wait for the first counted (≥ 90 ms)", res.lat[1])
	}

	// A run's error ends the loop and is returned.
	boom := errors.New("boom")
	if _, err := openLoop(ctx, rate, 10, 10, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
}
