package worker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/internal/worker"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// A claim in a creation's transaction that then rolls back (the next
// namespace's claim failed, say): after(false) starts nothing and gives
// every slot back, and the worker goes on running steps.
func TestAClaimInATransactionThatRollsBackGivesItsSlotsBack(t *testing.T) {
	st, bus := openStore(t), events.NewBus()
	const slots = 4
	started, proceed := make(chan uuid.UUID, 2*slots), make(chan struct{})
	// ClaimBatch 2: a round of the claim loop takes at most 2 of the 4
	// slots, so the claim below always finds some (with the default, 4, a
	// round could take them all); and it takes 2 for its one message, so a
	// rollback that gave back only what was claimed would leak one.
	w := startWorker(t, worker.Config{Store: st, Queue: st.Queue(), Bus: bus, Processor: "w",
		Namespaces: []string{ns}, Concurrency: slots, ClaimBatch: 2, VisibilityTimeout: time.Second, IdlePoll: 20 * time.Millisecond,
		Handlers: map[string]taskertype.Handler{"slow": taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
			started <- in.StepID
			select {
			case <-proceed:
			case <-ctx.Done():
			}
			return "ok", nil
		})}}, nil)
	unblock := sync.OnceFunc(func() { close(proceed) })
	t.Cleanup(unblock) // runs before Stop's cleanup

	next := errors.New("the next namespace's claim failed")
	var after func(bool)
	var rolledBack *taskertype.Step
	err := transition.InTx(t.Context(), st, bus, "test", func(tx store.Tx, rec *transition.Recorder) error {
		var err error
		if rolledBack, err = enqueueInTx(t.Context(), tx, rec, 0); err != nil {
			return err
		}
		if after, err = w.ClaimInTx(t.Context(), tx, rec, queue.StepQueue(ns)); err != nil {
			return err
		}
		return next
	})
	if !errors.Is(err, next) {
		if after != nil {
			after(false)
		}
		t.Fatalf("the transaction: %v, want it rolled back with %v", err, next)
	}
	if after == nil {
		t.Fatal("the claim took no slot: the test tests nothing")
	}
	after(false)

	// Every slot came back: as many steps as slots run at once, and the
	// rolled-back step is not among them.
	want := map[uuid.UUID]bool{}
	for range slots {
		want[enqueue(t, st, bus).ID] = true
	}
	for i := range slots {
		select {
		case id := <-started:
			if id == rolledBack.ID {
				t.Fatal("the step of the rolled-back transaction ran")
			}
			if !want[id] {
				t.Fatalf("step %s ran, not one of those enqueued", id)
			}
			delete(want, id)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d steps ran at once after the given-back claim: a slot was not given back", i, slots)
		}
	}
	unblock()
	select {
	case id := <-started:
		t.Fatalf("step %s ran after the four: the rolled-back one?", id)
	case <-time.After(100 * time.Millisecond):
	}
}
