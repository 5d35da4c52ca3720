// Command river compares Tasker's throughput with River's on one
// PostgreSQL database: a backlog of no-op River jobs drained by a River
// client, against a backlog of single-step Tasker tasks drained by a fresh
// engine (`tasker bench --burn-down`), round by round, interleaved, so that
// a noisy moment of a shared machine hits both. Tasker's worker
// concurrency is River's MaxWorkers unless --tasker-concurrency says
// otherwise. It prints each round's rates, the medians and the ratio
// Tasker/River.
//
//	cd bench && go run ./river --database-url postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//
// It lives in a module of its own so that the engine's module does not
// depend on River.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

type options struct {
	databaseURL string
	jobs        int
	rounds      int
	maxWorkers  int
	repo        string
	taskerArgs  string
	// taskerConc is the draining engine's worker concurrency: -1 (the
	// default) matches River's MaxWorkers, 0 leaves the engine's default.
	taskerConc int
	gogc       int
}

func main() {
	var o options
	flag.StringVar(&o.databaseURL, "database-url", os.Getenv("TASKER_TEST_POSTGRES_URL"), "the PostgreSQL database both run on, each in schemas of its own (default $TASKER_TEST_POSTGRES_URL)")
	flag.IntVar(&o.jobs, "jobs", 20000, "jobs (and tasks) in each round's backlog")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds; each runs River and Tasker once, in alternating order")
	flag.IntVar(&o.maxWorkers, "max-workers", 2000, "River's MaxWorkers for the default queue (River's own benchmark, riverbench, uses 2,000)")
	flag.StringVar(&o.repo, "repo", "", "the Tasker repository whose cmd/tasker is built and run (default: found above the current directory)")
	flag.StringVar(&o.taskerArgs, "tasker-args", "", "more arguments for `tasker bench --burn-down`, such as \"--cpuprofile cpu.prof\"")
	flag.IntVar(&o.taskerConc, "tasker-concurrency", -1, "Tasker's worker concurrency (the handlers it runs at once; River's MaxWorkers bounds the jobs it has fetched and not yet handed to its completer): -1 (default) the same as --max-workers, 0 the engine's default (100 on a small machine)")
	gogc := 400 // tasker's server processes' default
	if v, err := strconv.Atoi(os.Getenv("GOGC")); err == nil && v > 0 {
		gogc = v
	}
	flag.IntVar(&o.gogc, "gogc", gogc, "the garbage collector's target (GOGC) of both: River's client, in this process, and tasker's (default $GOGC, else 400, the default of tasker's server processes)")
	flag.Parse()
	if o.gogc <= 0 {
		fmt.Fprintln(os.Stderr, "river bench: --gogc must be positive (Go's default is 100)")
		os.Exit(2)
	}
	// Both engines collect garbage at the same target: tasker's server
	// processes run at 400 by default, so River's client, in this process,
	// does too unless told otherwise.
	debug.SetGCPercent(o.gogc)
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "river bench:", err)
		os.Exit(1)
	}
}

