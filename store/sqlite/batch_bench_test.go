package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// BenchmarkStoreReportBatch measures the embedded store's share of the
// engine's hot path at saturation: one transaction that stores the outcomes
// of a group of steps, each of another task. Per task it acknowledges a
// message, moves a step through two transitions, moves the task through
// three (a step finished, the next steps found and enqueued) and sends the
// next step's message: the mix a DAG's report transaction has. ns/step is
// the transaction's cost divided by its steps.
func BenchmarkStoreReportBatch(b *testing.B) {
	for _, group := range []int{1, 10} {
		b.Run(fmt.Sprintf("group=%d", group), func(b *testing.B) { benchReportBatch(b, group) })
	}
}

func benchReportBatch(b *testing.B, group int) {
	ctx := b.Context()
	clock := testclock.New(time.Now())
	s := openStore(b, filepath.Join(b.TempDir(), "tasker.db"), clock)
	const q = "worker_bench"
	if err := s.Queue().QueueEnsure(ctx, q); err != nil {
		b.Fatal(err)
	}
	// Enough tasks that a group's rows are spread over the tables, as the
	// tasks in flight are in a backlog's drain.
	const tasks, stepsPerTask = 512, 7
	type benchTask struct {
		task  *taskertype.Task
		steps []*taskertype.Step
		next  int
	}
	all := make([]*benchTask, tasks)
	for i := range all {
		bt := &benchTask{task: &taskertype.Task{ID: uuid.Must(uuid.NewV7()), Namespace: "bench", Name: "dag", Version: "1",
			Context: []byte(`{"value": 3}`)}}
		for j := range stepsPerTask {
			bt.steps = append(bt.steps, &taskertype.Step{ID: uuid.Must(uuid.NewV7()), TaskID: bt.task.ID, Name: fmt.Sprintf("s%d", j),
				Handler: "noop", Position: j,
				Retry: taskertype.RetryPolicy{Retryable: true, MaxAttempts: 3, Backoff: taskertype.BackoffExponential, Base: time.Second}})
		}
		all[i] = bt
		err := s.InTx(ctx, func(tx store.Tx) error {
			if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: bt.task, Steps: bt.steps, At: clock.Now(), Processor: "bench"}); err != nil {
				return err
			}
			for _, tr := range []struct {
				from taskertype.TaskState
				ev   taskertype.TaskEvent
				to   taskertype.TaskState
			}{
				{taskertype.TaskPending, taskertype.TaskEventStart, taskertype.TaskInitializing},
				{taskertype.TaskInitializing, taskertype.TaskEventReadyStepsFound, taskertype.TaskEnqueuingSteps},
				{taskertype.TaskEnqueuingSteps, taskertype.TaskEventStepsEnqueued, taskertype.TaskStepsInProcess},
			} {
				if err := tx.TaskTransition(ctx, &store.TaskTransitionParams{ID: bt.task.ID, From: tr.from, To: tr.to, Event: tr.ev,
					At: clock.Now(), Processor: "bench"}); err != nil {
					return err
				}
			}
			for _, st := range bt.steps {
				st.State = taskertype.StepEnqueued
				if err := tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: taskertype.StepPending,
					Event: taskertype.StepEventEnqueue, At: clock.Now(), Processor: "bench"}); err != nil {
					return err
				}
			}
			return tx.MessageSend(ctx, &queue.SendParams{Queue: q, Body: []byte(`{"task_id":"` + bt.task.ID.String() + `"}`)})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	claimed, err := s.Queue().MessageClaim(ctx, &queue.ClaimParams{Queue: q, Max: tasks, VisibilityTimeout: time.Hour})
	if err != nil || len(claimed) != tasks {
		b.Fatalf("claim: %d messages, %v", len(claimed), err)
	}
	receipts := make([]queue.Receipt, tasks)
	for i, m := range claimed {
		receipts[i] = m.Receipt()
	}
	body := []byte(`{"task_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","step_id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"}`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		err := s.InTx(ctx, func(tx store.Tx) error {
			for range group {
				bt := all[i%tasks]
				rc := receipts[i%tasks]
				i++
				if rc.ID != 0 {
					if err := tx.MessageAck(ctx, &queue.AckParams{Queue: q, Receipts: []queue.Receipt{rc}}); err != nil {
						return err
					}
				}
				if err := reportOne(ctx, tx, clock, bt.task.ID, bt.steps[bt.next%stepsPerTask]); err != nil {
					return err
				}
				bt.next++
				if err := tx.MessageSend(ctx, &queue.SendParams{Queue: q, Body: body}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		for j := range receipts { // acknowledged once
			receipts[j].ID = 0
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*group), "ns/step")
}

// reportOne stores a step's attempt and its task's move on: the step goes
// enqueued → in_progress → enqueued (started, then released, so that it can
// go round again), the task steps_in_process → evaluating_results →
// enqueuing_steps → steps_in_process.
func reportOne(ctx context.Context, tx store.Tx, clock taskertype.Clock, taskID uuid.UUID, st *taskertype.Step) error {
	st.State, st.Attempts, st.StartedAt = taskertype.StepInProgress, st.Attempts+1, clock.Now()
	if err := tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: taskertype.StepEnqueued,
		Event: taskertype.StepEventStart, At: clock.Now(), Processor: "worker@bench"}); err != nil {
		return err
	}
	st.State = taskertype.StepEnqueued
	if err := tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: taskertype.StepInProgress,
		Event: taskertype.StepEventRelease, At: clock.Now(), Processor: "worker@bench"}); err != nil {
		return err
	}
	for _, tr := range []struct {
		from taskertype.TaskState
		ev   taskertype.TaskEvent
		to   taskertype.TaskState
	}{
		{taskertype.TaskStepsInProcess, taskertype.TaskEventStepFinished, taskertype.TaskEvaluatingResults},
		{taskertype.TaskEvaluatingResults, taskertype.TaskEventReadyStepsFound, taskertype.TaskEnqueuingSteps},
		{taskertype.TaskEnqueuingSteps, taskertype.TaskEventStepsEnqueued, taskertype.TaskStepsInProcess},
	} {
		if err := tx.TaskTransition(ctx, &store.TaskTransitionParams{ID: taskID, From: tr.from, To: tr.to, Event: tr.ev,
			At: clock.Now(), Processor: "worker@bench"}); err != nil {
			return err
		}
	}
	return nil
}
