// Package bench measures the engine end to end on the example shapes with a
// trivial handler: latency one task at a time, and throughput with many
// tasks in flight. Both `tasker bench` and the Go benchmarks use it.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/examples"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/internal/worker"
	"github.com/tasker-go/tasker/queue/rabbitmq"
	storepg "github.com/tasker-go/tasker/store/postgres"
	"github.com/tasker-go/tasker/template"
)

// NoopHandler is the handler every benchmarked step runs.
const NoopHandler = "demo.noop"

// singleShape is one step: the least a task can be, for comparisons with
// job queues.
const singleShape = `name: single_workflow
namespace: demo
version: 1.0.0
description: One step, for throughput comparisons with job queues.
steps:
  - name: only
    handler: demo.noop
`

// Shapes returns the single-step shape and the example templates with
// every step's handler replaced by NoopHandler, in the order single,
// linear, diamond, dag, tree.
func Shapes() ([]*template.Template, error) {
	single, err := template.Parse("single", []byte(singleShape))
	if err != nil {
		return nil, err
	}
	out := []*template.Template{single}
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

// Backend says where a run keeps its state.
type Backend struct {
	// Dir holds the embedded backend's database: a fresh file in it.
	Dir string
	// DatabaseURL selects PostgreSQL instead: a fresh schema of this
	// database, migrated at the start and dropped at the end.
	DatabaseURL string
	// ReportGroups is the engine's Config.ReportGroups; zero: its default.
	ReportGroups int
	// AMQPURL, with DatabaseURL, puts the queues on this RabbitMQ broker
	// (under a prefix of the run's own, deleted at the end), the store's
	// messages going through its outbox.
	AMQPURL string
}

// Options configures a run.
type Options struct {
	Backend
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
	// Idle is how long, after the saturation run of each shape, the idle
	// engine's round trips are counted (PostgreSQL only). Zero: not
	// measured.
	Idle time.Duration
	// Load, between 0 and 1, adds a run at that fraction of the rate the
	// saturation run reached (0.5: half load), for Saturation: tasks
	// created at a fixed rate whatever the engine does (open loop), each
	// one's latency counted from when it was due, so that a backlog shows
	// in the figures. Zero: no such run.
	Load   float64
	Logger *slog.Logger
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
	// Round trips to the database per step, the bench's own creations and
	// waits included: one task at a time, and at saturation. Zero on the
	// embedded backend, which has no round trips.
	TripsPerStep, TripsPerStepSaturated float64
	// IdleTripsPerSec is the round trips per second of the idle engine
	// (Options.Idle), pings included.
	IdleTripsPerSec float64
	// The run at Options.Load: the rate asked (tasks/s), the tasks run,
	// the tasks completed per second between the first completion and the
	// last (below the rate asked when the engine fell behind),
	// whether the bound on tasks in flight held creations back, and the
	// latency percentiles, from each task's due time to its completion.
	// LoadSkipped, if set, says why the run did not happen.
	LoadRate, LoadRateReached float64
	LoadTasks                 int
	LoadLimited               bool
	LoadP50, LoadP95, LoadP99 time.Duration
	LoadSkipped               string
}

// Run measures each shape on a fresh engine and database.
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
		return nil, fmt.Errorf("no shape matches %v: choose among single_workflow, linear_workflow, diamond_workflow, dag_workflow, tree_workflow", o.Shapes)
	}
	return reports, nil
}

// Bench is a started engine on a fresh database, with the noop handler and
// the shapes registered.
type Bench struct {
	Engine *tasker.Engine
	pg     *storepg.Store
	drop   func() error
}

// Open opens the backend, and an engine on it, and starts the engine.
func Open(ctx context.Context, b Backend, logger *slog.Logger, shapes ...*template.Template) (*Bench, error) {
	cfg := tasker.Config{Templates: shapes, Logger: logger, ReportGroups: b.ReportGroups}
	out := &Bench{}
	if b.DatabaseURL == "" {
		dir := b.Dir
		if dir == "" {
			dir = os.TempDir() // never the working directory
		}
		cfg.DatabasePath = filepath.Join(dir, fmt.Sprintf("bench-%d.db", time.Now().UnixNano()))
	} else {
		if b.AMQPURL != "" {
			st, q, drop, err := openRabbitMQ(ctx, b.DatabaseURL, b.AMQPURL, logger)
			if err != nil {
				return nil, err
			}
			out.pg, out.drop = st, drop
			cfg.Store, cfg.Queue = st, q
		} else {
			st, drop, err := openPostgres(ctx, b.DatabaseURL, logger, storepg.OutboxConfig{})
			if err != nil {
				return nil, err
			}
			out.pg, out.drop = st, drop
			cfg.Store, cfg.Queue = st, st.Queue()
		}
	}
	eng, err := tasker.Open(ctx, cfg)
	if err != nil {
		out.Close()
		return nil, err
	}
	out.Engine = eng
	if err := eng.RegisterHandler(NoopHandler, demo.Handlers()[NoopHandler]); err != nil {
		out.Close()
		return nil, err
	}
	if err := eng.Start(ctx); err != nil {
		out.Close()
		return nil, err
	}
	return out, nil
}

