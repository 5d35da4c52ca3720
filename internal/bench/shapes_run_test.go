package bench

import (
	"context"
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

// A load run creates tasks at the fraction of the saturation rate asked and
// reports their latency from when each was due.
func TestLoadRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs, err := Run(ctx, Options{Backend: Backend{Dir: t.TempDir()}, Shapes: []string{"single_workflow"},
		Sequential: 5, InFlight: 4, Saturation: 300 * time.Millisecond, Load: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0]
	if want := 0.5 * r.TasksPerSec; r.LoadRate != want || r.LoadRate <= 0 {
		t.Fatalf("load rate %.1f tasks/s, want half the saturation's %.1f", r.LoadRate, r.TasksPerSec)
	}
	if r.LoadP50 <= 0 || r.LoadP95 < r.LoadP50 || r.LoadP99 < r.LoadP95 {
		t.Fatalf("load percentiles p50 %v p95 %v p99 %v: want positive and ordered", r.LoadP50, r.LoadP95, r.LoadP99)
	}
}
