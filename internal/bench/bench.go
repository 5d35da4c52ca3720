// Package bench measures the engine end to end on the example shapes with a
// trivial handler: latency one task at a time, and throughput with many
// tasks in flight. Both `tasker bench` and the Go benchmarks use it.
package bench

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/examples"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/template"
)

// NoopHandler is the handler every benchmarked step runs.
const NoopHandler = "demo.noop"

// Shapes returns the example templates with every step's handler replaced
// by NoopHandler, in the order linear, diamond, dag, tree.
func Shapes() ([]*template.Template, error) {
	var out []*template.Template
	for _, name := range []string{"linear.yaml", "diamond.yaml", "dag.yaml", "tree.yaml"} {
		data, err := fs.ReadFile(examples.FS, name)
		if err != nil {
			return nil, err
		}
		t, err := template.Parse("examples/"+name, data)
		if err != nil {
			return nil, err
		}
		for i := range t.Steps {
			t.Steps[i].Handler = NoopHandler
		}
		out = append(out, t)
	}
	return out, nil
}

// Options configures a run.
type Options struct {
	// Dir holds the database; a fresh file is created in it.
	Dir string
	// Shapes to run by template name; empty: all.
	Shapes []string
	// Sequential is the number of tasks per shape run one at a time for
	// the latency figures. Default 200.
	Sequential int
	// InFlight is the number of tasks kept in flight for the throughput
	// figures. Default 64.
	InFlight int
	// Saturation is how long each shape runs at saturation. Default 3s.
	Saturation time.Duration
	Logger     *slog.Logger
}

// Report is the figures of one shape.
type Report struct {
	Shape         string
	Steps         int
	Sequential    int
	P50, P95, P99 time.Duration
	InFlight      int
	Tasks         int64 // completed in the saturation run
	Elapsed       time.Duration
	TasksPerSec   float64
	StepsPerSec   float64
}

// Run measures each shape on a fresh embedded engine.
func Run(ctx context.Context, o Options) ([]Report, error) {
	if o.Sequential == 0 {
		o.Sequential = 200
	}
	if o.InFlight == 0 {
		o.InFlight = 64
	}
	if o.Saturation == 0 {
		o.Saturation = 3 * time.Second
	}
	shapes, err := Shapes()
	if err != nil {
		return nil, err
	}
	var reports []Report
	for _, t := range shapes {
		if len(o.Shapes) > 0 && !slices.Contains(o.Shapes, t.Name) {
			continue
		}
		r, err := runShape(ctx, o, t)
		if err != nil {
			return reports, fmt.Errorf("bench %s: %w", t.Name, err)
		}
		reports = append(reports, *r)
	}
	if len(reports) == 0 {
		return nil, fmt.Errorf("no shape matches %v: choose among linear_workflow, diamond_workflow, dag_workflow, tree_workflow", o.Shapes)
	}
	return reports, nil
}

// Engine opens an embedded engine on a new file in dir with the noop
// handler and the shapes registered, and starts it.
func Engine(ctx context.Context, dir string, logger *slog.Logger, shapes ...*template.Template) (*tasker.Engine, error) {
	eng, err := tasker.Open(ctx, tasker.Config{
		DatabasePath: filepath.Join(dir, fmt.Sprintf("bench-%d.db", time.Now().UnixNano())),
		Templates:    shapes, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	if err := eng.RegisterHandler(NoopHandler, demo.Handlers()[NoopHandler]); err != nil {
		return nil, err
	}
	return eng, eng.Start(ctx)
}

// RunTask creates one task of t and waits for it to complete.
func RunTask(ctx context.Context, eng *tasker.Engine, t *template.Template) error {
	task, err := eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: t.Namespace, Name: t.Name, Version: t.Version, Context: `{"value": 3}`})
	if err != nil {
		return err
	}
	final, err := eng.WaitTask(ctx, task.ID)
	if err != nil {
		return err
	}
	if final.State != "complete" {
		return fmt.Errorf("task %s ended %s", final.ID, final.State)
	}
	return nil
}

func runShape(ctx context.Context, o Options, t *template.Template) (*Report, error) {
	eng, err := Engine(ctx, o.Dir, o.Logger, t)
	if err != nil {
		return nil, err
	}
	defer eng.Stop(context.Background())
	r := &Report{Shape: t.Name, Steps: len(t.Steps), Sequential: o.Sequential, InFlight: o.InFlight}
	// Warm up: statement caches, page cache, goroutines.
	for range 20 {
		if err := RunTask(ctx, eng, t); err != nil {
			return nil, err
		}
	}
	lat := make([]time.Duration, 0, o.Sequential)
	for range o.Sequential {
		start := time.Now()
		if err := RunTask(ctx, eng, t); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start))
	}
	r.P50, r.P95, r.P99 = Percentile(lat, 50), Percentile(lat, 95), Percentile(lat, 99)

	var done atomic.Int64
	var firstErr error
	var once sync.Once
	sctx, cancel := context.WithTimeout(ctx, o.Saturation)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for range o.InFlight {
		wg.Go(func() {
			for sctx.Err() == nil {
				if err := RunTask(ctx, eng, t); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	r.Elapsed = time.Since(start)
	r.Tasks = done.Load()
	r.TasksPerSec = float64(r.Tasks) / r.Elapsed.Seconds()
	r.StepsPerSec = r.TasksPerSec * float64(r.Steps)
	return r, nil
}

// Percentile returns the p-th percentile (nearest rank) of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
