package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/internal/wire"
	"github.com/tasker-go/tasker/internal/worker"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// A claim in a creation's transaction that then rolls back (the next
// namespace's claim failed, say): after(false) gives every slot back and
// starts nothing, and the worker goes on running steps.
func TestAClaimInATransactionThatRollsBackGivesItsSlotsBack(t *testing.T) {
	st, bus := openStore(t), events.NewBus()
	const slots = 4
	started, proceed := make(chan struct{}, slots), make(chan struct{})
	// ClaimBatch 1: an idle claim loop holds one slot while it waits, so
	// the claim below finds one free.
	w, err := worker.New(worker.Config{Store: st, Queue: st.Queue(), Bus: bus, Processor: "w",
		Namespaces: []string{ns}, Concurrency: slots, ClaimBatch: 1, VisibilityTimeout: time.Second, IdlePoll: 20 * time.Millisecond,
		Handlers: map[string]taskertype.Handler{"slow": taskertype.HandlerFunc(func(ctx context.Context, _ *taskertype.StepInput) (any, error) {
			started <- struct{}{}
			select {
			case <-proceed:
			case <-ctx.Done():
			}
			return "ok", nil
		})}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})

	next := errors.New("the next namespace's claim failed")
	var after func(bool)
	err = transition.InTx(t.Context(), st, bus, "test", func(tx store.Tx, rec *transition.Recorder) error {
		task := &taskertype.Task{ID: uuid.Must(uuid.NewV7()), Namespace: ns, Name: "t", Version: "1", Context: []byte(`{}`)}
		step := &taskertype.Step{ID: uuid.Must(uuid.NewV7()), Name: "slow", Handler: "slow", Timeout: time.Minute,
			Retry: taskertype.RetryPolicy{MaxAttempts: 1, Backoff: taskertype.BackoffNone}}
		if err := tx.TaskCreate(t.Context(), &store.TaskCreateParams{Task: task, Steps: []*taskertype.Step{step}, At: time.Now(), Processor: "test"}); err != nil {
			return err
		}
		s, err := tx.StepGet(t.Context(), step.ID)
		if err != nil {
			return err
		}
		if err := rec.Step(t.Context(), tx, s, taskertype.StepEventEnqueue, time.Now(), nil); err != nil {
			return err
		}
		if err := tx.MessageSend(t.Context(), &queue.SendParams{Queue: queue.StepQueue(ns), Body: wire.Encode(wire.StepMessage{TaskID: task.ID, StepID: step.ID})}); err != nil {
			return err
		}
		if after, err = w.ClaimInTx(t.Context(), tx, rec, queue.StepQueue(ns)); err != nil {
			return err
		}
		return next
	})
	if !errors.Is(err, next) {
		t.Fatalf("the transaction: %v, want it rolled back with %v", err, next)
	}
	if after == nil {
		t.Fatal("the claim took no slot: the test tests nothing")
	}
	after(false)
	select {
	case <-started:
		t.Fatal("the step of the rolled-back transaction ran")
	case <-time.After(100 * time.Millisecond):
	}

	// Every slot came back: as many steps as slots run at once.
	for range slots {
		enqueue(t, st, bus)
	}
	for i := range slots {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d steps ran at once after the given-back claim: a slot was not given back", i, slots)
		}
	}
	close(proceed)
}
