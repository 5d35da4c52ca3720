package bench

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tasker-go/tasker/template"
)

func shape(b *testing.B, name string) *template.Template {
	b.Helper()
	shapes, err := Shapes()
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range shapes {
		if s.Name == name {
			return s
		}
	}
	b.Fatalf("no shape %s", name)
	return nil
}

// BenchmarkTaskLatency runs one task at a time and reports the median and
// tail latency from creation to completion.
func BenchmarkTaskLatency(b *testing.B) {
	for _, name := range []string{"linear_workflow", "diamond_workflow", "dag_workflow", "tree_workflow"} {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			t := shape(b, name)
			eng, err := Engine(ctx, b.TempDir(), nil, t)
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Stop(ctx)
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				if err := RunTask(ctx, eng, t); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.ReportMetric(float64(Percentile(lat, 50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(Percentile(lat, 99).Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkThroughput keeps 64 tasks in flight and reports steps per second.
func BenchmarkThroughput(b *testing.B) {
	for _, name := range []string{"linear_workflow", "tree_workflow"} {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			t := shape(b, name)
			eng, err := Engine(ctx, b.TempDir(), nil, t)
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Stop(ctx)
			work := make(chan struct{})
			var wg sync.WaitGroup
			for range 64 {
				wg.Go(func() {
					for range work {
						if err := RunTask(ctx, eng, t); err != nil {
							b.Error(err)
						}
					}
				})
			}
			start := time.Now()
			for b.Loop() {
				work <- struct{}{}
			}
			close(work)
			wg.Wait()
			b.ReportMetric(float64(b.N*len(t.Steps))/time.Since(start).Seconds(), "steps/s")
		})
	}
}
