package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/internal/pgdb"
	storepg "github.com/tasker-go/tasker/store/postgres"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// BurnDownOptions configures a burn-down: a backlog of tasks created first
// by an engine without workers, then drained by a fresh engine (workers and
// orchestration on) that has seen none of them.
type BurnDownOptions struct {
	Backend
	// Shape is the template's name. Default "single_workflow".
	Shape string
	// Tasks is the size of the backlog. Default 20,000.
	Tasks int
	// WorkerConcurrency of the draining engine; zero: the engine's default.
	WorkerConcurrency int
	// CPUProfile, if set, is a file that receives a CPU profile of this
	// process over the drain (go tool pprof reads it).
	CPUProfile string
	Logger     *slog.Logger
}

// BurnDownReport is the figures of a burn-down. Per-task figures are over
// the drain only: from the draining engine's Start to the last task's
// completion, as committed (the engine publishes a completion after its
// transaction commits). The PostgreSQL figures are zero on SQLite.
type BurnDownReport struct {
	Backend       string  `json:"backend"` // "sqlite" or "postgres"
	Shape         string  `json:"shape"`
	Steps         int     `json:"steps"`
	Tasks         int     `json:"tasks"`
	CreateSeconds float64 `json:"create_seconds"` // creating the backlog
	DrainSeconds  float64 `json:"drain_seconds"`
	TasksPerSec   float64 `json:"tasks_per_sec"`
	StepsPerSec   float64 `json:"steps_per_sec"`
	// CPU per task in microseconds: this process (user and system), and
	// PostgreSQL's server processes on this machine: the backends of the
	// draining engine's connections, and the server's background processes
	// (WAL writer, checkpointer, autovacuum...), which serve every client
	// of the server. PGCPUMeasured is false when the server's processes
	// cannot be read (a server on another machine).
	GoCPUPerTaskMicros float64 `json:"go_cpu_per_task_us"`
	// GoAllocsPerTask is the heap objects this process allocated per task
	// (runtime.MemStats.Mallocs over the drain; with a CPU profile, the
	// profiler's own count too).
	GoAllocsPerTask              float64 `json:"go_allocs_per_task"`
	PGCPUMeasured                bool    `json:"pg_cpu_measured"`
	PGBackendCPUPerTaskMicros    float64 `json:"pg_backend_cpu_per_task_us"`
	PGBackgroundCPUPerTaskMicros float64 `json:"pg_background_cpu_per_task_us"`
	// Round trips and statements the draining engine sent, per task.
	TripsPerTask      float64 `json:"round_trips_per_task"`
	StatementsPerTask float64 `json:"statements_per_task"`
	// Rows written per task in the run's schema (pg_stat_user_tables).
	RowsInsertedPerTask float64 `json:"rows_inserted_per_task"`
	RowsUpdatedPerTask  float64 `json:"rows_updated_per_task"`
	RowsDeletedPerTask  float64 `json:"rows_deleted_per_task"`
}

// PGCPUPerTaskMicros is the PostgreSQL server's CPU per task, backends and
// background processes together.
func (r *BurnDownReport) PGCPUPerTaskMicros() float64 {
	return r.PGBackendCPUPerTaskMicros + r.PGBackgroundCPUPerTaskMicros
}

