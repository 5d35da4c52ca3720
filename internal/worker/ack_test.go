package worker_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/internal/wire"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// Worker a's renewals fail; it gives its claim up at two thirds of the
// lease and records a retryable failure. Its message must be acknowledged
// with its receipt (still valid in the database): left behind, it would
// come back after orchestration re-enqueued the step (no backoff here) and
// worker b started the next attempt, and worker c would record b's live
// attempt as lost.
func TestAGivenUpClaimStillAcknowledgesItsMessage(t *testing.T) {
	e := newEnv(t)
	e.lease = time.Second
	sub, err := e.bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition}}, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var on atomic.Bool
	started := make(chan struct{}, 1)
	ha := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		on.Store(true)
		<-ctx.Done()
		return nil, context.Cause(ctx)
	})
	wa := e.worker(t, "a", 1, ha, failingRenewals{e.st.Queue(), &on}, nil)
	e.waitState(t, sub, taskertype.StepEnqueuedAsErrorForOrchestration)
	wa.Stop(t.Context())
	// orchestration: schedule retry, retry, enqueue, send a new message
	err = transition.InTx(t.Context(), e.st, e.bus, "orch", func(tx store.Tx, rec *transition.Recorder) error {
		s, err := tx.StepGet(t.Context(), e.step.ID)
		if err != nil {
			return err
		}
		for _, ev := range []taskertype.StepEvent{taskertype.StepEventScheduleRetry, taskertype.StepEventRetry, taskertype.StepEventEnqueue} {
			if err := rec.Step(t.Context(), tx, s, ev, time.Now(), nil); err != nil {
				return err
			}
		}
		return tx.MessageSend(t.Context(), &queue.SendParams{Queue: queue.StepQueue(ns), Body: wire.Encode(wire.StepMessage{TaskID: e.step.TaskID, StepID: e.step.ID})})
	})
	if err != nil {
		t.Fatal(err)
	}
	hb := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(3 * time.Second):
			return "b", nil
		}
	})
	e.worker(t, "b", 1, hb, nil, nil)
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatalf("b did not start; events %v", e.events(t))
	}
	e.worker(t, "c", 1, hb, nil, nil)
	e.waitState(t, sub, taskertype.StepEnqueuedForOrchestration) // b's success
	for _, ev := range e.events(t) {
		if strings.HasSuffix(ev, "@c") {
			t.Fatalf("worker c moved the step (%s): a's message came back; events %v", ev, e.events(t))
		}
	}
}
