package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// testStepLease: the store lease of a running attempt is written with the
// transaction that starts the step, runs by the database's clock, is
// renewed only while the step runs that attempt, and names no other
// attempt.
func testStepLease(t *testing.T, e *env) {
	ctx := t.Context()
	p := diamond(t, e)
	e.create(t, p)
	id := p.Steps[0].ID
	a1, other := newID(t), newID(t)
	left := func(attempt uuid.UUID) time.Duration {
		t.Helper()
		var d time.Duration
		e.inTx(t, func(tx store.Tx) error {
			var err error
			d, err = tx.StepLeaseLeft(ctx, id, attempt)
			return err
		})
		return d
	}
	e.moveStep(t, id, taskertype.StepEventEnqueue, nil)
	// The start and the lease in one transaction.
	e.inTx(t, func(tx store.Tx) error {
		st, err := tx.StepGet(ctx, id)
		if err != nil {
			return err
		}
		st.State, st.AttemptID, st.Attempts = taskertype.StepInProgress, a1, 1
		if err := tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: taskertype.StepEnqueued,
			Event: taskertype.StepEventStart, At: e.clock.Now(), Processor: Processor}); err != nil {
			return err
		}
		return tx.StepLeaseHold(ctx, &store.StepLeaseParams{StepID: id, AttemptID: a1, Lease: time.Hour})
	})
	// The fake clock does not move it: it runs by the database's.
	e.clock.Advance(2 * time.Hour)
	if d := left(a1); d <= 59*time.Minute || d > time.Hour {
		t.Errorf("lease left %v just after a lease of 1h was held, want just under 1h", d)
	}
	if d := left(other); d != 0 {
		t.Errorf("lease left of an attempt the step does not run: %v, want 0", d)
	}
	if err := e.s.StepLeaseExtend(ctx, &store.StepLeaseParams{StepID: id, AttemptID: a1, Lease: time.Minute}); err != nil {
		t.Fatalf("StepLeaseExtend: %v", err)
	}
	if d := left(a1); d <= 0 || d > time.Minute {
		t.Errorf("lease left %v after it was renewed for 1m, want at most 1m", d)
	}
	if err := e.s.StepLeaseExtend(ctx, &store.StepLeaseParams{StepID: id, AttemptID: other, Lease: time.Minute}); !errors.Is(err, taskertype.ErrNotFound) {
		t.Errorf("StepLeaseExtend of an attempt the step does not run: %v, want ErrNotFound", err)
	}
	if err := e.s.StepLeaseExtend(ctx, &store.StepLeaseParams{StepID: id, AttemptID: a1}); !errors.Is(err, taskertype.ErrInvalid) {
		t.Errorf("StepLeaseExtend without a lease: %v, want ErrInvalid", err)
	}
	// A lease held for an attempt the step does not run writes nothing.
	e.inTx(t, func(tx store.Tx) error {
		return tx.StepLeaseHold(ctx, &store.StepLeaseParams{StepID: id, AttemptID: other, Lease: time.Hour})
	})
	if d := left(other); d != 0 {
		t.Errorf("lease left of an attempt held while the step ran another: %v, want 0", d)
	}
	// Once the attempt ended, its lease is not renewed and none is left.
	e.moveStep(t, id, taskertype.StepEventSucceed, nil)
	if err := e.s.StepLeaseExtend(ctx, &store.StepLeaseParams{StepID: id, AttemptID: a1, Lease: time.Minute}); !errors.Is(err, taskertype.ErrNotFound) {
		t.Errorf("StepLeaseExtend after the attempt ended: %v, want ErrNotFound", err)
	}
	if d := left(a1); d != 0 {
		t.Errorf("lease left after the attempt ended: %v, want 0", d)
	}
	// A step started without a lease (a queue in the store's database)
	// has none.
	if d := left(uuid.Nil); d != 0 {
		t.Errorf("lease left of no attempt: %v, want 0", d)
	}
}
