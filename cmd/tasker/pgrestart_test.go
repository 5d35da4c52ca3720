package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/template"
)

// TestClusterSurvivesDatabaseRestart restarts the PostgreSQL server while a
// serve and a worker process run tasks: the processes reconnect with
// backoff, log it, and finish every task with nothing lost or done twice.
//
// It restarts the shared local server, so it runs only when asked
// (TASKER_TEST_PG_RESTART=1), alone: .ci/run does so after the other tests.
func TestClusterSurvivesDatabaseRestart(t *testing.T) {
	if os.Getenv("TASKER_TEST_PG_RESTART") != "1" {
		t.Skip("restarts the local PostgreSQL server: set TASKER_TEST_PG_RESTART=1 and run it alone (.ci/run does)")
	}
	_, url := pgtest.Schema(t)
	bin := buildBinary(t, t.TempDir())
	if out, err := exec.Command(bin, "migrate", "--database-url", url).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	serve := start(t, bin, url, "serve", "--claim-timeout", "2s", "-v")
	worker := start(t, bin, url, "worker", "--namespace", "demo", "--claim-timeout", "2s", "-v")

	tpl, err := template.Parse("chain.yaml", []byte(`name: chain
namespace: demo
version: 1.0.0
defaults:
  timeout: 2s
  retry: {max_attempts: 5, backoff: linear, base: 200ms, cap: 2s}
steps:
  - {name: a, handler: demo.sleep}
  - {name: b, handler: demo.sleep, depends_on: [a]}
  - {name: c, handler: demo.sleep, depends_on: [b]}
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eng, err := tasker.Open(ctx, tasker.Config{DatabaseURL: url, Templates: []*template.Template{tpl}, DisableOrchestration: true, DisableWorkers: true,
		DefaultIdentityStrategy: tasker.IdentityAlwaysUnique}) // the same task many times
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Stop(ctx)
	const tasks = 30
	var ids []uuid.UUID
	for range tasks {
		task, err := eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "demo", Name: "chain", Context: map[string]int{"sleep_ms": 150}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, task.ID)
	}
	time.Sleep(400 * time.Millisecond)
	cluster := strings.TrimSpace(mustOutput(t, "sh", "-c", "ls /etc/postgresql | head -1"))
	if out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart").CombinedOutput(); err != nil {
		t.Fatalf("restart postgres: %v\n%s", err, out)
	}

	waitFinished(t, eng, tasks, 3*time.Minute, serve, worker)
	serve.stop(t)
	worker.stop(t)
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
	logs := serve.logs.String() + worker.logs.String()
	if !strings.Contains(logs, "backoff") && !strings.Contains(logs, "reconnect") {
		t.Errorf("no process logged a reconnect or a backoff:\n%s", logs)
	}
}

func mustOutput(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
