package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/store/storetest"
	"github.com/tasker-go/tasker/taskertype"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openStore(t testing.TB, path string, clock taskertype.Clock) *storesqlite.Store {
	t.Helper()
	s, err := storesqlite.Open(context.Background(), storesqlite.Config{Path: path, Clock: clock})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Name: "sqlite",
		New: func(t *testing.T, clock taskertype.Clock) (store.Store, queue.Queue) {
			s := openStore(t, filepath.Join(t.TempDir(), "tasker.db"), clock)
			return s, s.Queue()
		},
	})
}

func TestOpenTwiceIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasker.db")
	openStore(t, path, nil)
	_, err := storesqlite.Open(t.Context(), storesqlite.Config{Path: path})
	if !errors.Is(err, sqlitedb.ErrLocked) {
		t.Fatalf("second Open of one file: %v, want ErrLocked", err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasker.db")
	s, err := storesqlite.Open(ctx, storesqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.TaskCreate(ctx, &store.TaskCreateParams{
			Task: &taskertype.Task{ID: id, Namespace: "ns", Name: "t", Version: "1"}, At: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.InTx(ctx, func(store.Tx) error { return nil }); !errors.Is(err, taskertype.ErrClosed) {
		t.Errorf("InTx after Close: %v, want ErrClosed", err)
	}
	s = openStore(t, path, nil)
	task, err := s.TaskGet(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if string(task.Context) != "{}" {
		t.Errorf("an empty context is stored as %q, want {}", task.Context)
	}
}

func TestTxUsedAfterInTxReturns(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "tasker.db"), nil)
	var leaked store.Tx
	if err := s.InTx(t.Context(), func(tx store.Tx) error { leaked = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := leaked.TaskGetForUpdate(t.Context(), uuid.New()); !errors.Is(err, taskertype.ErrClosed) ||
		!strings.Contains(err.Error(), "transaction has ended") {
		t.Fatalf("a Tx used after InTx returned: %v, want ErrClosed", err)
	}
}

// BenchmarkStoreStepTransition measures one write transaction holding one
// step transition (and its transition record): the unit of work of every
// step state change.
func BenchmarkStoreStepTransition(b *testing.B) { benchStepTransition(b, false) }

// BenchmarkStoreStepTransitionWithMessage adds what orchestration does with
// most transitions: send a message in the same transaction.
func BenchmarkStoreStepTransitionWithMessage(b *testing.B) { benchStepTransition(b, true) }

func benchStepTransition(b *testing.B, send bool) {
	ctx := b.Context()
	clock := testclock.New(time.Now())
	s := openStore(b, filepath.Join(b.TempDir(), "tasker.db"), clock)
	if err := s.Queue().QueueEnsure(ctx, "worker_bench"); err != nil {
		b.Fatal(err)
	}
	task := &taskertype.Task{ID: uuid.Must(uuid.NewV7()), Namespace: "bench", Name: "t", Version: "1",
		Context: []byte(`{"order_id": 42}`)}
	step := &taskertype.Step{ID: uuid.Must(uuid.NewV7()), Name: "s", Handler: "h",
		Retry: taskertype.RetryPolicy{Retryable: true, MaxAttempts: 3, Backoff: taskertype.BackoffExponential, Base: time.Second}}
	err := s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: []*taskertype.Step{step}, At: clock.Now()}); err != nil {
			return err
		}
		step.State = taskertype.StepEnqueued
		return tx.StepTransition(ctx, &store.StepTransitionParams{Step: step, From: taskertype.StepPending,
			Event: taskertype.StepEventEnqueue, At: clock.Now()})
	})
	if err != nil {
		b.Fatal(err)
	}
	msg := &queue.SendParams{Queue: "worker_bench",
		Body: []byte(`{"task_id":"` + task.ID.String() + `","step_id":"` + step.ID.String() + `"}`)}
	// The step goes back and forth between enqueued and in_progress.
	b.ReportAllocs()
	for b.Loop() {
		from, event, to := taskertype.StepEnqueued, taskertype.StepEventStart, taskertype.StepInProgress
		if step.State == taskertype.StepInProgress {
			from, event, to = taskertype.StepInProgress, taskertype.StepEventRelease, taskertype.StepEnqueued
		}
		step.State = to
		step.Attempts++
		step.StartedAt = clock.Now()
		err := s.InTx(ctx, func(tx store.Tx) error {
			if err := tx.StepTransition(ctx, &store.StepTransitionParams{Step: step, From: from, Event: event,
				At: clock.Now(), Processor: "bench"}); err != nil {
				return err
			}
			if send {
				return tx.MessageSend(ctx, msg)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// TestStepsFoundInTheirTransaction covers where a transaction finds a
// step's task (loadStep): a step created in it, with its task or added to
// it later (neither in the committed step → task index yet), and, after a
// reopen (an empty cache), steps of a task read from the database. Each
// compare-and-set must meet the transaction's own copy: a second one on
// the same step in the same transaction sees the first's state.
func TestStepsFoundInTheirTransaction(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasker.db")
	s := openStore(t, path, nil)
	retry := taskertype.RetryPolicy{Retryable: true, MaxAttempts: 3, Backoff: taskertype.BackoffExponential, Base: time.Second}
	task := &taskertype.Task{ID: uuid.Must(uuid.NewV7()), Namespace: "ns", Name: "t", Version: "1", Context: []byte(`{}`)}
	a := &taskertype.Step{ID: uuid.Must(uuid.NewV7()), Name: "a", Handler: "h", Retry: retry}
	b := &taskertype.Step{ID: uuid.Must(uuid.NewV7()), Name: "b", Handler: "h", Position: 1, Retry: retry, DependsOn: []uuid.UUID{a.ID}}
	move := func(tx store.Tx, id uuid.UUID, from, to taskertype.StepState, ev taskertype.StepEvent) error {
		st, err := tx.StepGet(ctx, id)
		if err != nil {
			return fmt.Errorf("get %s: %w", id, err)
		}
		if st.State != from {
			return fmt.Errorf("step %s is %s in its transaction, want %s", st.Name, st.State, from)
		}
		st.State = to
		return tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: from, Event: ev, At: time.Now()})
	}
	err := s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: []*taskertype.Step{a}, At: time.Now()}); err != nil {
			return err
		}
		if err := move(tx, a.ID, taskertype.StepPending, taskertype.StepEnqueued, taskertype.StepEventEnqueue); err != nil {
			return err
		}
		if err := tx.StepCreate(ctx, &store.StepCreateParams{TaskID: task.ID, Steps: []*taskertype.Step{b}, At: time.Now()}); err != nil {
			return err
		}
		if err := move(tx, b.ID, taskertype.StepPending, taskertype.StepEnqueued, taskertype.StepEventEnqueue); err != nil {
			return err
		}
		return move(tx, b.ID, taskertype.StepEnqueued, taskertype.StepInProgress, taskertype.StepEventStart)
	})
	if err != nil {
		t.Fatalf("the creating transaction: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, nil)
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := move(tx, a.ID, taskertype.StepEnqueued, taskertype.StepInProgress, taskertype.StepEventStart); err != nil {
			return err
		}
		if err := move(tx, a.ID, taskertype.StepInProgress, taskertype.StepEnqueuedForOrchestration, taskertype.StepEventSucceed); err != nil {
			return err
		}
		return move(tx, b.ID, taskertype.StepInProgress, taskertype.StepEnqueuedForOrchestration, taskertype.StepEventSucceed)
	})
	if err != nil {
		t.Fatalf("the transaction after the reopen: %v", err)
	}
	steps, err := s.StepList(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 {
		t.Fatalf("%d steps after the commit, want 2", len(steps))
	}
	for _, st := range steps {
		if st.State != taskertype.StepEnqueuedForOrchestration {
			t.Errorf("step %s is %s after the commit, want enqueued_for_orchestration", st.Name, st.State)
		}
	}
}