// openPostgres creates a schema of its own in the database and opens a
// migrated store on it; drop closes the store and drops the schema.
func openPostgres(ctx context.Context, dbURL string, logger *slog.Logger, outbox storepg.OutboxConfig) (*storepg.Store, func() error, error) {
	admin, err := pgdb.Open(ctx, pgdb.Options{URL: dbURL, Logger: logger, MaxConns: 1})
	if err != nil {
		return nil, nil, err
	}
	schema := fmt.Sprintf("tasker_bench_%d", time.Now().UnixNano())
	drop := func() error {
		defer admin.Close()
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Pool.Exec(dctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			return fmt.Errorf("drop the bench schema %s: %w", schema, err)
		}
		return nil
	}
	if _, err := admin.Pool.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		return nil, nil, fmt.Errorf("create the bench schema: %w", err)
	}
	u, err := pgdb.WithSearchPath(dbURL, schema)
	if err == nil {
		var st *storepg.Store
		if st, err = storepg.Open(ctx, storepg.Config{URL: u, Logger: logger, AutoMigrate: true, Outbox: outbox}); err == nil {
			return st, func() error { st.Close(); return drop() }, nil
		}
	}
	return nil, nil, errors.Join(err, drop())
}

// openRabbitMQ opens the queues on a RabbitMQ broker under a prefix of
// their own, and a store on a schema of its own whose outbox relays there;
// drop closes both and deletes the schema and the broker's queues.
func openRabbitMQ(ctx context.Context, dbURL, amqpURL string, logger *slog.Logger) (*storepg.Store, *rabbitmq.Queue, func() error, error) {
	q, err := rabbitmq.Open(ctx, rabbitmq.Config{URL: amqpURL, Logger: logger, Prefetch: worker.DefaultConcurrency(runtime.GOMAXPROCS(0)),
		Prefix: fmt.Sprintf("bench%d_", time.Now().UnixNano())})
	if err != nil {
		return nil, nil, nil, err
	}
	st, drop, err := openPostgres(ctx, dbURL, logger, storepg.OutboxConfig{Queue: q})
	if err != nil {
		return nil, nil, nil, errors.Join(err, q.Close())
	}
	return st, q, func() error {
		err := drop() // closes the store: its relay stops
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return errors.Join(err, q.DeleteTopology(dctx), q.Close())
	}, nil
}

// RoundTrips counts the round trips to the database so far, and reports
// whether the backend has any (PostgreSQL does, the embedded one does not).
func (b *Bench) RoundTrips() (uint64, bool) {
	if b.pg == nil {
		return 0, false
	}
	return b.pg.RoundTrips(), true
}

// Close stops the engine and removes a PostgreSQL schema.
func (b *Bench) Close() error {
	var errs []error
	if b.Engine != nil {
		errs = append(errs, b.Engine.Stop(context.Background()))
	}
	if b.drop != nil {
		errs = append(errs, b.drop())
	}
	return errors.Join(errs...)
}

// taskParams are the parameters of a benchmark task of t: the same
// context every time, so each task has an idempotency key of its own
// (under the default strict identity the same context is one task;
// docs/identity.md). Its identity is computed and its unique index entry
// made, as for any task.
func taskParams(t *template.Template) tasker.CreateTaskParams {
	return tasker.CreateTaskParams{Namespace: t.Namespace, Name: t.Name, Version: t.Version, Context: `{"value": 3}`,
		IdempotencyKey: uuid.NewString()}
}

