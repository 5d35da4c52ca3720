package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// BenchmarkPullEventReads compares, per pull event, the reads of the
// step's ancestors' results and of the task's transitions since a cursor
// with what they replaced (the task's every step, its whole log), for a
// step with two completed ancestors in a task of n steps. The new reads
// stay flat as n grows; the old ones grow with it.
//
//	go test -run '^$' -bench PullEventReads ./store/sqlite/
func BenchmarkPullEventReads(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		ctx := context.Background()
		clock := testclock.New(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
		s := openStore(b, filepath.Join(b.TempDir(), "t.db"), clock)
		// s0 → s1 → s2: s2's ancestors are s0 and s1; the rest are
		// unrelated. Each step but s2 runs in transactions of its own, as in
		// the engine: the log grows by a row per transaction.
		task, steps := createSteps(b, s, clock, n, 0)
		for i, st := range steps {
			if i != 2 {
				completeStep(b, s, clock, st)
			}
		}
		log, err := s.TransitionList(ctx, &store.TransitionListParams{TaskID: task})
		if err != nil {
			b.Fatal(err)
		}
		cursor := log[len(log)-1].ID
		b.Run(fmt.Sprintf("steps=%d/ancestors", n), func(b *testing.B) {
			for b.Loop() {
				r, err := s.StepAncestorResults(ctx, task, steps[2].ID)
				if err != nil || len(r) != 2 {
					b.Fatalf("%v, %v", r, err)
				}
			}
		})
		b.Run(fmt.Sprintf("steps=%d/steplist", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.StepList(ctx, task); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("steps=%d/log_after_cursor", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.TransitionList(ctx, &store.TransitionListParams{TaskID: task, After: cursor}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("steps=%d/log_whole", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.TransitionList(ctx, &store.TransitionListParams{TaskID: task}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// createSteps creates a task of n steps s0…s(n-1) in which s(at+1)
// depends on s(at) and s(at+2) on s(at+1); the others stand alone.
func createSteps(tb testing.TB, s store.Store, clock taskertype.Clock, n, at int) (uuid.UUID, []*taskertype.Step) {
	tb.Helper()
	ctx := context.Background()
	task := uuid.Must(uuid.NewV7())
	retry := taskertype.RetryPolicy{MaxAttempts: 1, Backoff: taskertype.BackoffNone}
	steps := make([]*taskertype.Step, n)
	for i := range steps {
		steps[i] = &taskertype.Step{ID: uuid.Must(uuid.NewV7()), Name: fmt.Sprintf("s%d", i), Handler: "h", Position: i,
			Retry: retry, Timeout: time.Minute}
	}
	steps[at+1].DependsOn, steps[at+2].DependsOn = []uuid.UUID{steps[at].ID}, []uuid.UUID{steps[at+1].ID}
	err := s.InTx(ctx, func(tx store.Tx) error {
		return tx.TaskCreate(ctx, &store.TaskCreateParams{Task: &taskertype.Task{ID: task, Namespace: "ns", Name: "t", Version: "1.0.0",
			Context: json.RawMessage(`{}`)}, Steps: steps, At: clock.Now(), Processor: "test"})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return task, steps
}

// completeStep runs st from pending to complete in a transaction of its
// own, with the result {"of": its name}.
func completeStep(tb testing.TB, s store.Store, clock taskertype.Clock, st *taskertype.Step) {
	tb.Helper()
	ctx := context.Background()
	err := s.InTx(ctx, func(tx store.Tx) error {
		for _, ev := range []taskertype.StepEvent{taskertype.StepEventEnqueue, taskertype.StepEventStart, taskertype.StepEventSucceed, taskertype.StepEventComplete} {
			from := st.State
			to, err := taskertype.NextStepState(from, ev)
			if err != nil {
				return err
			}
			st.State = to
			if ev == taskertype.StepEventSucceed {
				st.Result = json.RawMessage(fmt.Sprintf(`{"of": %q}`, st.Name))
			}
			if err := tx.StepTransition(ctx, &store.StepTransitionParams{From: from, Step: st, Event: ev, At: clock.Now(), Processor: "test"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}
