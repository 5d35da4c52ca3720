package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/examples"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/queue/rabbitmq"
	"github.com/tasker-go/tasker/queue/rabbitmq/amqptest"
	"github.com/tasker-go/tasker/template"
)

// buildBinary builds the tasker command into dir.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tasker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// process is a tasker process the test started.
type process struct {
	cmd  *exec.Cmd
	logs *strings.Builder
	app  string // application_name of its pooled connections, when the test set one
}

func start(t *testing.T, bin, url string, args ...string) *process {
	t.Helper()
	if len(args) > 0 && args[0] == "serve" {
		args = append(args, "--http=") // no API: the processes would share its port
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "TASKER_DATABASE_URL="+url)
	logs := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: logs}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// stop ends a process gracefully and checks that it exited cleanly.
func (p *process) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%v exited with %v\n%s", p.cmd.Args, err, p.logs)
		}
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		t.Errorf("%v did not stop\n%s", p.cmd.Args, p.logs)
	}
}

// unfinished are the task states that are not final.
var unfinished = []tasker.TaskState{"pending", "initializing", "enqueuing_steps", "steps_in_process",
	"evaluating_results", "waiting_for_dependencies", "waiting_for_retry", "blocked_by_failures"}

// waitFinished waits until none of the newest n tasks is unfinished, for at
// most timeout. A failed read is tried again (the database may be
// restarting); past the timeout the test fails with the processes' logs.
func waitFinished(t *testing.T, eng *tasker.Engine, n int, timeout time.Duration, procs ...*process) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left, err := eng.Tasks(context.Background(), n, unfinished...)
		if err == nil && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range procs {
				t.Logf("%v:\n%s", p.cmd.Args, p.logs)
			}
			t.Fatalf("%d tasks unfinished after %v (last error: %v)", len(left), timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// eachStep checks that every task of ids is complete, then calls check
// with each of its steps and that step's transitions, in order.
func eachStep(t *testing.T, eng *tasker.Engine, ids []uuid.UUID, check func(task uuid.UUID, s *tasker.Step, log []*tasker.Transition)) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		info, err := eng.Task(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if info.Task.State != "complete" {
			t.Errorf("task %s ended %s", id, info.Task.State)
			continue
		}
		log, err := eng.Transitions(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range info.Steps {
			var own []*tasker.Transition
			for _, tr := range log {
				if tr.StepID == s.ID {
					own = append(own, tr)
				}
			}
			check(id, s, own)
		}
	}
}

// TestClusterOfProcessesRunsEveryTaskOnce starts two orchestrators and two
// workers as real processes on one PostgreSQL database, creates 500 tasks of
// the four example shapes from this test process, and checks the transition
// log: every task completed, every step completed exactly once, and no step
// was worked by two processes at once.
func TestClusterOfProcessesRunsEveryTaskOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	runCluster(t, tasker.Config{})
}

// TestClusterOfProcessesRunsEveryTaskOnceOnRabbitMQ is the same cluster with
// its queues on RabbitMQ (under a prefix of the test's own), the store's
// messages through the outbox.
func TestClusterOfProcessesRunsEveryTaskOnceOnRabbitMQ(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	cfg := rabbitConfig(t)
	runCluster(t, cfg)
}

// rabbitConfig sets the environment of the processes the test starts to
// RabbitMQ messaging under a prefix of the test's own, and returns the
// client's Config fields that match; the broker names are deleted after.
func rabbitConfig(t *testing.T) tasker.Config {
	t.Helper()
	cfg := tasker.Config{Messaging: tasker.MessagingRabbitMQ, AMQPURL: amqptest.URL(t), AMQPPrefix: amqptest.Prefix()}
	t.Setenv("TASKER_MESSAGING", cfg.Messaging)
	t.Setenv("TASKER_AMQP_URL", cfg.AMQPURL)
	t.Setenv("TASKER_AMQP_PREFIX", cfg.AMQPPrefix)
	t.Cleanup(func() {
		// A queue handle that knows the names, to delete them.
		q := amqptest.Open(t, rabbitmq.Config{Prefix: cfg.AMQPPrefix})
		for _, name := range []string{queue.ResultsQueue, queue.TasksQueue, queue.StepQueue("demo"), "demo_domain_events"} {
			_ = q.QueueEnsure(context.Background(), name)
		}
	})
	return cfg
}

