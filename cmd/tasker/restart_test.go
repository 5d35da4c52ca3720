package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
)

// TestKilledRunResumesWithoutLosingOrRepeatingSteps kills a real tasker
// process with SIGKILL while a step runs, starts tasker again on the same
// database, and checks the transition log: every step completed exactly once
// and none was lost; the attempt that was running when the process died is
// recorded as lost and retried.
func TestKilledRunResumesWithoutLosingOrRepeatingSteps(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tasker")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	tpl := filepath.Join(dir, "chain.yaml")
	var steps strings.Builder
	steps.WriteString("name: chain\nnamespace: demo\nversion: 1.0.0\nsteps:\n")
	names := []string{"s1", "s2", "s3", "s4", "s5", "s6"}
	for i, n := range names {
		steps.WriteString("  - name: " + n + "\n    handler: demo.sleep\n    retry: {max_attempts: 3, backoff: none}\n")
		if i > 0 {
			steps.WriteString("    depends_on: [" + names[i-1] + "]\n")
		}
	}
	if err := os.WriteFile(tpl, []byte(steps.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "tasker.db")

	// Run, and kill the process while s3 runs.
	run := exec.Command(bin, "run", tpl, "--db", db, "--context", `{"sleep_ms": 200}`)
	stderr, err := run.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	killed := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "step  s3: enqueued -> in_progress") {
				run.Process.Signal(syscall.SIGKILL)
				close(killed)
				break
			}
		}
		for sc.Scan() { // drain
		}
	}()
	select {
	case <-killed:
	case <-time.After(30 * time.Second):
		run.Process.Kill()
		t.Fatal("s3 never started")
	}
	run.Wait()

	// Start again on the same file: the task completes.
	resume := exec.Command(bin, "resume", "--db", db, "-o", "json")
	out, err := resume.Output()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	var summary struct {
		ID    string
		State string
		Steps []struct {
			Name     string
			State    string
			Attempts int
			Failure  *struct{ Kind string }
		}
	}
	if err := json.Unmarshal(out, &summary); err != nil {
		t.Fatalf("resume output %q: %v", out, err)
	}
	if summary.State != "complete" || len(summary.Steps) != len(names) {
		t.Fatalf("after resume: %s", out)
	}
	// The killed attempt failed (lost; the log below has its fail) and the
	// second succeeded, which leaves no failure on the step.
	s3 := summary.Steps[2]
	if s3.Attempts != 2 || s3.Failure != nil {
		t.Errorf("s3: %d attempts, failure %+v; want a second attempt that succeeded, no failure left", s3.Attempts, s3.Failure)
	}

	// The log: each step completed exactly once, and every attempt that
	// started ended once (succeeded or failed), none twice.
	st, err := storesqlite.Open(context.Background(), storesqlite.Config{Path: db})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tasks, err := st.TaskList(context.Background(), &store.TaskListParams{})
	if err != nil || len(tasks) != 1 {
		t.Fatalf("tasks: %v %v", tasks, err)
	}
	stepsOf, err := st.StepList(context.Background(), tasks[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	log, err := st.TransitionList(context.Background(), &store.TransitionListParams{TaskID: tasks[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stepsOf {
		counts := map[string]int{}
		for _, tr := range log {
			if tr.StepID == s.ID {
				counts[tr.Event]++
			}
		}
		if counts["complete"] != 1 || s.State != "complete" {
			t.Errorf("step %s: state %s, completed %d times; want complete, once", s.Name, s.State, counts["complete"])
		}
		if s.Name == "s3" && counts["fail"] != 1 {
			t.Errorf("step s3: %d failed attempts, want the killed one recorded as lost", counts["fail"])
		}
		if counts["start"] != counts["succeed"]+counts["fail"] {
			t.Errorf("step %s: %d attempts started, %d succeeded, %d failed: an attempt was lost or counted twice", s.Name, counts["start"], counts["succeed"], counts["fail"])
		}
	}
}
