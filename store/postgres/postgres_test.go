package postgres_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/queue"
	queuepg "github.com/tasker-go/tasker/queue/postgres"
	"github.com/tasker-go/tasker/store"
	storepg "github.com/tasker-go/tasker/store/postgres"
	"github.com/tasker-go/tasker/store/storetest"
	"github.com/tasker-go/tasker/taskertype"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openStore(t testing.TB, dbURL string, clock taskertype.Clock) *storepg.Store {
	t.Helper()
	s, err := storepg.Open(context.Background(), storepg.Config{URL: dbURL, Clock: clock, AutoMigrate: true, MaxConns: 10,
		Queue: queuepg.Config{TestClock: clock}})
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
		Name: "postgres",
		New: func(t *testing.T, clock taskertype.Clock) (store.Store, queue.Queue) {
			_, dbURL := pgtest.Schema(t)
			s := openStore(t, dbURL, clock)
			return s, s.Queue()
		},
	})
}

func TestOpenChecksMigrations(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	_, err := storepg.Open(ctx, storepg.Config{URL: dbURL})
	if !errors.Is(err, pgdb.ErrNotMigrated) || !strings.Contains(err.Error(), "tasker migrate") {
		t.Fatalf("Open of an empty database without AutoMigrate: %v, want ErrNotMigrated saying to run tasker migrate", err)
	}
	if err := storepg.Migrate(ctx, storepg.Config{URL: dbURL}); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := storepg.Migrate(ctx, storepg.Config{URL: dbURL}); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	s, err := storepg.Open(ctx, storepg.Config{URL: dbURL})
	if err != nil {
		t.Fatalf("Open of a migrated database: %v", err)
	}
	s.Close()
}

func TestTxUsedAfterInTxReturns(t *testing.T) {
	_, dbURL := pgtest.Schema(t)
	s := openStore(t, dbURL, nil)
	var leaked store.Tx
	if err := s.InTx(t.Context(), func(tx store.Tx) error { leaked = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := leaked.TaskGetForUpdate(t.Context(), uuid.New()); !errors.Is(err, taskertype.ErrClosed) {
		t.Fatalf("a Tx used after InTx returned: %v, want ErrClosed", err)
	}
	s.Close()
	if err := s.InTx(t.Context(), func(store.Tx) error { return nil }); !errors.Is(err, taskertype.ErrClosed) {
		t.Errorf("InTx after Close: %v, want ErrClosed", err)
	}
}

// TestStaleUnheldStep: a transition of a step the transaction does not hold
// (one from a cache) fails at once when the step has moved, with its actual
// state, and the transaction goes on.
func TestStaleUnheldStep(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	clock := testclock.New(storetest.Start)
	s := openStore(t, dbURL, clock)
	task, steps := newTask(t)
	inTx(t, s, func(tx store.Tx) error {
		return tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: steps, At: clock.Now()})
	})
	cached := *steps[0]
	// Another transaction moves a first.
	inTx(t, s, func(tx store.Tx) error {
		st, err := tx.StepGet(ctx, cached.ID)
		if err != nil {
			return err
		}
		st.State = taskertype.StepCancelled
		return tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: taskertype.StepPending, Event: taskertype.StepEventCancel, At: clock.Now()})
	})
	inTx(t, s, func(tx store.Tx) error {
		a := cached
		a.State = taskertype.StepEnqueued
		err := tx.StepTransition(ctx, &store.StepTransitionParams{Step: &a, From: taskertype.StepPending,
			Event: taskertype.StepEventEnqueue, At: clock.Now()})
		var stale *taskertype.StaleStateError
		if !errors.As(err, &stale) || stale.Expected != "pending" || stale.Actual != "cancelled" {
			t.Errorf("moving a step that moved since it was cached: %v, want a stale state error, expected pending, actual cancelled", err)
		}
		b := *steps[1]
		b.State = taskertype.StepEnqueued
		return tx.StepTransition(ctx, &store.StepTransitionParams{Step: &b, From: taskertype.StepPending,
			Event: taskertype.StepEventEnqueue, At: clock.Now()})
	})
	got, err := s.StepList(ctx, task.ID)
	if err != nil || got[0].State != taskertype.StepCancelled || got[1].State != taskertype.StepEnqueued {
		t.Fatalf("after the stale and the good transition: %v, %v", got, err)
	}
	if tk, err := s.TaskGet(ctx, task.ID); err != nil || tk.Revision != 1 {
		t.Fatalf("the task's revision after one step entered flight: %+v, %v; want 1", tk, err)
	}
}