// RunTask creates one task of t and waits for it to complete.
func RunTask(ctx context.Context, eng *tasker.Engine, t *template.Template) error {
	task, err := eng.CreateTask(ctx, taskParams(t))
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

func runShape(ctx context.Context, o Options, t *template.Template) (r *Report, err error) {
	b, err := Open(ctx, o.Backend, o.Logger, t)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	eng := b.Engine
	r = &Report{Shape: t.Name, Steps: len(t.Steps), Sequential: o.Sequential, InFlight: o.InFlight}
	// Warm up: statement caches, page cache, goroutines.
	for range 20 {
		if err := RunTask(ctx, eng, t); err != nil {
			return nil, err
		}
	}
	trips0, _ := b.RoundTrips()
	lat := make([]time.Duration, 0, o.Sequential)
	for range o.Sequential {
		start := time.Now()
		if err := RunTask(ctx, eng, t); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start))
	}
	r.P50, r.P95, r.P99 = Percentile(lat, 50), Percentile(lat, 95), Percentile(lat, 99)
	trips1, pg := b.RoundTrips()
	if pg {
		r.TripsPerStep = float64(trips1-trips0) / float64(o.Sequential*r.Steps)
	}

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
	trips2, _ := b.RoundTrips()
	if pg && r.Tasks > 0 {
		r.TripsPerStepSaturated = float64(trips2-trips1) / float64(r.Tasks*int64(r.Steps))
	}
	if o.Load > 0 {
		if err := runLoad(ctx, o, eng, t, r); err != nil {
			return nil, err
		}
	}
	if pg && o.Idle > 0 {
		// Let the last acknowledgements land, then count.
		if err := sleep(ctx, time.Second); err != nil {
			return nil, err
		}
		before, _ := b.RoundTrips()
		start := time.Now()
		if err := sleep(ctx, o.Idle); err != nil {
			return nil, err
		}
		after, _ := b.RoundTrips()
		r.IdleTripsPerSec = float64(after-before) / time.Since(start).Seconds()
	}
	return r, nil
}

// MaxLoadInFlight bounds the tasks a load run keeps in flight: past it, the
// engine has fallen behind the rate, and the next creations wait (their
// latency, counted from their due time, grows with the wait).
const MaxLoadInFlight = 4096

// minLoadTasks is the fewest tasks a load run creates: with fewer, the
// p99 is not a percentile but the worst sample.
const minLoadTasks = 100

// loadSettle is the pause between the saturation run and the load run, for
// the work the saturation run left (its last acknowledgements, the
// database's checkpoints) to end before the first task is due.
const loadSettle = 500 * time.Millisecond

// runLoad runs tasks of t at o.Load times the saturation rate in r for
// o.Saturation and puts the figures in r. A run that would hold fewer than
// minLoadTasks tasks is skipped, and r.LoadSkipped says why.
func runLoad(ctx context.Context, o Options, eng *tasker.Engine, t *template.Template, r *Report) error {
	rate := o.Load * r.TasksPerSec
	n := int(rate * o.Saturation.Seconds())
	if r.TasksPerSec <= 0 {
		r.LoadSkipped = "the saturation run completed no task, so there is no rate to take a fraction of"
		return nil
	}
	if n < minLoadTasks {
		r.LoadSkipped = fmt.Sprintf("%g of the saturation rate (%.0f tasks/s) for %v is %d tasks, fewer than the %d a p99 needs: give a longer --duration or a higher --load",
			o.Load, r.TasksPerSec, o.Saturation, n, minLoadTasks)
		return nil
	}
	if err := sleep(ctx, loadSettle); err != nil {
		return err
	}
	res, err := openLoop(ctx, rate, n, MaxLoadInFlight, func(ctx context.Context) error { return RunTask(ctx, eng, t) })
	if err != nil {
		return fmt.Errorf("load run: %w", err)
	}
	r.LoadRate, r.LoadTasks, r.LoadRateReached, r.LoadLimited = rate, n, res.rate, res.limited
	r.LoadP50, r.LoadP95, r.LoadP99 = Percentile(res.lat, 50), Percentile(res.lat, 95), Percentile(res.lat, 99)
	return nil
}

// loadResult is what an open loop measured: each run's latency from its
// due time, the runs completed per second between the first completion
// and the last, and whether the bound on runs in flight held one back.
type loadResult struct {
	lat     []time.Duration
	rate    float64
	limited bool
}

// openLoop starts n runs of run at rate a second, the i-th due i/rate
// seconds after the first, whatever the runs before it do: an open loop. At
// most maxInFlight run at once; a run that must wait for one to end starts
// late, and its latency, counted from its due time, holds the wait. The
// first error of a run cancels the others and is returned.
func openLoop(ctx context.Context, rate float64, n, maxInFlight int, run func(context.Context) error) (loadResult, error) {
	res := loadResult{lat: make([]time.Duration, n)}
	every := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, maxInFlight)
	var firstErr error
	var once sync.Once
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * every)
		if err := sleep(lctx, time.Until(due)); err != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			res.limited = true
			select {
			case sem <- struct{}{}:
			case <-lctx.Done():
			}
		}
		if lctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := run(lctx); err != nil {
				once.Do(func() { firstErr = err; cancel() })
				return
			}
			res.lat[i] = time.Since(due)
		})
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	// Completions per second, between the first and the last: a run
	// completes at its due time plus its latency.
	first, last := time.Duration(math.MaxInt64), time.Duration(0)
	for i, l := range res.lat {
		done := time.Duration(i)*every + l
		first, last = min(first, done), max(last, done)
	}
	if span := last - first; n > 1 && span > 0 {
		res.rate = float64(n-1) / span.Seconds()
	}
	return res, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
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
