package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/template"
)

// The fault tests run real processes on PostgreSQL and break them: handlers
// that sleep past the lease, skewed clocks, dropped connections, SIGKILL
// and SIGSTOP. Each checks the same invariants (faultCluster.check), from
// the transition log and from the handlers' own trace of their runs
// (--demo-trace), which uses the host's wall clock whatever the engines'
// clocks say. They run in parallel with each other.

// faultTemplates are the templates of the fault tests, namespace "fault".
const faultTemplates = `name: diamond
namespace: fault
version: 1.0.0
defaults:
  timeout: 30s
  retry: {max_attempts: 3, backoff: none}
steps:
  - {name: a, handler: demo.sleep}
  - {name: b, handler: demo.sleep, depends_on: [a]}
  - {name: c, handler: demo.sleep, depends_on: [a]}
  - {name: d, handler: demo.sleep, depends_on: [b, c]}
---
name: single
namespace: fault
version: 1.0.0
defaults:
  timeout: 30s
  retry: {max_attempts: 3, backoff: none}
steps:
  - {name: only, handler: demo.sleep}
`

var faultBinary struct {
	once sync.Once
	path string
	err  error
}

// TestMain removes the fault tests' binary once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if faultBinary.path != "" {
		os.RemoveAll(filepath.Dir(faultBinary.path))
	}
	os.Exit(code)
}

// faultBin builds the binary once for all the fault tests, which run in
// parallel: into a directory of its own, not a test's TempDir, which would
// go when that test ends while the others still use the binary (TestMain
// removes it).
func faultBin(t *testing.T) string {
	t.Helper()
	faultBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "tasker-fault-")
		if err != nil {
			faultBinary.err = err
			return
		}
		faultBinary.path = filepath.Join(dir, "tasker")
		if out, err := exec.Command("go", "build", "-o", faultBinary.path, ".").CombinedOutput(); err != nil {
			faultBinary.err = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if faultBinary.err != nil {
		t.Fatal(faultBinary.err)
	}
	return faultBinary.path
}

// faultCluster is a schema, the processes the test started on it, and a
// client engine that creates tasks and reads the log.
type faultCluster struct {
	t      *testing.T
	bin    string
	url    string // the processes' URL, without application_name
	app    string // prefix of the application_name of the processes' pooled connections
	dir    string
	eng    *tasker.Engine
	procs  []*process
	traces []string
}

func newFaultCluster(t *testing.T) *faultCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	schema, url := pgtest.Schema(t)
	c := &faultCluster{t: t, bin: faultBin(t), url: url, dir: t.TempDir(), app: "tasker-" + schema}
	if out, err := exec.Command(c.bin, "migrate", "--database-url", url).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	var tpls []*template.Template
	for i, doc := range strings.Split(faultTemplates, "---\n") {
		tpl, err := template.Parse(fmt.Sprintf("fault%d.yaml", i), []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		tpls = append(tpls, tpl)
	}
	eng, err := tasker.Open(context.Background(), tasker.Config{DatabaseURL: url, Templates: tpls, DisableOrchestration: true, DisableWorkers: true,
		DefaultIdentityStrategy: tasker.IdentityAlwaysUnique}) // the same task many times
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Stop(context.Background()) })
	c.eng = eng
	return c
}

// appName is the application_name of the pooled connections of the
// process started next.
func (c *faultCluster) appName() string { return fmt.Sprintf("%s-%d", c.app, len(c.procs)) }

func (c *faultCluster) procURL() string { return c.url + "&application_name=" + c.appName() }

func (c *faultCluster) serve(args ...string) *process {
	p := start(c.t, c.bin, c.procURL(), append([]string{"serve"}, args...)...)
	p.app = c.appName()
	c.procs = append(c.procs, p)
	return p
}

