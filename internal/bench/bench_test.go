package bench

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/template"
)

// backends are the embedded backend, and PostgreSQL when the test database
// is set (TASKER_TEST_POSTGRES_URL).
func backends(b *testing.B) []namedBackend {
	out := []namedBackend{{"sqlite", Backend{Dir: b.TempDir()}}}
	if u := os.Getenv(pgtest.EnvURL); u != "" {
		out = append(out, namedBackend{"postgres", Backend{DatabaseURL: u}})
	}
	return out
}

type namedBackend struct {
	name string
	Backend
}

func open(b *testing.B, be Backend, t *template.Template) *Bench {
	b.Helper()
	bench, err := Open(context.Background(), be, nil, t)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := bench.Close(); err != nil {
			b.Error(err)
		}
	})
	return bench
}

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
	for _, be := range backends(b) {
		for _, name := range []string{"linear_workflow", "diamond_workflow", "dag_workflow", "tree_workflow"} {
			b.Run(be.name+"/"+name, func(b *testing.B) {
				ctx := context.Background()
				t := shape(b, name)
				eng := open(b, be.Backend, t).Engine
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
}

// BenchmarkThroughput keeps 64 tasks in flight and reports steps per second.
func BenchmarkThroughput(b *testing.B) {
	for _, be := range backends(b) {
		for _, name := range []string{"linear_workflow", "tree_workflow"} {
			b.Run(be.name+"/"+name, func(b *testing.B) {
				ctx := context.Background()
				t := shape(b, name)
				eng := open(b, be.Backend, t).Engine
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
}
