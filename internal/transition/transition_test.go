package transition_test

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

// TestRecorderReusesItsScratch: a Recorder moves several steps of one
// transaction through its one set of transition parameters and step copy
// (a regression guard for that reuse: a Recorder that allocated them per
// call passes too); each caller's step ends as its own transitions left it
// (never as another step's), the store has each step as moved, and each
// event names its step. That the store keeps neither is the conformance
// suite's testParamsNotKept.
func TestRecorderReusesItsScratch(t *testing.T) {
	ctx := t.Context()
	st, err := storesqlite.Open(ctx, storesqlite.Config{Path: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	retry := taskertype.RetryPolicy{Retryable: true, MaxAttempts: 3, Backoff: taskertype.BackoffExponential, Base: time.Second, Cap: time.Minute}
	a, b := uuid.New(), uuid.New()
	task := &taskertype.Task{ID: uuid.New(), Namespace: "ns", Name: "t", Version: "1", Context: json.RawMessage(`{}`)}
	steps := []*taskertype.Step{
		{ID: a, Name: "a", Handler: "ha", Position: 0, Retry: retry, Timeout: time.Minute},
		{ID: b, Name: "b", Handler: "hb", Position: 1, Retry: retry, Timeout: time.Minute},
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	if err := st.InTx(ctx, func(tx store.Tx) error {
		return tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: steps, At: now, Processor: "p"})
	}); err != nil {
		t.Fatal(err)
	}
	bus := events.NewBus()
	sub, err := bus.Subscribe(events.Filter{}, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var sa, sb *taskertype.Step
	err = transition.InTx(ctx, st, bus, "p", func(tx store.Tx, rec *transition.Recorder) error {
		var err error
		if sa, err = tx.StepGet(ctx, a); err != nil {
			return err
		}
		if sb, err = tx.StepGet(ctx, b); err != nil {
			return err
		}
		for _, ev := range []taskertype.StepEvent{taskertype.StepEventEnqueue, taskertype.StepEventStart} {
			if err := rec.Step(ctx, tx, sa, ev, now, nil); err != nil {
				return err
			}
			if err := rec.Step(ctx, tx, sb, ev, now, func(s *taskertype.Step) { s.Attempts = 7 }); err != nil {
				return err
			}
		}
		return rec.Step(ctx, tx, sa, taskertype.StepEventSucceed, now, func(s *taskertype.Step) { s.Result = json.RawMessage(`{"a":1}`) })
	})
	if err != nil {
		t.Fatal(err)
	}
	if sa.ID != a || sa.Name != "a" || sa.State != taskertype.StepEnqueuedForOrchestration || sa.Attempts != 0 || string(sa.Result) != `{"a":1}` {
		t.Fatalf("a's caller holds %+v", sa)
	}
	if sb.ID != b || sb.Name != "b" || sb.State != taskertype.StepInProgress || sb.Attempts != 7 || sb.Result != nil {
		t.Fatalf("b's caller holds %+v", sb)
	}
	list, err := st.StepList(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		want := map[uuid.UUID]taskertype.StepState{a: taskertype.StepEnqueuedForOrchestration, b: taskertype.StepInProgress}[s.ID]
		if s.State != want {
			t.Fatalf("stored step %s is %s, want %s", s.Name, s.State, want)
		}
	}
	want := []string{"a:enqueue", "b:enqueue", "a:start", "b:start", "a:succeed"}
	for i, w := range want {
		var e events.Event
		select {
		case e = <-sub.C():
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d (%s) was not published", i, w)
		}
		if got := e.StepName + ":" + e.Event; got != w || e.StepID != map[string]uuid.UUID{"a": a, "b": b}[e.StepName] {
			t.Fatalf("event %d: %s (step %s), want %s", i, got, e.StepID, w)
		}
	}
}
