package tasker_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/queue"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// A task whose last result message was set aside waits for it; the
// operator sends the dead letter back and the task finishes.
func TestARequeuedDeadLetterFinishesItsTask(t *testing.T) {
	ctx := t.Context()
	db := filepath.Join(t.TempDir(), "t.db")
	tpl, err := template.Parse("one.yaml", []byte("name: one\nnamespace: test\nversion: 1.0.0\nsteps:\n  - {name: only, handler: demo.noop}\n"))
	must(t, err)
	open := func(orchestrate bool) *tasker.Engine {
		t.Helper()
		eng, err := tasker.Open(ctx, tasker.Config{DatabasePath: db, Templates: []*template.Template{tpl}, DisableOrchestration: !orchestrate})
		must(t, err)
		for name, h := range demo.Handlers() {
			must(t, eng.RegisterHandler(name, h))
		}
		return eng
	}
	stop := func(eng *tasker.Engine) {
		t.Helper()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		must(t, eng.Stop(sctx))
	}

	// Workers only: the step runs and reports; nobody orchestrates.
	eng := open(false)
	sub, err := eng.Subscribe(tasker.EventFilter{Kinds: []string{tasker.EventStepTransition}, To: []string{"enqueued_for_orchestration"}}, 16)
	must(t, err)
	must(t, eng.Start(ctx))
	task, err := eng.CreateTask(ctx, tasker.CreateTaskParams{Namespace: "test", Name: "one"})
	must(t, err)
	select {
	case <-sub.C():
	case <-time.After(20 * time.Second):
		t.Fatal("the step never reported")
	}
	sub.Close()
	stop(eng)

	// The result message is set aside, as an orchestrator would after
	// MaxDeliveries failures.
	st, err := storesqlite.Open(ctx, storesqlite.Config{Path: db})
	must(t, err)
	ms, err := st.Queue().MessageClaim(ctx, &queue.ClaimParams{Queue: queue.ResultsQueue, Max: 10, VisibilityTimeout: time.Minute})
	must(t, err)
	if len(ms) != 1 {
		t.Fatalf("%d result messages, want 1", len(ms))
	}
	must(t, st.Queue().MessageDeadLetter(ctx, &queue.DeadLetterParams{Queue: queue.ResultsQueue, Receipt: ms[0].Receipt(), Reason: "failed 5 deliveries"}))
	must(t, st.Close())

	eng = open(true)
	must(t, eng.Start(ctx))
	defer stop(eng)
	ds, err := eng.DeadLetters(ctx, tasker.DeadLetterListParams{})
	must(t, err)
	if len(ds) != 1 {
		t.Fatalf("%d dead letters, want 1", len(ds))
	}
	if _, err := eng.RequeueDeadLetter(ctx, ds[0].ID+100); !errors.Is(err, taskertype.ErrNotFound) {
		t.Fatalf("RequeueDeadLetter of an unknown id: %v, want ErrNotFound", err)
	}
	if _, err := eng.RequeueDeadLetter(ctx, ds[0].ID); err != nil {
		t.Fatalf("RequeueDeadLetter: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	done, err := eng.WaitTask(wctx, task.ID)
	if err != nil {
		t.Fatalf("the task did not finish after its result was sent back: %v", err)
	}
	if done.State != "complete" {
		t.Fatalf("task %s, want complete", done.State)
	}
	if ds, err := eng.DeadLetters(ctx, tasker.DeadLetterListParams{}); err != nil || len(ds) != 0 {
		t.Fatalf("dead letters after the requeue: %v, %v; want none", ds, err)
	}
}
