package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// TestKilledBatchWorkerResumesFromItsCheckpoint kills (SIGKILL) the worker
// process running a checkpointing batch worker mid-batch; another worker
// process takes the step over once the claim expires, and the retry starts
// from the last stored checkpoint, not from the start: the step yields
// exactly the checkpoints of one pass over its items.
func TestKilledBatchWorkerResumesFromItsCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs processes")
	}
	_, url := pgtest.Schema(t)
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	if out, err := exec.Command(bin, "migrate", "--database-url", url).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	claim := []string{"--claim-timeout", "2s"}
	serve := start(t, bin, url, append([]string{"serve"}, claim...)...)
	doomed := start(t, bin, url, append([]string{"worker", "--namespace", "demo"}, claim...)...)

	tpl, err := template.LoadFile(filepath.Join("..", "..", "examples", "batch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// One worker of 100 items, a checkpoint every 10, each run 150ms.
	for i := range tpl.Steps {
		switch tpl.Steps[i].Name {
		case "plan":
			tpl.Steps[i].Config = json.RawMessage(`{"batch_size": 100, "worker_template_name": "sum"}`)
		case "sum":
			tpl.Steps[i].Config = json.RawMessage(`{"checkpoint_every": 10, "sleep_ms": 150}`)
			tpl.Steps[i].Retry.MaxAttempts, tpl.Steps[i].Retry.Backoff = 3, taskertype.BackoffNone
		}
	}
	tpl.Name = "batch_crash"
	ctx := context.Background()
	eng, err := tasker.Open(ctx, tasker.Config{DatabaseURL: url, Templates: []*template.Template{tpl}, DisableOrchestration: true, DisableWorkers: true})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Stop(ctx)
	task, err := eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "demo", Name: "batch_crash", Context: map[string]int{"items": 100}})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the third checkpoint, then kill the worker process in the
	// middle of a run: the step in progress, started less than half a run
	// (150ms) ago. Killed between a yield and the next claim, the worker
	// would hold no attempt to lose.
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := eng.Task(ctx, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		var cp struct {
			Checkpoint *taskertype.Checkpoint `json:"checkpoint"`
		}
		midRun := false
		for _, s := range info.Steps {
			if s.Name == "sum_001" && s.State != taskertype.StepComplete && len(s.Result) > 0 {
				_ = json.Unmarshal(s.Result, &cp)
				midRun = s.State == taskertype.StepInProgress && time.Since(s.StartedAt) < 75*time.Millisecond
			}
		}
		if cp.Checkpoint != nil && cp.Checkpoint.Yields >= 3 && midRun {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no third checkpoint after a minute:\n%s\n%s", serve.logs, doomed.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	doomed.cmd.Process.Signal(syscall.SIGKILL)
	doomed.cmd.Wait()
	worker := start(t, bin, url, append([]string{"worker", "--namespace", "demo"}, claim...)...)

	waitFinished(t, eng, 1, 2*time.Minute, serve, worker)
	info, err := eng.Task(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.Task.State != taskertype.TaskComplete {
		t.Fatalf("task is %s, want complete", info.Task.State)
	}
	var total struct {
		Items int   `json:"items_processed"`
		Sum   int64 `json:"sum"`
	}
	for _, s := range info.Steps {
		if s.Name == "total" {
			if err := json.Unmarshal(s.Result, &total); err != nil {
				t.Fatal(err)
			}
		}
	}
	if total.Items != 100 || total.Sum != 99*100/2 {
		t.Errorf("total %+v, want 100 items summing to 4950", total)
	}
	log, err := eng.Transitions(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	var worker1 *tasker.Step
	for _, s := range info.Steps {
		if s.Name == "sum_001" {
			worker1 = s
		}
	}
	if worker1 == nil {
		t.Fatal("no step sum_001")
	}
	yields, failures := 0, 0
	for _, tr := range log {
		if tr.StepID != worker1.ID {
			continue
		}
		switch tr.Event {
		case string(taskertype.StepEventCheckpointYield):
			yields++
		case string(taskertype.StepEventFail):
			failures++
		}
	}
	// 100 items in runs of 10: 9 yields, then the final run. A retry from
	// the start would yield again for the items before the kill.
	if yields != 9 || failures != 1 {
		t.Errorf("sum_001 yielded %d checkpoints and failed %d times, want 9 and 1 (the lost attempt, resumed from its checkpoint)", yields, failures)
	}
	serve.stop(t)
	worker.stop(t)
}
