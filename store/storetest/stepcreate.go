package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

func init() {
	cases = append(cases,
		struct {
			name string
			fn   func(t *testing.T, e *env)
		}{"steps created in a task that exists read back with their edges, in template order, and are logged", testStepCreate},
		struct {
			name string
			fn   func(t *testing.T, e *env)
		}{"steps created for a missing task, under a taken name or with an unknown dependency are refused and nothing is created", testStepCreateInvalid},
	)
}

// branch returns a step to add to the diamond task: it depends on deps.
func branch(t *testing.T, name string, pos int, deps ...uuid.UUID) *taskertype.Step {
	return &taskertype.Step{ID: newID(t), Name: name, Handler: "handle_" + name, Position: pos,
		Retry:   taskertype.RetryPolicy{Retryable: true, MaxAttempts: 2, Backoff: taskertype.BackoffLinear, Base: time.Second},
		Timeout: time.Minute, DependsOn: deps}
}

func testStepCreate(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	a, d := p.Steps[0], p.Steps[3]
	before := e.taskGet(t, p.Task.ID).Revision
	e.clock.Advance(time.Second)
	at := e.clock.Now()
	// x between a and b in template order, y after d, depending on x and d.
	x := branch(t, "x", 1, a.ID)
	x.Position = 1
	y := branch(t, "y", 5, x.ID, d.ID)
	e.inTx(t, func(tx store.Tx) error {
		if _, err := tx.TaskGetForUpdate(t.Context(), p.Task.ID); err != nil {
			return err
		}
		if _, err := tx.StepList(t.Context(), p.Task.ID); err != nil {
			return err
		}
		if err := tx.StepCreate(t.Context(), &store.StepCreateParams{TaskID: p.Task.ID, Steps: []*taskertype.Step{y, x}, At: at, Processor: Processor}); err != nil {
			return err
		}
		// The transaction sees them at once, with their edges.
		in, err := tx.StepList(t.Context(), p.Task.ID)
		if err != nil {
			return err
		}
		if len(in) != 6 {
			t.Errorf("StepList in the transaction: %d steps, want 6", len(in))
		}
		return nil
	})
	steps, err := e.s.StepList(t.Context(), p.Task.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range steps {
		names = append(names, s.Name)
	}
	// Position 1 holds b and x: by name.
	if want := []string{"a", "b", "x", "c", "d", "y"}; !slices.Equal(names, want) {
		t.Fatalf("StepList after StepCreate: %v, want %v", names, want)
	}
	got := e.steps(t, p.Task.ID)
	if s := got["y"]; s.State != taskertype.StepPending || s.Handler != "handle_y" || s.Timeout != time.Minute ||
		s.Retry != y.Retry || !s.CreatedAt.Equal(at) || s.TaskID != p.Task.ID {
		t.Errorf("created step y read back as %+v", s)
	}
	if deps := sortedIDs(got["y"].DependsOn); !slices.Equal(deps, sortedIDs([]uuid.UUID{x.ID, d.ID})) {
		t.Errorf("y depends on %v, want x and d", deps)
	}
	if deps := got["x"].DependsOn; !slices.Equal(deps, []uuid.UUID{a.ID}) {
		t.Errorf("x depends on %v, want a", deps)
	}
	tr := e.transitions(t, p.Task.ID, y.ID)
	if len(tr) != 1 || tr[0].From != "" || tr[0].To != string(taskertype.StepPending) || tr[0].Event != string(taskertype.StepEventCreate) ||
		!tr[0].At.Equal(at) || tr[0].Processor != Processor {
		t.Errorf("transitions of a created step: %+v; want one create record", tr)
	}
	if r := e.taskGet(t, p.Task.ID).Revision; r <= before {
		t.Errorf("the task's revision stayed %d after steps were created (was %d)", r, before)
	}
	// Its dependencies' results reach it.
	e.moveStep(t, x.ID, taskertype.StepEventEnqueue, nil)
	e.inTx(t, func(tx store.Tx) error {
		in, err := tx.StepInputs(t.Context(), y.ID)
		if err != nil {
			return err
		}
		if _, ok := in.Results["x"]; !ok || len(in.Results) != 2 {
			t.Errorf("inputs of y: results %v, want x and d", in.Results)
		}
		return nil
	})
	// A created step moves like any other.
	if s := e.steps(t, p.Task.ID)["x"]; s.State != taskertype.StepEnqueued {
		t.Errorf("x is %s after enqueue, want enqueued", s.State)
	}
}

func testStepCreateInvalid(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	a := p.Steps[0]
	try := func(name string, params *store.StepCreateParams, want error) {
		t.Helper()
		err := e.s.InTx(t.Context(), func(tx store.Tx) error { return tx.StepCreate(t.Context(), params) })
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want an error wrapping %v", name, err, want)
		}
	}
	try("a missing task", &store.StepCreateParams{TaskID: newID(t), Steps: []*taskertype.Step{branch(t, "x", 4)}}, taskertype.ErrNotFound)
	try("a taken name", &store.StepCreateParams{TaskID: p.Task.ID, Steps: []*taskertype.Step{branch(t, "b", 4, a.ID)}}, taskertype.ErrInvalid)
	try("an unknown dependency", &store.StepCreateParams{TaskID: p.Task.ID, Steps: []*taskertype.Step{branch(t, "x", 4, newID(t))}}, taskertype.ErrInvalid)
	x := branch(t, "x", 4)
	y := branch(t, "y", 5, x.ID)
	x.DependsOn = []uuid.UUID{y.ID}
	try("a cycle among the new steps", &store.StepCreateParams{TaskID: p.Task.ID, Steps: []*taskertype.Step{x, y}}, taskertype.ErrInvalid)
	try("no steps", &store.StepCreateParams{TaskID: p.Task.ID}, taskertype.ErrInvalid)
	if n := len(e.steps(t, p.Task.ID)); n != 4 {
		t.Errorf("the task has %d steps after refused creations, want 4", n)
	}
}