// BurnDown creates a backlog of o.Tasks tasks and measures its drain by a
// fresh engine.
func BurnDown(ctx context.Context, o BurnDownOptions) (r *BurnDownReport, err error) {
	if o.Shape == "" {
		o.Shape = "single_workflow"
	}
	if o.Tasks == 0 {
		o.Tasks = 20000
	}
	if o.Tasks < 1 || o.WorkerConcurrency < 0 {
		return nil, fmt.Errorf("burn-down: the backlog must hold at least one task (got %d) and the worker concurrency must not be negative (got %d)", o.Tasks, o.WorkerConcurrency)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	t, err := shapeNamed(o.Shape)
	if err != nil {
		return nil, err
	}
	r = &BurnDownReport{Backend: "sqlite", Shape: t.Name, Steps: len(t.Steps), Tasks: o.Tasks}
	be := burnBackend{path: filepath.Join(o.Dir, fmt.Sprintf("burndown-%d.db", time.Now().UnixNano()))}
	if o.DatabaseURL != "" {
		r.Backend = "postgres"
		if be.pg, err = newSchema(ctx, o.DatabaseURL, o.Logger); err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, be.pg.drop()) }()
	}

	// The backlog, by an engine without workers.
	eng, closeStore, err := be.open(ctx, o, t, "backlog", true)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	err = createBacklog(ctx, eng, t, o.Tasks)
	err = errors.Join(err, eng.Stop(context.WithoutCancel(ctx)), closeStore())
	if err != nil {
		return nil, fmt.Errorf("burn-down: create the backlog: %w", err)
	}
	r.CreateSeconds = time.Since(start).Seconds()

	// The drain, by a fresh engine.
	eng, closeStore, err = be.open(ctx, o, t, "drain", false)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			err = errors.Join(err, eng.Stop(context.WithoutCancel(ctx)), closeStore())
		}
	}()
	// Room for every completion: none is dropped.
	var terminal []string
	for _, st := range taskertype.TaskStates {
		if st.Terminal() {
			terminal = append(terminal, string(st))
		}
	}
	sub, err := eng.Subscribe(tasker.EventFilter{Kinds: []string{tasker.EventTaskTransition}, To: terminal}, o.Tasks+1)
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	var rows0 rowCounts
	var cpu *pgCPU
	if be.pg != nil {
		if err := be.pg.waitGone(ctx, be.pg.app+"-backlog"); err != nil {
			return nil, err
		}
		if rows0, err = be.pg.rows(ctx); err != nil {
			return nil, err
		}
		if cpu, err = startPGCPU(ctx, be.pg.admin, be.pg.app+"-drain"); err != nil {
			return nil, err
		}
		defer cpu.stop()
	}
	trips0, stmts0 := be.counts()
	goCPU0, mallocs0 := ProcessCPU(), mallocs()
	stopProfile, err := startCPUProfile(o.CPUProfile, "burn-down")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, stopProfile()) }()
	start = time.Now()
	if err := eng.Start(ctx); err != nil {
		return nil, err
	}
	// A drain that stops (an engine bug, a lost server) ends the run with
	// an error rather than hanging it.
	stall := time.NewTimer(stallTimeout)
	defer stall.Stop()
	for n := 0; n < o.Tasks; n++ {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("burn-down: %d of %d tasks drained: %w", n, o.Tasks, ctx.Err())
		case <-stall.C:
			return nil, fmt.Errorf("burn-down: %d of %d tasks drained, and none completed in the last %s", n, o.Tasks, stallTimeout)
		case ev := <-sub.C():
			stall.Reset(stallTimeout)
			if ev.To != string(taskertype.TaskComplete) {
				return nil, fmt.Errorf("burn-down: task %s ended %s%s", ev.TaskID, ev.To, stepFailures(ctx, eng, ev.TaskID))
			}
		}
	}
	elapsed := time.Since(start)
	goCPU, allocs := ProcessCPU()-goCPU0, mallocs()-mallocs0
	if err := stopProfile(); err != nil {
		return nil, fmt.Errorf("burn-down: the CPU profile: %w", err)
	}
	trips1, stmts1 := be.counts()
	tasks := float64(o.Tasks)
	r.DrainSeconds = elapsed.Seconds()
	r.TasksPerSec = tasks / elapsed.Seconds()
	r.StepsPerSec = r.TasksPerSec * float64(r.Steps)
	r.GoCPUPerTaskMicros = micros(goCPU) / tasks
	r.GoAllocsPerTask = float64(allocs) / tasks
	if be.pg == nil {
		return r, nil
	}
	backends, background, ok := cpu.stop()
	r.PGCPUMeasured = ok
	r.PGBackendCPUPerTaskMicros = micros(backends) / tasks
	r.PGBackgroundCPUPerTaskMicros = micros(background) / tasks
	r.TripsPerTask = float64(trips1-trips0) / tasks
	r.StatementsPerTask = float64(stmts1-stmts0) / tasks
	// A backend flushes its table statistics when it exits: close the pool
	// and wait for its backends to be gone before reading them.
	stopped = true
	if err := errors.Join(eng.Stop(context.WithoutCancel(ctx)), closeStore()); err != nil {
		return nil, err
	}
	if err := be.pg.waitGone(ctx, be.pg.app+"-drain"); err != nil {
		return nil, err
	}
	rows1, err := be.pg.rows(ctx)
	if err != nil {
		return nil, err
	}
	r.RowsInsertedPerTask = float64(rows1.ins-rows0.ins) / tasks
	r.RowsUpdatedPerTask = float64(rows1.upd-rows0.upd) / tasks
	r.RowsDeletedPerTask = float64(rows1.del-rows0.del) / tasks
	return r, nil
}

// stepFailures describes the failed steps of a task, for an error.
func stepFailures(ctx context.Context, eng *tasker.Engine, id uuid.UUID) string {
	info, err := eng.Task(ctx, id)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, s := range info.Steps {
		if s.Failure != nil {
			fmt.Fprintf(&b, ": step %s failed (%s): %s", s.Name, s.Failure.Kind, s.Failure.Message)
		}
	}
	return b.String()
}

// stallTimeout is how long a drain may go without a completion.
const stallTimeout = time.Minute

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func shapeNamed(name string) (*template.Template, error) {
	shapes, err := Shapes()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range shapes {
		if s.Name == name {
			return s, nil
		}
		names = append(names, strings.TrimSuffix(s.Name, "_workflow"))
	}
	return nil, fmt.Errorf("no shape %q: choose among %s", strings.TrimSuffix(name, "_workflow"), strings.Join(names, ", "))
}

