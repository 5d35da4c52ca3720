package storetest

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// testAttemptFence: a step is started (attempt A1), given back and started
// again (A2); the late outcome of A1 is refused as stale, whether the
// transaction read the step first or not, and changes nothing. A2's is
// stored.
func testAttemptFence(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	id := p.Steps[0].ID
	a1, a2 := newID(t), newID(t)
	e.moveStep(t, id, taskertype.StepEventEnqueue, nil)
	if s := e.moveStep(t, id, taskertype.StepEventStart, func(s *taskertype.Step) { s.AttemptID, s.Attempts = a1, 1 }); s.AttemptID != a1 {
		t.Fatalf("attempt ID %s after the start, want %s", s.AttemptID, a1)
	}
	if s := e.steps(t, p.Task.ID)["a"]; s.AttemptID != a1 {
		t.Fatalf("attempt ID %s read back, want %s", s.AttemptID, a1)
	}
	// A1 is given back, fenced by its own ID, and A2 starts.
	e.inTx(t, func(tx store.Tx) error {
		st, err := tx.StepGet(t.Context(), id)
		if err != nil {
			return err
		}
		st.State, st.Attempts = taskertype.StepEnqueued, 0
		return tx.StepTransition(t.Context(), &store.StepTransitionParams{Step: st, From: taskertype.StepInProgress, Attempt: a1,
			Event: taskertype.StepEventRelease, At: e.clock.Now(), Processor: Processor})
	})
	e.moveStep(t, id, taskertype.StepEventStart, func(s *taskertype.Step) { s.AttemptID, s.Attempts = a2, 1 })
	before := len(e.transitions(t, p.Task.ID, uuid.Nil))
	got, err := e.s.StepAttempts(t.Context(), []uuid.UUID{id, p.Steps[1].ID, newID(t)})
	if err != nil {
		t.Fatalf("StepAttempts: %v", err)
	}
	want := map[uuid.UUID]store.StepAttempt{
		id:            {ID: id, State: taskertype.StepInProgress, AttemptID: a2},
		p.Steps[1].ID: {ID: p.Steps[1].ID, State: taskertype.StepPending},
	}
	if len(got) != len(want) {
		t.Errorf("StepAttempts returned %d steps, want %d (an unknown ID is left out): %+v", len(got), len(want), got)
	}
	for _, a := range got {
		if a != want[a.ID] {
			t.Errorf("StepAttempts: %+v, want %+v", a, want[a.ID])
		}
	}

	late := func(st *taskertype.Step, attempt uuid.UUID) *store.StepTransitionParams {
		st.State, st.Result, st.AttemptID = taskertype.StepEnqueuedForOrchestration, json.RawMessage(`{"late": true}`), attempt
		return &store.StepTransitionParams{Step: st, From: taskertype.StepInProgress, Attempt: attempt,
			Event: taskertype.StepEventSucceed, At: e.clock.Now(), Processor: Processor}
	}
	check := func(how string, err error) {
		t.Helper()
		var stale *taskertype.StaleStateError
		if !errors.As(err, &stale) || !errors.Is(err, taskertype.ErrStaleState) {
			t.Fatalf("%s: the late outcome of a superseded attempt: %v, want a *StaleStateError", how, err)
		}
		if stale.Kind != "step" || stale.ID != id.String() {
			t.Errorf("%s: stale error %+v, want step %s", how, stale, id)
		}
	}
	// Without reading the step first (a step from a cache).
	err = e.s.InTx(t.Context(), func(tx store.Tx) error {
		st := *p.Steps[0]
		st.Attempts = 1
		return tx.StepTransition(t.Context(), late(&st, a1))
	})
	check("unread step", err)
	// After reading it in the same transaction.
	err = e.s.InTx(t.Context(), func(tx store.Tx) error {
		st, err := tx.StepGet(t.Context(), id)
		if err != nil {
			return err
		}
		return tx.StepTransition(t.Context(), late(st, a1))
	})
	check("read step", err)
	if s := e.steps(t, p.Task.ID)["a"]; s.State != taskertype.StepInProgress || s.AttemptID != a2 || s.Result != nil {
		t.Errorf("the refused outcome changed the step: state %s, attempt %s, result %s", s.State, s.AttemptID, s.Result)
	}
	if after := len(e.transitions(t, p.Task.ID, uuid.Nil)); after != before {
		t.Errorf("%d transitions recorded by refused outcomes", after-before)
	}

	// The attempt that holds the step reports.
	e.inTx(t, func(tx store.Tx) error {
		st := *p.Steps[0]
		st.Attempts = 1
		return tx.StepTransition(t.Context(), late(&st, a2))
	})
	if s := e.steps(t, p.Task.ID)["a"]; s.State != taskertype.StepEnqueuedForOrchestration || s.AttemptID != a2 || !jsonEqual(s.Result, []byte(`{"late": true}`)) {
		t.Errorf("the current attempt's outcome: state %s, attempt %s, result %s", s.State, s.AttemptID, s.Result)
	}
}

// testAttemptInCreatingTx: a step started in the transaction that created
// its task keeps its attempt ID (the backend may insert the step as it is
// at the commit).
func testAttemptInCreatingTx(t *testing.T, e *env) {
	p := diamond(t, e)
	a1 := newID(t)
	e.inTx(t, func(tx store.Tx) error {
		if err := tx.TaskCreate(t.Context(), p); err != nil {
			return err
		}
		st := *p.Steps[0]
		st.DependsOn = nil
		for _, ev := range []taskertype.StepEvent{taskertype.StepEventEnqueue, taskertype.StepEventStart} {
			from := st.State
			to, err := taskertype.NextStepState(from, ev)
			if err != nil {
				return err
			}
			st.State = to
			if ev == taskertype.StepEventStart {
				st.AttemptID, st.Attempts = a1, 1
			}
			if err := tx.StepTransition(t.Context(), &store.StepTransitionParams{Step: &st, From: from, Event: ev,
				At: e.clock.Now(), Processor: Processor}); err != nil {
				return err
			}
		}
		return nil
	})
	if s := e.steps(t, p.Task.ID)["a"]; s.State != taskertype.StepInProgress || s.AttemptID != a1 {
		t.Errorf("a step started where it was created: state %s, attempt %s; want in_progress, %s", s.State, s.AttemptID, a1)
	}
}