// TestRetriesDeadlocks: two transactions that lock two tasks in opposite
// orders deadlock; PostgreSQL aborts one, and InTx runs it again.
func TestRetriesDeadlocks(t *testing.T) {
	ctx := t.Context()
	s, t1, t2, _ := twoTasks(t)
	ready, proceed := make(chan struct{}, 2), make(chan struct{})
	var arrived, runs [2]int
	errs := make(chan error, 2)
	for i, order := range [][2]uuid.UUID{{t1.ID, t2.ID}, {t2.ID, t1.ID}} {
		go func() {
			errs <- s.InTx(ctx, func(tx store.Tx) error {
				runs[i]++
				if _, err := tx.TaskGetForUpdate(ctx, order[0]); err != nil {
					return err
				}
				if arrived[i]++; arrived[i] == 1 {
					ready <- struct{}{}
					<-proceed
				}
				_, err := tx.TaskGetForUpdate(ctx, order[1])
				return err
			})
		}()
	}
	<-ready
	<-ready
	close(proceed)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("InTx: %v", err)
		}
	}
	if runs[0]+runs[1] < 3 {
		t.Fatalf("fn ran %v times: want one of them retried after the deadlock", runs)
	}
}

// TestPrefetchSkipLocked: with SkipLocked, a task another transaction holds
// is skipped and returned, not waited for; the others are read and held.
func TestPrefetchSkipLocked(t *testing.T) {
	ctx := t.Context()
	s, t1, t2, s2 := twoTasks(t)
	held, release := make(chan struct{}), make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		errs <- s.InTx(ctx, func(tx store.Tx) error {
			if _, err := tx.TaskGetForUpdate(ctx, t1.ID); err != nil {
				return err
			}
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	inTx(t, s, func(tx store.Tx) error {
		missed, err := tx.Prefetch(ctx, &store.PrefetchParams{TaskIDs: []uuid.UUID{t1.ID}, ContextsOf: []uuid.UUID{t2.ID}, SkipLocked: true})
		if err != nil {
			return err
		}
		if len(missed) != 1 || missed[0] != t1.ID {
			t.Errorf("missed %v, want the held task %s", missed, t1.ID)
		}
		before := s.RoundTrips()
		if _, err := tx.TaskGetForUpdate(ctx, t2.ID); err != nil {
			return err
		}
		if _, err := tx.StepGet(ctx, s2[1].ID); err != nil {
			return err
		}
		in, err := tx.StepInputs(ctx, s2[1].ID)
		if err != nil {
			return err
		}
		if n := s.RoundTrips() - before; n != 0 {
			t.Errorf("reads of the prefetched task took %d round trips, want 0", n)
		}
		if string(in.Context) != string(t2.Context) {
			t.Errorf("context %s, want %s", in.Context, t2.Context)
		}
		return nil
	})
	close(release)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// twoTasks opens a store on a fresh schema and creates two tasks in it; it
// returns the second task's steps.
func twoTasks(t *testing.T) (*storepg.Store, *taskertype.Task, *taskertype.Task, []*taskertype.Step) {
	t.Helper()
	_, dbURL := pgtest.Schema(t)
	clock := testclock.New(storetest.Start)
	s := openStore(t, dbURL, clock)
	t1, s1 := newTask(t)
	t2, s2 := newTask(t)
	inTx(t, s, func(tx store.Tx) error {
		if err := tx.TaskCreate(t.Context(), &store.TaskCreateParams{Task: t1, Steps: s1, At: clock.Now()}); err != nil {
			return err
		}
		return tx.TaskCreate(t.Context(), &store.TaskCreateParams{Task: t2, Steps: s2, At: clock.Now()})
	})
	return s, t1, t2, s2
}

func newTask(t *testing.T) (*taskertype.Task, []*taskertype.Step) {
	t.Helper()
	a, b := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	retry := taskertype.RetryPolicy{Retryable: true, MaxAttempts: 3, Backoff: taskertype.BackoffExponential, Base: time.Second}
	return &taskertype.Task{ID: uuid.Must(uuid.NewV7()), Namespace: "ns", Name: "t", Version: "1", Context: []byte(`{"k": 1}`)},
		[]*taskertype.Step{
			{ID: a, Name: "a", Handler: "h", Position: 0, Retry: retry, Timeout: time.Minute},
			{ID: b, Name: "b", Handler: "h", Position: 1, Retry: retry, Timeout: time.Minute, DependsOn: []uuid.UUID{a}},
		}
}

func inTx(t *testing.T, s *storepg.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.InTx(t.Context(), fn); err != nil {
		t.Fatalf("InTx: %v", err)
	}
}

// TestStepListFromHeldRows: after a Prefetch, and in the transaction that
// created the task, StepList costs no round trip and answers what the
// database would, the transaction's own moves included.
func TestStepListFromHeldRows(t *testing.T) {
	ctx := t.Context()
	s, t1, t2, s2 := twoTasks(t)
	want, err := s.StepList(ctx, t2.ID)
	if err != nil {
		t.Fatal(err)
	}
	inTx(t, s, func(tx store.Tx) error {
		if _, err := tx.Prefetch(ctx, &store.PrefetchParams{TaskIDs: []uuid.UUID{t2.ID, t1.ID}}); err != nil {
			return err
		}
		before := s.RoundTrips()
		got, err := tx.StepList(ctx, t2.ID)
		if err != nil {
			return err
		}
		if n := s.RoundTrips() - before; n != 0 {
			t.Errorf("StepList after a Prefetch took %d round trips, want 0", n)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("StepList after a Prefetch:\n got %+v\nwant %+v", got, want)
		}
		// A move in the transaction shows in the next list, and a change
		// to the list's copy does not reach the held row.
		st := got[0]
		st.State = taskertype.StepEnqueued
		if err := tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: taskertype.StepPending,
			Event: taskertype.StepEventEnqueue, At: st.UpdatedAt.Add(time.Second), Processor: "test"}); err != nil {
			return err
		}
		got[1].State, got[1].DependsOn[0] = taskertype.StepComplete, uuid.Nil
		again, err := tx.StepList(ctx, t2.ID)
		if err != nil {
			return err
		}
		if again[0].State != taskertype.StepEnqueued || !again[0].UpdatedAt.Equal(st.UpdatedAt) {
			t.Errorf("StepList after a move: step %s is %s at %v, want enqueued at %v", again[0].Name, again[0].State, again[0].UpdatedAt, st.UpdatedAt)
		}
		if again[1].State != taskertype.StepPending || again[1].DependsOn[0] != s2[0].ID {
			t.Errorf("StepList after its answer was changed: %+v", again[1])
		}
		if n := s.RoundTrips() - before; n != 0 {
			t.Errorf("StepList after a Prefetch and a move took %d round trips, want 0", n)
		}
		return nil
	})
	after, err := s.StepList(ctx, t2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after[0].State != taskertype.StepEnqueued {
		t.Errorf("after the commit, step %s is %s, want enqueued", after[0].Name, after[0].State)
	}

	// The transaction that creates a task lists its steps without a round
	// trip, and without writing them first.
	t3, s3 := newTask(t)
	inTx(t, s, func(tx store.Tx) error {
		if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: t3, Steps: s3, At: s3[0].CreatedAt}); err != nil {
			return err
		}
		before := s.RoundTrips()
		got, err := tx.StepList(ctx, t3.ID)
		if err != nil {
			return err
		}
		if n := s.RoundTrips() - before; n != 0 {
			t.Errorf("StepList of a task created in the transaction took %d round trips, want 0", n)
		}
		if len(got) != 2 || got[0].Name != "a" || got[1].Name != "b" || got[1].DependsOn[0] != s3[0].ID || got[0].DependsOn != nil {
			t.Errorf("StepList of a task created in the transaction: %+v", got)
		}
		return nil
	})
}
