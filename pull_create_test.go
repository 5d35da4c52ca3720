package tasker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/template"
)

// Under PullUnregistered a template may name handlers no Go handler has:
// creating its task succeeds and the step goes to the pull channel, where
// a pull worker completes it (issue 12: the TypeScript SDK found that
// creating such a task was refused on the embedded backend).
func TestPullUnregisteredAcceptsTasksOfHandlersServedByPullWorkers(t *testing.T) {
	tpl, err := template.Parse("pull.yaml", []byte("name: pulled\nnamespace: test\nversion: 1.0.0\nsteps:\n  - name: only\n    handler: remote.add\n"))
	must(t, err)
	cfg := database(t, "sqlite")
	cfg.Templates = []*template.Template{tpl}
	cfg.PullUnregistered = true
	eng, err := tasker.Open(t.Context(), cfg)
	must(t, err)
	must(t, eng.Start(t.Context()))
	stopAtCleanup(t, eng)
	task, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "pulled", Context: map[string]int{"value": 1}})
	if err != nil {
		t.Fatalf("creating a task whose handler pull workers serve: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ev, err := eng.Pull().PollWait(ctx)
	must(t, err)
	if ev.Handler != "remote.add" || ev.StepName != "only" {
		t.Fatalf("event for handler %q step %q, want remote.add / only", ev.Handler, ev.StepName)
	}
	if !eng.Pull().Complete(ev.ID, tasker.PullResult{Output: json.RawMessage(`{"value":2}`)}) {
		t.Fatal("the event was not pending")
	}
	if _, err := eng.WaitTask(ctx, task.ID); err != nil {
		t.Fatal(err)
	}
	info, err := eng.Task(t.Context(), task.ID)
	must(t, err)
	if info.Task.State != "complete" {
		t.Fatalf("task %s, want complete", info.Task.State)
	}
}
