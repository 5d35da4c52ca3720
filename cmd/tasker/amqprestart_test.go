package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
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
	bin, url := migratedDatabase(t)
	serve := start(t, bin, url, "serve", "--claim-timeout", "2s", "-v")
	worker := start(t, bin, url, "worker", "--namespace", "demo", "--claim-timeout", "2s", "-v")

	tpl := sleepChain(t, 3, "  timeout: 2s\n  retry: {max_attempts: 5, backoff: linear, base: 200ms, cap: 2s}\n")
	eng := clientEngine(t, base, url, tpl)
	const tasks = 30
	ids := createChains(t, eng, tasks, 150)
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
	completedOnce(t, eng, ids)
	logs := serve.logs.String() + worker.logs.String()
	if !strings.Contains(logs, "connected again") {
		t.Errorf("no process logged that it connected to the broker again:\n%s", logs)
	}
}
