package bench

import (
	"context"
	"errors"
	"slices"
	"strings"
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

// runSingle runs the single shape on SQLite with a load run and returns
// its figures.
func runSingle(t *testing.T, inFlight int, saturation time.Duration, load float64) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := Run(ctx, Options{Backend: Backend{Dir: t.TempDir()}, Shapes: []string{"single_workflow"},
		Sequential: 5, InFlight: inFlight, Saturation: saturation, Load: load})
	if err != nil {
		t.Fatal(err)
	}
	return rs[0]
}

// A load run creates tasks at the fraction of the saturation rate asked,
// all of them, and reports their latency.
func TestLoadRun(t *testing.T) {
	r := runSingle(t, 16, 2*time.Second, 0.9)
	if r.LoadSkipped != "" {
		t.Fatalf("load run skipped: %s", r.LoadSkipped)
	}
	if want := int(0.9 * r.TasksPerSec * 2); r.LoadTasks != want {
		t.Fatalf("load run of %d tasks, want 2 s of 0.9 × %.0f tasks/s = %d", r.LoadTasks, r.TasksPerSec, want)
	}
	if r.LoadRateReached <= 0 || r.LoadRateReached > 1.5*r.LoadRate {
		t.Fatalf("load run completed %.1f tasks/s, asked %.1f", r.LoadRateReached, r.LoadRate)
	}
	if r.LoadP50 <= 0 {
		t.Fatalf("load p50 %v", r.LoadP50)
	}
}

// A load run too short for a p99 is skipped, saying why, and the shape's
// other figures stand.
func TestLoadRunTooShortIsSkipped(t *testing.T) {
	r := runSingle(t, 4, 200*time.Millisecond, 0.001)
	if !strings.Contains(r.LoadSkipped, "--duration") || r.LoadTasks != 0 || r.TasksPerSec <= 0 {
		t.Fatalf("skipped %q, %d load tasks, %.0f tasks/s at saturation: want the run skipped with advice and the saturation figures kept", r.LoadSkipped, r.LoadTasks, r.TasksPerSec)
	}
}

// The open loop starts every run, none before its due time, counts a run's
// latency from its due time (a run held back by the bound on runs in
// flight has the wait in its latency), and its rate is that of the
// completions.
func TestOpenLoop(t *testing.T) {
	ctx := context.Background()
	const rate, n = 200.0, 40
	every := time.Duration(float64(time.Second) / rate)

	var mu sync.Mutex
	var starts []time.Time
	t0 := time.Now()
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
		if due := time.Duration(i) * every; at.Sub(t0) < due {
			t.Fatalf("run %d started %v after the loop began, before its due time %v", i, at.Sub(t0), due)
		}
	}
	for i, l := range res.lat {
		if l <= 0 {
			t.Fatalf("run %d: latency %v, want a positive one", i, l)
		}
	}
	// The completions follow the due times, give or take the runs'
	// scheduling (the first one late, the last on time).
	if res.rate <= 0.5*rate || res.rate > 1.5*rate {
		t.Fatalf("completed %.1f runs/s, asked %.1f", res.rate, rate)
	}

	// One run at a time, each 20 ms long, asked at 200 a second: the runs
	// wait for each other, the second has the first's 20 ms in its latency,
	// and the completions come at about 50 a second.
	var calls atomic.Int32
	res, err = openLoop(ctx, rate, 10, 1, func(context.Context) error {
		calls.Add(1)
		time.Sleep(20 * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 10 || !res.limited {
		t.Fatalf("%d runs (limited %v), want 10, limited", calls.Load(), res.limited)
	}
	if res.lat[1] < 35*time.Millisecond {
		t.Fatalf("the second run's latency %v: want its wait for the first counted (≥ 35 ms)", res.lat[1])
	}
	if res.rate > 55 {
		t.Fatalf("completed %.1f runs/s, want at most 50 (one 20 ms run at a time)", res.rate)
	}

	// A run's error ends the loop and is returned.
	boom := errors.New("boom")
	if _, err := openLoop(ctx, rate, 10, 10, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
}