// runCluster runs the cluster test with the messaging of base.
func runCluster(t *testing.T, base tasker.Config) {
	bin, url := migratedDatabase(t)
	var procs []*process
	for range 2 {
		procs = append(procs, start(t, bin, url, "serve"))
		procs = append(procs, start(t, bin, url, "worker", "--namespace", "demo"))
	}

	// The client: creates the tasks, runs nothing.
	var tpls []*template.Template
	for _, name := range []string{"linear.yaml", "diamond.yaml", "dag.yaml", "tree.yaml"} {
		data, err := fs.ReadFile(examples.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		tpl, err := template.Parse(name, data)
		if err != nil {
			t.Fatal(err)
		}
		tpls = append(tpls, tpl)
	}
	ctx := context.Background()
	eng := clientEngine(t, base, url, tpls...)
	const tasks = 500
	ids := make([]uuid.UUID, 0, tasks)
	for i := range tasks {
		tpl := tpls[i%len(tpls)]
		task, err := eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: tpl.Namespace, Name: tpl.Name, Context: map[string]int{"value": i % 100}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, task.ID)
	}

	waitFinished(t, eng, tasks, 3*time.Minute, procs...)
	for _, p := range procs {
		p.stop(t)
	}

	processors := map[string]bool{}
	eachStep(t, eng, ids, func(id uuid.UUID, s *tasker.Step, log []*tasker.Transition) {
		completes := 0
		holder := "" // the processor running the step, between start and its outcome
		for _, tr := range log {
			processors[tr.Processor] = true
			switch tr.Event {
			case "complete":
				completes++
			case "start":
				if holder != "" {
					t.Errorf("task %s step %s: started by %s while %s still ran it", id, s.Name, tr.Processor, holder)
				}
				holder = tr.Processor
			case "succeed", "fail", "release":
				if holder != tr.Processor {
					t.Errorf("task %s step %s: %s by %s, but %s ran it", id, s.Name, tr.Event, tr.Processor, holder)
				}
				holder = ""
			}
		}
		if completes != 1 {
			t.Errorf("task %s step %s completed %d times", id, s.Name, completes)
		}
	})
	var workers, orchestrators int
	for p := range processors {
		switch {
		case strings.HasPrefix(p, "worker@"):
			workers++
		case strings.HasPrefix(p, "orchestrator@"):
			orchestrators++
		}
	}
	if workers != 2 || orchestrators < 2 {
		t.Errorf("work was done by %d workers and %d orchestrators (%v), want both of each", workers, orchestrators, processors)
	}
	fmt.Fprintf(os.Stderr, "cluster: %d tasks, processors %v\n", tasks, processors)
}

// migratedDatabase makes a schema of its own, builds the tasker command and
// migrates the schema with it: the binary and the schema's URL.
func migratedDatabase(t *testing.T) (bin, url string) {
	t.Helper()
	_, url = pgtest.Schema(t)
	bin = buildBinary(t, t.TempDir())
	if out, err := exec.Command(bin, "migrate", "--database-url", url).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	return bin, url
}

// clientEngine opens an engine on url that creates tasks and runs nothing
// (base's other settings kept); it stops when the test ends.
func clientEngine(t *testing.T, base tasker.Config, url string, tpls ...*template.Template) *tasker.Engine {
	t.Helper()
	client := base
	client.DatabaseURL, client.Templates, client.DisableOrchestration, client.DisableWorkers = url, tpls, true, true
	client.DefaultIdentityStrategy = tasker.IdentityAlwaysUnique // the same task many times
	eng, err := tasker.Open(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Stop(context.Background()) })
	return eng
}

// sleepChain is a template of steps demo.sleep, each after the one before,
// with the defaults given (YAML lines under "defaults:").
func sleepChain(t *testing.T, steps int, defaults string) *template.Template {
	t.Helper()
	var b strings.Builder
	b.WriteString("name: chain\nnamespace: demo\nversion: 1.0.0\ndefaults:\n" + defaults + "steps:\n")
	for i := range steps {
		name := string(rune('a' + i))
		if i == 0 {
			fmt.Fprintf(&b, "  - {name: %s, handler: demo.sleep}\n", name)
		} else {
			fmt.Fprintf(&b, "  - {name: %s, handler: demo.sleep, depends_on: [%c]}\n", name, rune('a'+i-1))
		}
	}
	tpl, err := template.Parse("chain.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// createChains creates n tasks of sleepChain's template whose steps sleep
// sleepMS each.
func createChains(t *testing.T, eng *tasker.Engine, n, sleepMS int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, 0, n)
	for range n {
		task, err := eng.CreateTask(context.Background(), tasker.CreateTaskParams{Namespace: "demo", Name: "chain", Context: map[string]int{"sleep_ms": sleepMS}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, task.ID)
	}
	return ids
}

// completedOnce checks that every step of the tasks completed exactly once.
func completedOnce(t *testing.T, eng *tasker.Engine, ids []uuid.UUID) {
	t.Helper()
	eachStep(t, eng, ids, func(id uuid.UUID, s *tasker.Step, log []*tasker.Transition) {
		n := 0
		for _, tr := range log {
			if tr.Event == "complete" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("task %s step %s completed %d times", id, s.Name, n)
		}
	})
}
