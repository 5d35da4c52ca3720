package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
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
	bin, url := migratedDatabase(t)
	serve := start(t, bin, url, "serve", "--claim-timeout", "2s", "-v")
	worker := start(t, bin, url, "worker", "--namespace", "demo", "--claim-timeout", "2s", "-v")

	tpl := sleepChain(t, 3, "  timeout: 2s\n  retry: {max_attempts: 5, backoff: linear, base: 200ms, cap: 2s}\n")
	eng := clientEngine(t, tasker.Config{}, url, tpl)
	const tasks = 30
	ids := createChains(t, eng, tasks, 150)
	time.Sleep(400 * time.Millisecond)
	cluster := strings.TrimSpace(mustOutput(t, "sh", "-c", "ls /etc/postgresql | head -1"))
	if out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart").CombinedOutput(); err != nil {
		t.Fatalf("restart postgres: %v\n%s", err, out)
	}

	waitFinished(t, eng, tasks, 3*time.Minute, serve, worker)
	serve.stop(t)
	worker.stop(t)
	completedOnce(t, eng, ids)
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
