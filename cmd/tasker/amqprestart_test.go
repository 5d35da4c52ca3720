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

// TestClusterSurvivesBrokerRestart restarts RabbitMQ (rabbitmqctl stop_app,
// then start_app) while a serve and a worker process run tasks on it: the
// processes connect again with backoff, publish again what the broker had
// not confirmed, and finish every task with nothing lost and no step
// completed twice.
//
// It stops the shared local broker, so it runs only when asked
// (TASKER_TEST_AMQP_RESTART=1), alone: .ci/run does so after the other tests.
func TestClusterSurvivesBrokerRestart(t *testing.T) {
	if os.Getenv("TASKER_TEST_AMQP_RESTART") != "1" {
		t.Skip("restarts the local RabbitMQ: set TASKER_TEST_AMQP_RESTART=1 and run it alone (.ci/run does)")
	}
	base := rabbitConfig(t)
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
	client := base
	client.DatabaseURL, client.Templates, client.DisableOrchestration, client.DisableWorkers = url, []*template.Template{tpl}, true, true
	client.DefaultIdentityStrategy = tasker.IdentityAlwaysUnique // the same task many times
	eng, err := tasker.Open(ctx, client)
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
	if out, err := exec.Command("rabbitmqctl", "stop_app").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl stop_app: %v\n%s", err, out)
	}
	time.Sleep(time.Second)
	if out, err := exec.Command("rabbitmqctl", "start_app").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl start_app: %v\n%s", err, out)
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
	if !strings.Contains(logs, "connected again") {
		t.Errorf("no process logged that it connected to the broker again:\n%s", logs)
	}
}