// figures are one drain's: River's or Tasker's.
type figures struct {
	PerSec       float64 `json:"tasks_per_sec"`
	GoCPU        float64 `json:"go_cpu_per_task_us"`
	PGMeasured   bool    `json:"pg_cpu_measured"`
	PGCPU        float64 `json:"pg_backend_cpu_per_task_us"`
	PGBackground float64 `json:"pg_background_cpu_per_task_us"`
	Trips        float64 `json:"round_trips_per_task"`
	Statements   float64 `json:"statements_per_task"`
	Inserted     float64 `json:"rows_inserted_per_task"`
	Updated      float64 `json:"rows_updated_per_task"`
	Deleted      float64 `json:"rows_deleted_per_task"`
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.databaseURL == "" {
		return errors.New("no database: give --database-url, such as postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	if o.jobs < 1 || o.rounds < 1 || o.maxWorkers < 1 {
		return fmt.Errorf("--jobs, --rounds and --max-workers must be positive")
	}
	if o.taskerConc < -1 {
		return fmt.Errorf("--tasker-concurrency %d: give -1 (River's --max-workers), 0 (the engine's default) or a concurrency", o.taskerConc)
	}
	if slices.ContainsFunc(strings.Fields(o.taskerArgs), func(a string) bool {
		return a == "--worker-concurrency" || strings.HasPrefix(a, "--worker-concurrency=")
	}) {
		return errors.New("--tasker-args sets --worker-concurrency: give it as --tasker-concurrency instead")
	}
	repo, err := findRepo(o.repo)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "river-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "tasker")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tasker")
	build.Dir, build.Stdout, build.Stderr = repo, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build tasker in %s: %w", repo, err)
	}
	admin, err := pgxpool.New(ctx, o.databaseURL)
	if err != nil {
		return err
	}
	defer admin.Close()

	conc := "the engine's default"
	if n := o.taskerConcurrency(); n > 0 {
		conc = fmt.Sprint(n)
	}
	fmt.Fprintf(out, "River MaxWorkers %d, Tasker worker concurrency %s; GOGC %d for both; load average before: %s\n", o.maxWorkers, conc, o.gogc, loadAvg())
	var rivers, taskers []figures
	for i := range o.rounds {
		var r, t figures
		var err error
		riverFirst := i%2 == 0
		if riverFirst {
			if r, err = runRiver(ctx, admin, o); err == nil {
				t, err = runTasker(ctx, bin, o)
			}
		} else {
			if t, err = runTasker(ctx, bin, o); err == nil {
				r, err = runRiver(ctx, admin, o)
			}
		}
		if err != nil {
			return fmt.Errorf("round %d: %w", i+1, err)
		}
		fmt.Fprintf(out, "round %d: River %.0f jobs/s, Tasker %.0f tasks/s, ratio %.2f\n", i+1, r.PerSec, t.PerSec, t.PerSec/r.PerSec)
		rivers, taskers = append(rivers, r), append(taskers, t)
	}
	fmt.Fprintf(out, "load average after: %s\n\n", loadAvg())

	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEDIAN\tPER SEC\tGO CPU/JOB\tPG CPU/JOB\tPG BG CPU/JOB\tRT/JOB\tSTMTS/JOB\tROWS INS/UPD/DEL PER JOB")
	for _, row := range []struct {
		name string
		fs   []figures
	}{{"river", rivers}, {"tasker", taskers}} {
		m := func(f func(figures) float64) float64 { return median(row.fs, f) }
		fmt.Fprintf(tw, "%s\t%.0f\t%.0fµs\t%.0fµs\t%.0fµs\t%.2f\t%.2f\t%.2f / %.2f / %.2f\n", row.name,
			m(func(f figures) float64 { return f.PerSec }), m(func(f figures) float64 { return f.GoCPU }),
			m(func(f figures) float64 { return f.PGCPU }), m(func(f figures) float64 { return f.PGBackground }),
			m(func(f figures) float64 { return f.Trips }), m(func(f figures) float64 { return f.Statements }),
			m(func(f figures) float64 { return f.Inserted }), m(func(f figures) float64 { return f.Updated }),
			m(func(f figures) float64 { return f.Deleted }))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	rm, tm := median(rivers, perSec), median(taskers, perSec)
	fmt.Fprintf(out, "\nratio Tasker/River of the medians: %.2f (Tasker %.0f tasks/s, River %.0f jobs/s, %d each, %d rounds)\n", tm/rm, tm, rm, o.jobs, o.rounds)
	return nil
}

func perSec(f figures) float64 { return f.PerSec }