// createBacklog creates n tasks of t, 32 at a time.
func createBacklog(ctx context.Context, eng *tasker.Engine, t *template.Template, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 32)
	for i := range errs {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				_, err := eng.CreateTask(ctx, taskParams(t))
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// burnBackend is where a burn-down keeps its state: a SQLite file, or a
// PostgreSQL schema both engines open in turn.
type burnBackend struct {
	path string
	pg   *schema
	st   *storepg.Store // the open engine's store
}

// open opens an engine on the backend; role names its connections. The
// returned function closes the engine's PostgreSQL store (the engine closes
// a SQLite file itself).
func (b *burnBackend) open(ctx context.Context, o BurnDownOptions, t *template.Template, role string, backlog bool) (*tasker.Engine, func() error, error) {
	cfg := tasker.Config{
		Templates: []*template.Template{t}, Logger: o.Logger, DatabasePath: b.path,
		DisableWorkers: backlog, MaxQueuedSteps: -1,
	}
	if !backlog {
		cfg.WorkerConcurrency = o.WorkerConcurrency
		cfg.ReportGroups = o.ReportGroups
	}
	closeStore := func() error { return nil }
	b.st = nil
	if b.pg != nil {
		u, err := withParam(b.pg.url, "application_name", b.pg.app+"-"+role)
		if err != nil {
			return nil, nil, err
		}
		st, err := storepg.Open(ctx, storepg.Config{URL: u, Logger: o.Logger, AutoMigrate: true})
		if err != nil {
			return nil, nil, err
		}
		b.st = st
		cfg.Store, cfg.Queue = st, st.Queue()
		closeStore = st.Close
	}
	eng, err := tasker.Open(ctx, cfg)
	if err == nil {
		err = eng.RegisterHandler(NoopHandler, demo.Handlers()[NoopHandler])
		if err == nil && backlog {
			err = eng.Start(ctx)
		}
		if err != nil {
			err = errors.Join(err, eng.Stop(ctx))
		}
	}
	if err != nil {
		return nil, nil, errors.Join(err, closeStore())
	}
	return eng, closeStore, nil
}

// counts returns the round trips and statements of the open engine's
// store so far; zero on SQLite.
func (b *burnBackend) counts() (trips, stmts uint64) {
	if b.st == nil {
		return 0, 0
	}
	return b.st.RoundTrips(), b.st.DB().Statements()
}

// withParam sets a connection parameter of a URL or of key=value pairs.
func withParam(dbURL, key, value string) (string, error) {
	if !strings.Contains(dbURL, "://") {
		return dbURL + " " + key + "=" + value, nil
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", fmt.Errorf("database URL: %w", err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// schema is a PostgreSQL schema made for one run, with an administrative
// connection of its own.
type schema struct {
	name  string
	url   string // the database URL with the schema as search path
	app   string // the application_name prefix of the run's connections
	admin *pgdb.DB
}

func newSchema(ctx context.Context, dbURL string, logger *slog.Logger) (*schema, error) {
	admin, err := pgdb.Open(ctx, pgdb.Options{URL: dbURL, Logger: logger, MaxConns: 1})
	if err != nil {
		return nil, err
	}
	id := time.Now().UnixNano()
	s := &schema{name: fmt.Sprintf("tasker_bench_%d", id), app: fmt.Sprintf("tasker-bench-%d", id), admin: admin}
	if _, err := admin.Pool.Exec(ctx, "CREATE SCHEMA "+s.name); err != nil {
		admin.Close()
		return nil, fmt.Errorf("create the bench schema: %w", err)
	}
	if s.url, err = pgdb.WithSearchPath(dbURL, s.name); err != nil {
		return nil, errors.Join(err, s.drop())
	}
	return s, nil
}

// drop drops the schema and closes the administrative connection.
func (s *schema) drop() error {
	defer s.admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.admin.Pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+s.name+" CASCADE"); err != nil {
		return fmt.Errorf("drop the bench schema %s: %w", s.name, err)
	}
	return nil
}

type rowCounts struct{ ins, upd, del int64 }

// rows sums the rows inserted, updated and deleted in the schema's tables,
// as the server's statistics have them.
func (s *schema) rows(ctx context.Context) (rowCounts, error) {
	var c rowCounts
	err := s.admin.Pool.QueryRow(ctx, `SELECT coalesce(sum(n_tup_ins), 0)::bigint, coalesce(sum(n_tup_upd), 0)::bigint, coalesce(sum(n_tup_del), 0)::bigint
		FROM pg_stat_user_tables WHERE schemaname = $1`, s.name).Scan(&c.ins, &c.upd, &c.del)
	if err != nil {
		return c, fmt.Errorf("read the table statistics: %w", err)
	}
	return c, nil
}

// waitGone waits until no backend serves a connection named app: closed
// connections' backends exit, flushing their statistics, a moment after
// the client closes them.
func (s *schema) waitGone(ctx context.Context, app string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := s.admin.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			return fmt.Errorf("read pg_stat_activity: %w", err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("burn-down: %d backends of %s still open after 10s", n, app)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// mallocs is the count of heap objects this process has allocated (a
// read of the runtime's statistics, which stops the world briefly: twice a
// run).
func mallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}