// worker starts a worker of namespace fault that traces its handlers' runs.
func (c *faultCluster) worker(args ...string) *process {
	trace := filepath.Join(c.dir, fmt.Sprintf("trace-%d", len(c.traces)))
	c.traces = append(c.traces, trace)
	p := start(c.t, c.bin, c.procURL(), append([]string{"worker", "--namespace", "fault", "--demo-trace", trace}, args...)...)
	p.app = c.appName()
	c.procs = append(c.procs, p)
	return p
}

func (c *faultCluster) create(name string, sleepMS int) uuid.UUID {
	c.t.Helper()
	task, err := c.eng.CreateTask(context.Background(), tasker.CreateTaskParams{Namespace: "fault", Name: name, Context: map[string]int{"sleep_ms": sleepMS}})
	if err != nil {
		c.t.Fatal(err)
	}
	return task.ID
}

// finish waits for the n newest tasks to end, then stops the processes
// still running.
func (c *faultCluster) finish(n int, timeout time.Duration) {
	c.t.Helper()
	waitFinished(c.t, c.eng, n, timeout, c.procs...)
	for _, p := range c.procs {
		if p.cmd.ProcessState == nil {
			p.stop(c.t)
		}
	}
}

// pauseInTx stops p (SIGSTOP) while one of its connections is inside a
// transaction, as a GC pause or a frozen VM can: it waits for a
// transaction of p to be open, stops p, and checks, once the statements
// already sent have run, that the transaction is still open (p can no
// longer end it). It tries for up to 20 s, and reports whether it stopped p
// inside a transaction; otherwise p is stopped anyway.
func (c *faultCluster) pauseInTx(p *process) bool {
	c.t.Helper()
	conn, err := pgx.Connect(context.Background(), pgtest.URL(c.t))
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	inTx := func() bool {
		var n int
		err := conn.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL`, p.app).Scan(&n)
		if err != nil {
			c.t.Fatal(err)
		}
		return n > 0
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if !inTx() {
			continue
		}
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			c.t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // what was sent runs; a COMMIT sent ends it
		if inTx() {
			return true
		}
		p.cmd.Process.Signal(syscall.SIGCONT)
	}
	p.cmd.Process.Signal(syscall.SIGSTOP)
	return false
}

// pid is the process id in a processor's name, "worker@host:1234".
func pid(processor string) int {
	n, _ := strconv.Atoi(processor[strings.LastIndexByte(processor, ':')+1:])
	return n
}

// run is one run of a handler, as the worker traced it.
type run struct {
	step       uuid.UUID
	attempt    int
	pid        int
	start, end time.Time
	ok         bool
}

func (c *faultCluster) runs() map[uuid.UUID][]run {
	c.t.Helper()
	runs := map[uuid.UUID][]run{}
	for _, path := range c.traces {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			c.t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r run
			var step, res string
			var start, end int64
			if _, err := fmt.Sscan(sc.Text(), &step, &r.attempt, &r.pid, &start, &end, &res); err != nil {
				c.t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
			}
			r.step, r.start, r.end, r.ok = uuid.MustParse(step), time.Unix(0, start), time.Unix(0, end), res == "ok"
			runs[r.step] = append(runs[r.step], r)
		}
		f.Close()
	}
	return runs
}

// check asserts the invariants over tasks ids: every task complete, each
// step completed once; in the transition log, a step's attempts (from its
// move into in_progress to its next move out of it) follow each other and
// number at most max_attempts; in the handlers' trace, no two runs of a
// step overlap in time, unless overlapOK says that pair may (a run frozen
// by SIGSTOP), and the runs of a step number at most max_attempts. It
// returns the step transitions of every task, for the test's own checks.
func (c *faultCluster) check(ids []uuid.UUID, overlapOK func(a, b run) bool) []*tasker.Transition {
	t := c.t
	t.Helper()
	runs := c.runs()
	var all []*tasker.Transition
	eachStep(t, c.eng, ids, func(id uuid.UUID, s *tasker.Step, log []*tasker.Transition) {
		all = append(all, log...)
		completes, starts, open := 0, 0, false
		for _, tr := range log {
			if tr.Event == "complete" {
				completes++
			}
			if tr.From == "in_progress" {
				if !open {
					t.Errorf("task %s step %s: %s out of in_progress with no attempt open", id, s.Name, tr.Event)
				}
				open = false
			}
			if tr.To == "in_progress" {
				if open {
					t.Errorf("task %s step %s: started by %s while an attempt was open", id, s.Name, tr.Processor)
				}
				open = true
				starts++
			}
		}
		if completes != 1 {
			t.Errorf("task %s step %s completed %d times", id, s.Name, completes)
		}
		if max := s.Retry.MaxAttempts; starts > max || s.Attempts > max {
			t.Errorf("task %s step %s: %d attempts started, attempts %d, max_attempts %d", id, s.Name, starts, s.Attempts, max)
		}
		rs := runs[s.ID]
		if len(rs) > s.Retry.MaxAttempts {
			t.Errorf("task %s step %s: the handler ran %d times, max_attempts %d", id, s.Name, len(rs), s.Retry.MaxAttempts)
		}
		slices.SortFunc(rs, func(a, b run) int { return a.start.Compare(b.start) })
		for i := 1; i < len(rs); i++ {
			for _, prev := range rs[:i] {
				if rs[i].start.Before(prev.end) && (overlapOK == nil || !overlapOK(prev, rs[i])) {
					t.Errorf("task %s step %s: run of attempt %d (pid %d, %v–%v) overlaps run of attempt %d (pid %d, %v–%v)",
						id, s.Name, rs[i].attempt, rs[i].pid, rs[i].start.Format("15:04:05.000"), rs[i].end.Format("15:04:05.000"),
						prev.attempt, prev.pid, prev.start.Format("15:04:05.000"), prev.end.Format("15:04:05.000"))
				}
			}
		}
	})
	return all
}

// Handlers that run past the claim timeout keep their claim (a heartbeat
// renews the lease): each step runs once.
func TestFaultHandlersOutliveTheLease(t *testing.T) {
	t.Parallel()
	c := newFaultCluster(t)
	lease := []string{"--claim-timeout", "2s"}
	c.serve(lease...)
	c.worker(lease...)
	c.worker(lease...)
	var ids []uuid.UUID
	for range 6 {
		ids = append(ids, c.create("single", 5000))
	}
	c.finish(len(ids), 90*time.Second)
	runs := c.runs()
	c.check(ids, nil)
	eachStep(t, c.eng, ids, func(id uuid.UUID, s *tasker.Step, _ []*tasker.Transition) {
		if n := len(runs[s.ID]); n != 1 || s.Attempts != 1 {
			t.Errorf("task %s: the 5s step under a 2s lease ran %d times, %d attempts; want once", id, n, s.Attempts)
		}
	})
}

// Two workers whose clocks are 30 s behind and 30 s ahead, and an
// orchestrator 30 s behind: claims are decided on the database's clock,
// so none takes a step another holds.
func TestFaultSkewedClocks(t *testing.T) {
	t.Parallel()
	c := newFaultCluster(t)
	lease := []string{"--claim-timeout", "3s"}
	// The worker behind does most of the work; the one ahead has few
	// slots, and would take what the other holds if its clock decided.
	c.serve(append(lease, "--clock-offset", "-30s")...)
	c.worker(append(lease, "--clock-offset", "-30s")...)
	c.worker(append(lease, "--clock-offset", "30s", "--concurrency", "2")...)
	var ids []uuid.UUID
	// Steps long enough that many are in flight at any time: a worker
	// that trusted its own clock would take them from the other.
	for i := range 30 {
		ids = append(ids, c.create("diamond", 800+(i%3)*300))
	}
	c.finish(len(ids), 2*time.Minute)
	c.check(ids, nil)
	// No process died or paused: no claim may lapse, so each step runs in
	// one attempt. A worker that trusted its clock 30 s ahead would take
	// the other's steps in flight, and record their attempts as lost.
	runs := c.runs()
	eachStep(t, c.eng, ids, func(id uuid.UUID, s *tasker.Step, _ []*tasker.Transition) {
		if n := len(runs[s.ID]); s.Attempts != 1 || n != 1 {
			t.Errorf("task %s step %s: %d attempts, %d runs, want 1 (failure %v)", id, s.Name, s.Attempts, n, s.Failure)
		}
	})
}

// The engine's connections are terminated (pg_terminate_backend) several
// times during a run: no task is lost and the invariants hold.
func TestFaultDatabaseBlips(t *testing.T) {
	t.Parallel()
	c := newFaultCluster(t)
	lease := []string{"--claim-timeout", "3s"}
	c.serve(lease...)
	c.serve(lease...)
	c.worker(lease...)
	c.worker(lease...)
	var ids []uuid.UUID
	for i := range 60 {
		ids = append(ids, c.create("diamond", 100+(i%3)*100))
	}
	base := pgtest.URL(t)
	killed := 0
	for range 4 {
		time.Sleep(time.Second)
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = conn.QueryRow(context.Background(),
			`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE $1 || '-%'`, c.app).Scan(&n)
		conn.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		killed += n
	}
	if killed == 0 {
		t.Fatal("no connection of the processes was terminated: the test tests nothing")
	}
	c.finish(len(ids), 2*time.Minute)
	c.check(ids, nil)
	if all, err := c.eng.Tasks(context.Background(), 2*len(ids)); err != nil || len(all) != len(ids) {
		t.Errorf("%d tasks in the store (%v), want %d", len(all), err, len(ids))
	}
	t.Logf("%d connections terminated", killed)
}

// A worker is SIGKILLed while it runs steps: they run elsewhere within
// twice the lease.
func TestFaultKilledWorkerStepsComeBackWithinTwoLeases(t *testing.T) {
	t.Parallel()
	c := newFaultCluster(t)
	const lease = 3 * time.Second
	args := []string{"--claim-timeout", lease.String()}
	c.serve(args...)
	doomed := c.worker(args...)
	var ids []uuid.UUID
	for range 4 {
		ids = append(ids, c.create("single", 8000))
	}
	// Wait until the doomed worker (the only one yet) runs every step.
	doomedName := fmt.Sprintf(":%d", doomed.cmd.Process.Pid)
	held := map[uuid.UUID]uuid.UUID{} // step → task
	deadline := time.Now().Add(60 * time.Second)
	for len(held) < len(ids) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker started %d of %d steps in 60s\n%s", len(held), len(ids), doomed.logs)
		}
		time.Sleep(100 * time.Millisecond)
		for _, id := range ids {
			log, err := c.eng.Transitions(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			for _, tr := range log {
				if tr.Event == "start" && strings.HasSuffix(tr.Processor, doomedName) {
					held[tr.StepID] = id
				}
			}
		}
	}
	c.worker(args...)
	doomed.cmd.Process.Signal(syscall.SIGKILL)
	doomed.cmd.Wait()
	killedAt := time.Now()

	c.finish(len(ids), 2*time.Minute)
	c.check(ids, nil)
	for step, id := range held {
		log, err := c.eng.Transitions(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		var restart time.Time
		for _, tr := range log {
			if tr.StepID == step && tr.Event == "start" && !strings.HasSuffix(tr.Processor, doomedName) {
				restart = tr.At
				break
			}
		}
		if restart.IsZero() {
			t.Errorf("task %s: the killed worker's step never started elsewhere", id)
		} else if d := restart.Sub(killedAt); d > 2*lease {
			t.Errorf("task %s: the killed worker's step started elsewhere %v after the kill, want within 2 leases (%v)", id, d.Round(time.Millisecond), 2*lease)
		}
	}
}

// A worker and an orchestrator are SIGSTOPped for 45 s in the middle of a
// run, as a long GC pause or a frozen VM would: the other worker and the
// other orchestrator keep completing steps during the pause (the paused
// processes' transactions end at the session timeouts, and their claims
// are leases that expire), and once they resume the invariants hold.
func TestFaultPausedProcesses(t *testing.T) {
	t.Parallel()
	c := newFaultCluster(t)
	const pause = 45 * time.Second
	args := []string{"--claim-timeout", "3s"}
	pausedServe := c.serve(args...)
	c.serve(args...)
	pausedWorker := c.worker(args...)
	c.worker(args...)

	// Tasks keep coming: before, during and after the pause.
	var ids []uuid.UUID
	var pausedAt time.Time
	next := 0
	feed := func(until time.Time) {
		for time.Now().Before(until) {
			ids = append(ids, c.create("diamond", 100+(next%3)*100))
			next++
			time.Sleep(150 * time.Millisecond)
		}
	}
	feed(time.Now().Add(4 * time.Second))
	// Each is stopped in the middle of a transaction, with rows locked.
	// The pause counts from when both are stopped: catching the second
	// inside a transaction may take a while, and the windows below ask
	// for progress while both are stopped and tasks keep coming.
	for _, p := range []*process{pausedWorker, pausedServe} {
		if !c.pauseInTx(p) {
			t.Logf("%v could not be stopped inside a transaction in 20s: stopped outside one", p.cmd.Args)
		}
	}
	pausedAt = time.Now()
	feed(pausedAt.Add(15 * time.Second))
	// Every task so far finishes before the paused processes resume,
	// those whose rows or messages they held included: their
	// transactions ended at the session timeouts, their claims at the
	// lease.
	for {
		left, err := c.eng.Tasks(context.Background(), len(ids), unfinished...)
		if err == nil && len(left) == 0 {
			break
		}
		if time.Now().After(pausedAt.Add(pause - time.Second)) {
			t.Errorf("%d of %d tasks still unfinished %v into the pause (err %v): the paused processes held them",
				len(left), len(ids), pause-time.Second, err)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Until(pausedAt.Add(pause)))
	for _, p := range []*process{pausedServe, pausedWorker} {
		if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	resumedAt := time.Now()
	feed(time.Now().Add(2 * time.Second))

	c.finish(len(ids), 2*time.Minute)
	// A run of the paused worker that spans the pause was frozen, not
	// running: another may have run the step meanwhile. Its outcome is not
	// accepted (the attempt lost its claim); check verifies that the step
	// completed once.
	frozen := func(r run) bool {
		return r.pid == pausedWorker.cmd.Process.Pid && r.start.Before(resumedAt) && r.end.After(pausedAt)
	}
	log := c.check(ids, func(a, b run) bool { return frozen(a) || frozen(b) })

	// The others kept going: steps completed (orchestration) and succeeded
	// (the other worker) in the first seconds of the pause, past the
	// session timeouts, and until its end.
	window := func(from, to time.Duration, event string) int {
		n := 0
		for _, tr := range log {
			if tr.Event == event && !tr.At.Before(pausedAt.Add(from)) && tr.At.Before(pausedAt.Add(to)) {
				n++
			}
		}
		return n
	}
	for _, w := range []struct{ from, to time.Duration }{{0, 10 * time.Second}, {10 * time.Second, 20 * time.Second}} {
		for _, ev := range []string{"succeed", "complete"} {
			if n := window(w.from, w.to, ev); n == 0 {
				t.Errorf("no step %s between %v and %v into the pause: the paused processes stalled the others", ev, w.from, w.to)
			}
		}
	}
	t.Logf("%d tasks; during the first 10s of the pause: %d steps succeeded, %d completed", len(ids), window(0, 10*time.Second, "succeed"), window(0, 10*time.Second, "complete"))
}