func median(fs []figures, f func(figures) float64) float64 {
	var v []float64
	for _, x := range fs {
		v = append(v, f(x))
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// taskerConcurrency is the worker concurrency Tasker's burn-down is given,
// 0 for the engine's default.
func (o options) taskerConcurrency() int {
	if o.taskerConc == -1 {
		return o.maxWorkers
	}
	return o.taskerConc
}

// runTasker runs the burn-down of the tasker binary and reads its figures.
func runTasker(ctx context.Context, bin string, o options) (figures, error) {
	args := []string{"bench", "--burn-down", fmt.Sprint(o.jobs), "--shapes", "single", "--database-url", o.databaseURL, "--json"}
	if n := o.taskerConcurrency(); n > 0 {
		args = append(args, "--worker-concurrency", fmt.Sprint(n))
	}
	args = append(args, strings.Fields(o.taskerArgs)...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("GOGC=%d", o.gogc))
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return figures{}, fmt.Errorf("tasker %s: %w", strings.Join(args, " "), err)
	}
	var f figures
	if err := json.Unmarshal(stdout.Bytes(), &f); err != nil {
		return figures{}, fmt.Errorf("tasker bench printed %q: %w", stdout.String(), err)
	}
	return f, nil
}

// findRepo returns dir, or the first directory above the current one whose
// go.mod is Tasker's.
func findRepo(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.HasPrefix(data, []byte("module github.com/tasker-go/tasker\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no Tasker repository above %s: give --repo", wd)
		}
	}
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// noopArgs and noopWorker are a no-op job, as River's own benchmark has it.
type noopArgs struct {
	Num int `json:"num"`
}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (*noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// runRiver inserts o.jobs no-op jobs in a fresh schema, then times their
// drain by a River client configured as River's benchmark configures it,
// counting the completions River publishes once they are committed.
func runRiver(ctx context.Context, admin *pgxpool.Pool, o options) (f figures, err error) {
	id := time.Now().UnixNano()
	schema, app := fmt.Sprintf("river_bench_%d", id), fmt.Sprintf("river-bench-%d", id)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return f, fmt.Errorf("create schema: %w", err)
	}
	defer func() {
		_, derr := admin.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+schema+" CASCADE")
		err = errors.Join(err, derr)
	}()
	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker{})
	config := func() *river.Config {
		return &river.Config{
			Schema: schema, Logger: slog.New(slog.DiscardHandler), Workers: workers,
			// riverbench's settings, which it found best for throughput.
			FetchCooldown: 2 * time.Millisecond, FetchPollInterval: 20 * time.Millisecond,
			Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: o.maxWorkers}},
		}
	}

	// The backlog, by a pool of its own, closed before the drain.
	insertPool, _, err := openPool(ctx, o.databaseURL, app+"-backlog")
	if err != nil {
		return f, err
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(insertPool), &rivermigrate.Config{Schema: schema, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	}
	if err == nil {
		err = insertJobs(ctx, insertPool, config(), o.jobs)
	}
	insertPool.Close()
	if err != nil {
		return f, err
	}
	if err := waitGone(ctx, admin, app+"-backlog"); err != nil {
		return f, err
	}

	pool, tracer, err := openPool(ctx, o.databaseURL, app)
	if err != nil {
		return f, err
	}
	defer pool.Close()
	client, err := river.NewClient(riverpgxv5.New(pool), config())
	if err != nil {
		return f, err
	}
	events, cancel := client.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: o.jobs + 1,
		Kinds:    []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled},
	})
	defer cancel()
	rows0, err := rowCounts(ctx, admin, schema)
	if err != nil {
		return f, err
	}
	cpu, err := startPGCPU(ctx, admin, app)
	if err != nil {
		return f, err
	}
	defer cpu.stop()
	trips0, stmts0 := tracer.trips.Load(), tracer.stmts.Load()
	goCPU0 := processCPU()
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return f, err
	}
	stopped := false
	defer func() {
		if !stopped {
			err = errors.Join(err, client.Stop(context.WithoutCancel(ctx)))
		}
	}()
	for n := 0; n < o.jobs; n++ {
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case ev := <-events:
			if ev == nil {
				return f, fmt.Errorf("river closed the subscription after %d of %d jobs", n, o.jobs)
			}
			if ev.Kind != river.EventKindJobCompleted {
				return f, fmt.Errorf("job %d: %s", ev.Job.ID, ev.Kind)
			}
		}
	}
	elapsed := time.Since(start)
	jobs := float64(o.jobs)
	f.GoCPU = float64(processCPU()-goCPU0) / float64(time.Microsecond) / jobs
	f.Trips = float64(tracer.trips.Load()-trips0) / jobs
	f.Statements = float64(tracer.stmts.Load()-stmts0) / jobs
	f.PerSec = jobs / elapsed.Seconds()
	backends, background, ok := cpu.stop()
	f.PGMeasured = ok
	f.PGCPU = float64(backends) / float64(time.Microsecond) / jobs
	f.PGBackground = float64(background) / float64(time.Microsecond) / jobs
	stopped = true
	if err := client.Stop(context.WithoutCancel(ctx)); err != nil {
		return f, err
	}
	pool.Close()
	if err := waitGone(ctx, admin, app); err != nil {
		return f, err
	}
	rows1, err := rowCounts(ctx, admin, schema)
	if err != nil {
		return f, err
	}
	// The events say the completions were committed; the table agrees.
	var completed int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM "+schema+".river_job WHERE state = 'completed'").Scan(&completed); err != nil {
		return f, err
	}
	if completed != o.jobs {
		return f, fmt.Errorf("river published %d completions, but %d jobs are completed in the table", o.jobs, completed)
	}
	f.Inserted = float64(rows1[0]-rows0[0]) / jobs
	f.Updated = float64(rows1[1]-rows0[1]) / jobs
	f.Deleted = float64(rows1[2]-rows0[2]) / jobs
	return f, nil
}

// insertJobs inserts n jobs with an insert-only client, 5,000 at a time as
// riverbench does.
func insertJobs(ctx context.Context, pool *pgxpool.Pool, config *river.Config, n int) error {
	config.Queues, config.Workers = nil, nil
	client, err := river.NewClient(riverpgxv5.New(pool), config)
	if err != nil {
		return err
	}
	for done := 0; done < n; {
		batch := make([]river.InsertManyParams, min(5000, n-done))
		for i := range batch {
			batch[i].Args = noopArgs{Num: done + i}
		}
		if _, err := client.InsertMany(ctx, batch); err != nil {
			return fmt.Errorf("insert jobs: %w", err)
		}
		done += len(batch)
	}
	return nil
}

// rowCounts sums the rows inserted, updated and deleted in the schema's
// tables, as the server's statistics have them.
func rowCounts(ctx context.Context, admin *pgxpool.Pool, schema string) ([3]int64, error) {
	var c [3]int64
	err := admin.QueryRow(ctx, `SELECT coalesce(sum(n_tup_ins), 0)::bigint, coalesce(sum(n_tup_upd), 0)::bigint, coalesce(sum(n_tup_del), 0)::bigint
		FROM pg_stat_user_tables WHERE schemaname = $1`, schema).Scan(&c[0], &c[1], &c[2])
	return c, err
}

// waitGone waits until no backend serves a connection named app: a
// backend flushes its statistics when it exits.
func waitGone(ctx context.Context, admin *pgxpool.Pool, app string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d backends of %s still open after 10s", n, app)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
