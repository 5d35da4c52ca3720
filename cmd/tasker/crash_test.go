package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
)

// TestClusterSurvivesKilledProcesses kills a worker with steps in flight and
// an orchestrator in the middle of the tasks (SIGKILL, no chance to clean
// up); the surviving processes finish every task, no step is lost and none
// completes twice. The killed worker's attempts come back when their claims
// expire and are recorded as lost, then retried.
func TestClusterSurvivesKilledProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	runKilled(t, tasker.Config{})
}

// TestClusterSurvivesKilledProcessesOnRabbitMQ is the same on RabbitMQ: the
// killed worker held unacknowledged deliveries; the broker requeues them
// when its connection drops, and the surviving worker runs them.
func TestClusterSurvivesKilledProcessesOnRabbitMQ(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	runKilled(t, rabbitConfig(t))
}

func runKilled(t *testing.T, base tasker.Config) {
	bin, url := migratedDatabase(t)
	claim := []string{"--claim-timeout", "2s"}
	doomedServe := start(t, bin, url, append([]string{"serve"}, claim...)...)
	serve := start(t, bin, url, append([]string{"serve"}, claim...)...)
	doomedWorker := start(t, bin, url, append([]string{"worker", "--namespace", "demo"}, claim...)...)
	worker := start(t, bin, url, append([]string{"worker", "--namespace", "demo"}, claim...)...)

	tpl := sleepChain(t, 4, "  timeout: 1s\n  retry: {max_attempts: 3, backoff: none}\n")
	eng := clientEngine(t, base, url, tpl)
	const tasks = 40
	ids := createChains(t, eng, tasks, 200)
	time.Sleep(600 * time.Millisecond) // steps in flight, tasks half done
	for _, p := range []*process{doomedWorker, doomedServe} {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}

	waitFinished(t, eng, tasks, 2*time.Minute, serve, worker)
	serve.stop(t)
	worker.stop(t)

	if all, err := eng.Tasks(context.Background(), 2*tasks); err != nil || len(all) != tasks {
		t.Errorf("%d tasks in the store (%v), want %d", len(all), err, tasks)
	}
	var lost int
	eachStep(t, eng, ids, func(id uuid.UUID, s *tasker.Step, log []*tasker.Transition) {
		counts := map[string]int{}
		for _, tr := range log {
			counts[tr.Event]++
		}
		if counts["complete"] != 1 {
			t.Errorf("task %s step %s completed %d times", id, s.Name, counts["complete"])
		}
		if counts["start"] != counts["succeed"]+counts["fail"]+counts["release"] {
			t.Errorf("task %s step %s: %v: an attempt was lost or ended twice", id, s.Name, counts)
		}
		if s.Failure != nil && s.Failure.Kind == "lost" {
			lost++
		}
	})
	t.Logf("%d attempts recorded as lost after the kill", lost)
	if !strings.Contains(serve.logs.String(), "running") {
		t.Logf("serve logs:\n%s", serve.logs)
	}
}
