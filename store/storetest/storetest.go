// Package storetest is the conformance suite of store.Store: every driver
// runs it unchanged from its own tests.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{Name: "sqlite", New: newStore})
//	}
//
// Checking for leaked goroutines (goleak) is the caller's job, in its TestMain.
package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// Harness makes the stores under test.
type Harness struct {
	// Name names the driver in failure messages.
	Name string
	// New returns a fresh, empty store and the queue that shares its
	// database (store.Tx.MessageSend sends there), or a nil queue if the
	// driver has none; the tests that need it are then skipped. New closes
	// both (t.Cleanup) at the end of the test.
	New func(t *testing.T, clock taskertype.Clock) (store.Store, queue.Queue)
}

// Start is the fake clock's time at the start of each test.
var Start = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

// Processor is the processor recorded by the suite's transitions.
const Processor = "storetest@host:1"

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := testclock.New(Start)
			s, q := h.New(t, clock)
			if s == nil {
				t.Fatalf("%s: New returned a nil store", h.Name)
			}
			tc.fn(t, &env{s: s, q: q, clock: clock})
		})
	}
}

var cases = []struct {
	name string
	fn   func(t *testing.T, e *env)
}{
	{"a created task and its steps read back with their edges", testCreateReadBack},
	{"creating a task records a create transition for it and for each step", testCreateTransitions},
	{"a task with a dependency outside it, a cycle or a duplicate is refused as invalid", testCreateInvalid},
	{"creating a task twice is refused as invalid", testCreateTwice},
	{"a task transition moves the task, dates it and records it", testTaskTransition},
	{"a step transition writes the step's fields", testStepTransition},
	{"a transition's parameters and step are not kept: a caller may reuse them at once", testParamsNotKept},
	{"a transition from the wrong state fails as stale and changes nothing", testStale},
	{"a transition of a record that does not exist fails as not found", testTransitionNotFound},
	{"an illegal transition is refused", testIllegal},
	{"reads of unknown records fail as not found", testNotFound},
	{"a rolled-back transaction leaves no task and no message", testRollback},
	{"a message sent in a committed transaction wakes subscribers and can be claimed", testMessageCommitted},
	{"transitions are listed in the order they were applied", testTransitionOrder},
	{"step inputs carry the context and the dependency results by name", testStepInputs},
	{"step inputs carry the task's correlation ids however the transaction holds the task", testStepInputsCorrelation},
	{"a step's ancestor results are those of its completed ancestors, by name, and no other step's", testStepAncestorResults},
	{"transitions listed after a cursor are the later ones only", testTransitionsAfter},
	{"task list filters by state and lists the newest first", testTaskList},
	{"task list pages by offset and namespace; task count counts the same filter", testTaskPages},
	{"concurrent transactions on one task serialize", testConcurrentCAS},
	{"a panic in fn rolls back and re-panics", testPanic},
	{"a claim and an acknowledgement in a transaction hold only if it commits", testTxClaimAck},
	{"a task moved several times in one transaction ends in its last state with every hop logged", testTaskHops},
	{"steps moved several times in one transaction read back as moved, inside and after it", testStepHops},
	{"a task's revision counts its transitions and its steps entering or leaving flight", testRevision},
	{"prefetch changes no answer, skips unknown tasks and keeps what the transaction changed", testPrefetch},
	{"templates are stored once per version, read back by version or latest, and changed only by a put with Replace", testTemplates},
	{"an attempt's outcome is stored only while the step carries its attempt ID", testAttemptFence},
	{"an attempt's store lease is held with its start, runs by the database's clock and is renewed only while the step runs it", testStepLease},
	{"a notification wakes the subscribers of its name once the transaction commits, never on a rollback", testNotify},
	{"a step started in the transaction that created it keeps its attempt ID", testAttemptInCreatingTx},
	{"DLQ entries: one pending per task, read back, updated once out of pending, listed, counted", testDLQ},
	{"stale task queries follow the times and states given", testStaleLists},
	{"a lock is held once until released", testLockTry},
	{"a task's request fields read back; its identity hash is unique and found by TaskList", testRequestAndIdentity},
	{"analytics: performance over a window, the slowest steps and tasks, counts by state", testAnalytics},
}

type env struct {
	s     store.Store
	q     queue.Queue
	clock *testclock.Clock
}

func needQueue(t *testing.T, e *env) {
	t.Helper()
	if e.q == nil {
		t.Skip("the driver has no co-located queue (Harness.New returned nil): store.Tx.MessageSend is not tested")
	}
}

func newID(t *testing.T) uuid.UUID {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// diamond describes a task of four steps: a; b and c after a; d after b and c.
func diamond(t *testing.T, e *env) *store.TaskCreateParams {
	t.Helper()
	a, b, c, d := newID(t), newID(t), newID(t), newID(t)
	retry := taskertype.RetryPolicy{Retryable: true, MaxAttempts: 3, Backoff: taskertype.BackoffExponential,
		Base: time.Second, Cap: time.Minute, Jitter: 0.1}
	step := func(id uuid.UUID, name string, pos int, deps ...uuid.UUID) *taskertype.Step {
		return &taskertype.Step{ID: id, Name: name, Handler: "handle_" + name, Position: pos, Retry: retry,
			Timeout: 90 * time.Second, DependsOn: deps}
	}
	return &store.TaskCreateParams{
		Task: &taskertype.Task{ID: newID(t), Namespace: "shop", Name: "order", Version: "1.2.0",
			Context: json.RawMessage(`{"order_id": 42, "items": ["a", "b"]}`)},
		Steps: []*taskertype.Step{
			step(a, "a", 0),
			step(b, "b", 1, a),
			step(c, "c", 2, a),
			step(d, "d", 3, c, b),
		},
		At:        e.clock.Now(),
		Processor: Processor,
	}
}

func (e *env) inTx(t *testing.T, fn func(tx store.Tx) error) {
	t.Helper()
	if err := e.s.InTx(t.Context(), fn); err != nil {
		t.Fatalf("InTx: %v", err)
	}
}

func (e *env) create(t *testing.T, p *store.TaskCreateParams) {
	t.Helper()
	e.inTx(t, func(tx store.Tx) error { return tx.TaskCreate(t.Context(), p) })
}

func (e *env) taskGet(t *testing.T, id uuid.UUID) *taskertype.Task {
	t.Helper()
	task, err := e.s.TaskGet(t.Context(), id)
	if err != nil {
		t.Fatalf("TaskGet(%s): %v", id, err)
	}
	return task
}

func (e *env) steps(t *testing.T, taskID uuid.UUID) map[string]*taskertype.Step {
	t.Helper()
	steps, err := e.s.StepList(t.Context(), taskID)
	if err != nil {
		t.Fatalf("StepList(%s): %v", taskID, err)
	}
	m := make(map[string]*taskertype.Step, len(steps))
	for _, s := range steps {
		m[s.Name] = s
	}
	return m
}

func (e *env) transitions(t *testing.T, taskID, stepID uuid.UUID) []*taskertype.Transition {
	t.Helper()
	ts, err := e.s.TransitionList(t.Context(), &store.TransitionListParams{TaskID: taskID, StepID: stepID})
	if err != nil {
		t.Fatalf("TransitionList(%s, %s): %v", taskID, stepID, err)
	}
	return ts
}

// moveStep applies a step transition in its own transaction, the new state
// and fields set by edit.
func (e *env) moveStep(t *testing.T, id uuid.UUID, event taskertype.StepEvent, edit func(s *taskertype.Step)) *taskertype.Step {
	t.Helper()
	var st *taskertype.Step
	e.inTx(t, func(tx store.Tx) error {
		var err error
		st, err = tx.StepGet(t.Context(), id)
		if err != nil {
			return err
		}
		from := st.State
		to, err := taskertype.NextStepState(from, event)
		if err != nil {
			return err
		}
		st.State = to
		if edit != nil {
			edit(st)
		}
		return tx.StepTransition(t.Context(), &store.StepTransitionParams{Step: st, From: from, Event: event,
			At: e.clock.Now(), Processor: Processor})
	})
	return st
}

func (e *env) moveTask(t *testing.T, id uuid.UUID, from taskertype.TaskState, event taskertype.TaskEvent) taskertype.TaskState {
	t.Helper()
	to, err := taskertype.NextTaskState(from, event)
	if err != nil {
		t.Fatal(err)
	}
	e.inTx(t, func(tx store.Tx) error {
		return tx.TaskTransition(t.Context(), &store.TaskTransitionParams{ID: id, From: from, To: to, Event: event,
			At: e.clock.Now(), Processor: Processor})
	})
	return to
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func sortedIDs(ids []uuid.UUID) []uuid.UUID {
	s := slices.Clone(ids)
	slices.SortFunc(s, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return s
}

func testCreateReadBack(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	at := p.At

	task := e.taskGet(t, p.Task.ID)
	if task.ID != p.Task.ID || task.Namespace != "shop" || task.Name != "order" || task.Version != "1.2.0" ||
		task.State != taskertype.TaskPending {
		t.Errorf("task read back as %+v", task)
	}
	if !jsonEqual(task.Context, p.Task.Context) {
		t.Errorf("context read back as %s, want %s", task.Context, p.Task.Context)
	}
	if !task.CreatedAt.Equal(at) || !task.UpdatedAt.Equal(at) || !task.FinishedAt.IsZero() {
		t.Errorf("task times: created %v, updated %v, finished %v; want %v, %v, zero", task.CreatedAt, task.UpdatedAt, task.FinishedAt, at, at)
	}

	steps, err := e.s.StepList(t.Context(), p.Task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != len(p.Steps) {
		t.Fatalf("StepList: %d steps, want %d", len(steps), len(p.Steps))
	}
	for i, got := range steps {
		want := p.Steps[i] // the list is in template order
		if got.ID != want.ID || got.TaskID != p.Task.ID || got.Name != want.Name || got.Handler != want.Handler ||
			got.Position != want.Position || got.State != taskertype.StepPending || got.Attempts != 0 ||
			got.Retry != want.Retry || got.Timeout != want.Timeout {
			t.Errorf("step %d read back as %+v, want %+v", i, got, want)
		}
		if !slices.Equal(sortedIDs(got.DependsOn), sortedIDs(want.DependsOn)) {
			t.Errorf("step %s depends on %v, want %v", want.Name, got.DependsOn, want.DependsOn)
		}
		if got.Result != nil || got.Failure != nil || !got.NextRetryAt.IsZero() || !got.StartedAt.IsZero() || !got.FinishedAt.IsZero() {
			t.Errorf("new step %s has result %s, failure %v, next retry %v, started %v, finished %v; want none",
				got.Name, got.Result, got.Failure, got.NextRetryAt, got.StartedAt, got.FinishedAt)
		}
		if !got.CreatedAt.Equal(at) || !got.UpdatedAt.Equal(at) {
			t.Errorf("step %s times: created %v, updated %v, want %v", got.Name, got.CreatedAt, got.UpdatedAt, at)
		}
	}

	// The same through a transaction.
	e.inTx(t, func(tx store.Tx) error {
		task, err := tx.TaskGetForUpdate(t.Context(), p.Task.ID)
		if err != nil {
			return err
		}
		if task.State != taskertype.TaskPending || task.Name != p.Task.Name || task.Context != nil {
			t.Errorf("TaskGetForUpdate: state %s, name %q, context %s; want pending, %q, no context", task.State, task.Name, task.Context, p.Task.Name)
		}
		d, err := tx.StepGet(t.Context(), p.Steps[3].ID)
		if err != nil {
			return err
		}
		if d.Name != "d" || d.Handler != p.Steps[3].Handler || d.Retry != p.Steps[3].Retry || d.Timeout != p.Steps[3].Timeout {
			t.Errorf("StepGet(d): %+v; want the step as created", d)
		}
		inTx, err := tx.StepList(t.Context(), p.Task.ID)
		if err != nil {
			return err
		}
		if len(inTx) != len(steps) || !slices.Equal(sortedIDs(inTx[3].DependsOn), sortedIDs(steps[3].DependsOn)) {
			t.Errorf("Tx.StepList differs from Store.StepList")
		}
		return nil
	})
}

func testCreateTransitions(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	ts := e.transitions(t, p.Task.ID, uuid.Nil)
	if len(ts) != 1+len(p.Steps) {
		t.Fatalf("%d transitions after create, want %d", len(ts), 1+len(p.Steps))
	}
	for i, tr := range ts {
		wantStep := uuid.Nil
		if i > 0 {
			wantStep = p.Steps[i-1].ID
		}
		if tr.TaskID != p.Task.ID || tr.StepID != wantStep || tr.From != "" || tr.To != "pending" ||
			tr.Event != "create" || !tr.At.Equal(p.At) || tr.Processor != Processor {
			t.Errorf("transition %d: %+v, want the create of %v", i, tr, wantStep)
		}
	}
}

func testCreateInvalid(t *testing.T, e *env) {
	for _, c := range []struct {
		name string
		edit func(p *store.TaskCreateParams)
	}{
		{"a dependency on a step of no task", func(p *store.TaskCreateParams) { p.Steps[1].DependsOn = []uuid.UUID{newID(t)} }},
		{"a cycle", func(p *store.TaskCreateParams) { p.Steps[0].DependsOn = []uuid.UUID{p.Steps[3].ID} }},
		{"a step depending on itself", func(p *store.TaskCreateParams) { p.Steps[0].DependsOn = []uuid.UUID{p.Steps[0].ID} }},
		{"two steps with one name", func(p *store.TaskCreateParams) { p.Steps[2].Name = "b" }},
		{"two steps with one ID", func(p *store.TaskCreateParams) { p.Steps[2].ID = p.Steps[1].ID }},
		{"no task ID", func(p *store.TaskCreateParams) { p.Task.ID = uuid.Nil }},
	} {
		p := diamond(t, e)
		c.edit(p)
		err := e.s.InTx(t.Context(), func(tx store.Tx) error { return tx.TaskCreate(t.Context(), p) })
		if !errors.Is(err, taskertype.ErrInvalid) {
			t.Errorf("%s: %v, want an error wrapping ErrInvalid", c.name, err)
		}
		if p.Task.ID != uuid.Nil {
			if _, err := e.s.TaskGet(t.Context(), p.Task.ID); !errors.Is(err, taskertype.ErrNotFound) {
				t.Errorf("%s: the refused task was stored (TaskGet: %v)", c.name, err)
			}
		}
	}
}

func testCreateTwice(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	err := e.s.InTx(t.Context(), func(tx store.Tx) error { return tx.TaskCreate(t.Context(), p) })
	if !errors.Is(err, taskertype.ErrInvalid) || !errors.Is(err, store.ErrTaskExists) {
		t.Fatalf("creating a task twice: %v, want an error wrapping ErrInvalid and store.ErrTaskExists", err)
	}
	// A new task whose step IDs are taken.
	p2 := diamond(t, e)
	p2.Steps[0].ID = p.Steps[0].ID
	p2.Steps[1].DependsOn = []uuid.UUID{p2.Steps[0].ID}
	p2.Steps[2].DependsOn = []uuid.UUID{p2.Steps[0].ID}
	err = e.s.InTx(t.Context(), func(tx store.Tx) error { return tx.TaskCreate(t.Context(), p2) })
	if !errors.Is(err, taskertype.ErrInvalid) || !errors.Is(err, store.ErrTaskExists) {
		t.Fatalf("creating a task with a step ID already taken: %v, want an error wrapping ErrInvalid and store.ErrTaskExists", err)
	}
	// Twice in one transaction.
	p3 := diamond(t, e)
	err = e.s.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.TaskCreate(t.Context(), p3); err != nil {
			return err
		}
		return tx.TaskCreate(t.Context(), p3)
	})
	if !errors.Is(err, store.ErrTaskExists) {
		t.Fatalf("creating a task twice in one transaction: %v, want an error wrapping store.ErrTaskExists", err)
	}
	if _, err := e.s.TaskGet(t.Context(), p2.Task.ID); !errors.Is(err, taskertype.ErrNotFound) {
		t.Fatalf("the refused task was stored (TaskGet: %v)", err)
	}
}

func testTaskTransition(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	id := p.Task.ID

	e.clock.Advance(time.Second)
	state := e.moveTask(t, id, taskertype.TaskPending, taskertype.TaskEventStart)
	task := e.taskGet(t, id)
	if task.State != taskertype.TaskInitializing || !task.UpdatedAt.Equal(e.clock.Now()) || !task.FinishedAt.IsZero() {
		t.Fatalf("after start: state %s, updated %v, finished %v; want initializing, %v, zero", task.State, task.UpdatedAt, task.FinishedAt, e.clock.Now())
	}
	if !task.CreatedAt.Equal(p.At) {
		t.Errorf("a transition changed CreatedAt to %v", task.CreatedAt)
	}

	state = e.moveTask(t, id, state, taskertype.TaskEventReadyStepsFound)
	e.clock.Advance(time.Second)
	state = e.moveTask(t, id, state, taskertype.TaskEventEnqueueFailed) // error: terminal
	if task := e.taskGet(t, id); task.State != taskertype.TaskError || !task.FinishedAt.Equal(e.clock.Now()) {
		t.Fatalf("after a terminal transition: state %s, finished %v; want error, %v", task.State, task.FinishedAt, e.clock.Now())
	}
	e.clock.Advance(time.Second)
	e.moveTask(t, id, state, taskertype.TaskEventReset)
	if task := e.taskGet(t, id); task.State != taskertype.TaskPending || !task.FinishedAt.IsZero() {
		t.Fatalf("after a reset: state %s, finished %v; want pending, zero", task.State, task.FinishedAt)
	}

	ts := e.transitions(t, id, uuid.Nil)
	last := ts[len(ts)-1]
	if last.StepID != uuid.Nil || last.From != "error" || last.To != "pending" || last.Event != "reset" ||
		!last.At.Equal(e.clock.Now()) || last.Processor != Processor {
		t.Errorf("last transition %+v, want the reset", last)
	}
}

func testStepTransition(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	id := p.Steps[0].ID

	e.clock.Advance(time.Second)
	e.moveStep(t, id, taskertype.StepEventEnqueue, nil)
	started := e.clock.Now()
	e.moveStep(t, id, taskertype.StepEventStart, func(s *taskertype.Step) { s.Attempts, s.StartedAt = 1, started })
	e.clock.Advance(time.Second)
	failure := &taskertype.StepFailure{Kind: taskertype.FailureHandler, Message: "card declined", Retryable: true,
		RetryAfter: 3 * time.Second, Attempt: 1}
	finished := e.clock.Now()
	e.moveStep(t, id, taskertype.StepEventFail, func(s *taskertype.Step) { s.Failure, s.FinishedAt = failure, finished })
	nextRetry := e.clock.Now().Add(3 * time.Second)
	e.moveStep(t, id, taskertype.StepEventScheduleRetry, func(s *taskertype.Step) { s.NextRetryAt = nextRetry })

	got := e.steps(t, p.Task.ID)["a"]
	if got.State != taskertype.StepWaitingForRetry || got.Attempts != 1 || !got.StartedAt.Equal(started) ||
		!got.FinishedAt.Equal(finished) || !got.NextRetryAt.Equal(nextRetry) || got.Failure == nil || *got.Failure != *failure {
		t.Fatalf("after a failed attempt: %+v (failure %+v)", got, got.Failure)
	}
	if !got.UpdatedAt.Equal(e.clock.Now()) || !got.CreatedAt.Equal(p.At) {
		t.Errorf("times: created %v, updated %v; want %v, %v", got.CreatedAt, got.UpdatedAt, p.At, e.clock.Now())
	}

	e.clock.Advance(3 * time.Second)
	e.moveStep(t, id, taskertype.StepEventRetry, func(s *taskertype.Step) { s.NextRetryAt = time.Time{} })
	e.moveStep(t, id, taskertype.StepEventEnqueue, nil)
	started2 := e.clock.Now()
	e.moveStep(t, id, taskertype.StepEventStart, func(s *taskertype.Step) { s.Attempts, s.StartedAt, s.FinishedAt = 2, started2, time.Time{} })
	result := json.RawMessage(`{"charge_id": "ch_1"}`)
	e.moveStep(t, id, taskertype.StepEventSucceed, func(s *taskertype.Step) {
		s.Result, s.Failure, s.FinishedAt = result, nil, e.clock.Now()
	})
	e.moveStep(t, id, taskertype.StepEventComplete, nil)

	got = e.steps(t, p.Task.ID)["a"]
	if got.State != taskertype.StepComplete || got.Attempts != 2 || !got.StartedAt.Equal(started2) ||
		!got.NextRetryAt.IsZero() || got.Failure != nil || !jsonEqual(got.Result, result) {
		t.Fatalf("after a successful attempt: %+v (failure %+v, result %s)", got, got.Failure, got.Result)
	}
	// The fields not written by a transition are as created.
	if got.Name != "a" || got.Handler != "handle_a" || got.Retry != p.Steps[0].Retry || got.Timeout != p.Steps[0].Timeout {
		t.Errorf("a transition changed the step's definition: %+v", got)
	}
	ts := e.transitions(t, p.Task.ID, id)
	var events []string
	for _, tr := range ts {
		events = append(events, tr.Event)
	}
	want := []string{"create", "enqueue", "start", "fail", "schedule_retry", "retry", "enqueue", "start", "succeed", "complete"}
	if !slices.Equal(events, want) {
		t.Errorf("step transitions %v, want %v", events, want)
	}
}

// testParamsNotKept reuses one StepTransitionParams, one Step and one
// TaskTransitionParams for every transition of a transaction, as
// transition.Recorder does, and scribbles over them after each call: what
// the store reads back, inside the transaction and after it, and logs is
// what each call was given.
func testParamsNotKept(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	ctx, a, task := t.Context(), p.Steps[0].ID, p.Task.ID
	var (
		params  store.StepTransitionParams
		scratch taskertype.Step
		tp      store.TaskTransitionParams
	)
	scribble := func() {
		scratch = taskertype.Step{ID: a, TaskID: task, State: "scribbled", Attempts: 99, Result: json.RawMessage(`"junk"`),
			Failure: &taskertype.StepFailure{Message: "junk"}, StartedAt: Start.Add(time.Hour)}
		params = store.StepTransitionParams{From: "scribbled", Event: "scribbled", Processor: "scribbled"}
		tp = store.TaskTransitionParams{ID: a, From: "scribbled", To: "scribbled", Event: "scribbled", Processor: "scribbled"}
	}
	e.inTx(t, func(tx store.Tx) error {
		from := taskertype.TaskPending
		for _, ev := range []taskertype.TaskEvent{taskertype.TaskEventStart, taskertype.TaskEventReadyStepsFound} {
			to, err := taskertype.NextTaskState(from, ev)
			if err != nil {
				return err
			}
			tp = store.TaskTransitionParams{ID: task, From: from, To: to, Event: ev, At: e.clock.Now(), Processor: Processor}
			if err := tx.TaskTransition(ctx, &tp); err != nil {
				return err
			}
			scribble()
			from = to
		}
		st, err := tx.StepGet(ctx, a)
		if err != nil {
			return err
		}
		for _, ev := range []taskertype.StepEvent{taskertype.StepEventEnqueue, taskertype.StepEventStart, taskertype.StepEventSucceed} {
			scratch = *st
			if scratch.State, err = taskertype.NextStepState(st.State, ev); err != nil {
				return err
			}
			switch ev {
			case taskertype.StepEventStart:
				scratch.Attempts, scratch.StartedAt = 1, e.clock.Now()
			case taskertype.StepEventSucceed:
				scratch.Result = json.RawMessage(`{"v":1}`)
			}
			params = store.StepTransitionParams{Step: &scratch, From: st.State, Event: ev, At: e.clock.Now(), Processor: Processor}
			if err := tx.StepTransition(ctx, &params); err != nil {
				return err
			}
			*st = scratch
			scribble()
			got, err := tx.StepGet(ctx, a)
			if err != nil {
				return err
			}
			sameResult := len(got.Result) == 0 && len(st.Result) == 0 || jsonEqual(got.Result, st.Result)
			if got.State != st.State || got.Attempts != st.Attempts || !sameResult || got.Failure != nil {
				t.Errorf("after %s, in the transaction: %s, %d attempts, result %s, failure %v; want %s, %d, %s, none",
					ev, got.State, got.Attempts, got.Result, got.Failure, st.State, st.Attempts, st.Result)
			}
		}
		return nil
	})
	got := e.steps(t, task)["a"]
	if got.State != taskertype.StepEnqueuedForOrchestration || got.Attempts != 1 || !jsonEqual(got.Result, json.RawMessage(`{"v":1}`)) ||
		got.Failure != nil || !got.StartedAt.Equal(e.clock.Now()) {
		t.Fatalf("after the commit: %s, %d attempts, result %s, failure %v, started %v", got.State, got.Attempts, got.Result, got.Failure, got.StartedAt)
	}
	if tk := e.taskGet(t, task); tk.State != taskertype.TaskEnqueuingSteps {
		t.Fatalf("the task is %s, want enqueuing_steps", tk.State)
	}
	var evs, tevs []string
	for _, tr := range e.transitions(t, task, uuid.Nil) {
		if tr.Processor != Processor {
			t.Fatalf("transition %+v: processor %q", tr, tr.Processor)
		}
		switch tr.StepID {
		case a:
			evs = append(evs, tr.Event)
		case uuid.Nil:
			tevs = append(tevs, tr.From+">"+tr.To)
		}
	}
	if want := []string{"create", "enqueue", "start", "succeed"}; !slices.Equal(evs, want) {
		t.Fatalf("step transitions %v, want %v", evs, want)
	}
	if want := []string{">pending", "pending>initializing", "initializing>enqueuing_steps"}; !slices.Equal(tevs, want) {
		t.Fatalf("task transitions %v, want %v", tevs, want)
	}
}

func testStale(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	before := len(e.transitions(t, p.Task.ID, uuid.Nil))

	err := e.s.InTx(t.Context(), func(tx store.Tx) error {
		return tx.TaskTransition(t.Context(), &store.TaskTransitionParams{ID: p.Task.ID,
			From: taskertype.TaskInitializing, To: taskertype.TaskEnqueuingSteps, Event: taskertype.TaskEventReadyStepsFound,
			At: e.clock.Now(), Processor: Processor})
	})
	var stale *taskertype.StaleStateError
	if !errors.As(err, &stale) || !errors.Is(err, taskertype.ErrStaleState) {
		t.Fatalf("task transition from the wrong state: %v, want a *StaleStateError", err)
	}
	if stale.Kind != "task" || stale.ID != p.Task.ID.String() || stale.Expected != "initializing" || stale.Actual != "pending" {
		t.Errorf("stale error %+v, want task %s expected initializing, actual pending", stale, p.Task.ID)
	}

	st := *p.Steps[0]
	st.State = taskertype.StepInProgress
	err = e.s.InTx(t.Context(), func(tx store.Tx) error {
		return tx.StepTransition(t.Context(), &store.StepTransitionParams{Step: &st, From: taskertype.StepEnqueued,
			Event: taskertype.StepEventStart, At: e.clock.Now(), Processor: Processor})
	})
	if !errors.As(err, &stale) {
		t.Fatalf("step transition from the wrong state: %v, want a *StaleStateError", err)
	}
	if stale.Kind != "step" || stale.ID != st.ID.String() || stale.Expected != "enqueued" || stale.Actual != "pending" {
		t.Errorf("stale error %+v, want step %s expected enqueued, actual pending", stale, st.ID)
	}

	if task := e.taskGet(t, p.Task.ID); task.State != taskertype.TaskPending || !task.UpdatedAt.Equal(p.At) {
		t.Errorf("the stale transition changed the task: %+v", task)
	}
	if s := e.steps(t, p.Task.ID)["a"]; s.State != taskertype.StepPending || !s.UpdatedAt.Equal(p.At) {
		t.Errorf("the stale transition changed the step: %+v", s)
	}
	if after := len(e.transitions(t, p.Task.ID, uuid.Nil)); after != before {
		t.Errorf("%d transitions recorded by stale transitions", after-before)
	}

	// A stale transition fails, but the transaction goes on if fn goes on.
	e.inTx(t, func(tx store.Tx) error {
		err := tx.TaskTransition(t.Context(), &store.TaskTransitionParams{ID: p.Task.ID,
			From: taskertype.TaskInitializing, To: taskertype.TaskEnqueuingSteps, Event: taskertype.TaskEventReadyStepsFound,
			At: e.clock.Now(), Processor: Processor})
		if !errors.Is(err, taskertype.ErrStaleState) {
			t.Errorf("stale transition in a transaction: %v", err)
		}
		return tx.TaskTransition(t.Context(), &store.TaskTransitionParams{ID: p.Task.ID,
			From: taskertype.TaskPending, To: taskertype.TaskInitializing, Event: taskertype.TaskEventStart,
			At: e.clock.Now(), Processor: Processor})
	})
	if task := e.taskGet(t, p.Task.ID); task.State != taskertype.TaskInitializing {
		t.Errorf("state %s after a stale then a good transition, want initializing", task.State)
	}
}

func testTransitionNotFound(t *testing.T, e *env) {
	missing := newID(t)
	err := e.s.InTx(t.Context(), func(tx store.Tx) error {
		return tx.TaskTransition(t.Context(), &store.TaskTransitionParams{ID: missing,
			From: taskertype.TaskPending, To: taskertype.TaskInitializing, Event: taskertype.TaskEventStart,
			At: e.clock.Now(), Processor: Processor})
	})
	if !errors.Is(err, taskertype.ErrNotFound) || !strings.Contains(err.Error(), missing.String()) {
		t.Errorf("transition of a missing task: %v, want ErrNotFound naming %s", err, missing)
	}
	err = e.s.InTx(t.Context(), func(tx store.Tx) error {
		return tx.StepTransition(t.Context(), &store.StepTransitionParams{
			Step: &taskertype.Step{ID: missing, TaskID: newID(t), State: taskertype.StepEnqueued},
			From: taskertype.StepPending, Event: taskertype.StepEventEnqueue, At: e.clock.Now(), Processor: Processor})
	})
	if !errors.Is(err, taskertype.ErrNotFound) || !strings.Contains(err.Error(), missing.String()) {
		t.Errorf("transition of a missing step: %v, want ErrNotFound naming %s", err, missing)
	}
}

func testIllegal(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	taskTry := func(from, to taskertype.TaskState, event taskertype.TaskEvent) error {
		return e.s.InTx(t.Context(), func(tx store.Tx) error {
			return tx.TaskTransition(t.Context(), &store.TaskTransitionParams{ID: p.Task.ID, From: from, To: to,
				Event: event, At: e.clock.Now(), Processor: Processor})
		})
	}
	stepTry := func(from, to taskertype.StepState, event taskertype.StepEvent) error {
		st := *p.Steps[0]
		st.State = to
		return e.s.InTx(t.Context(), func(tx store.Tx) error {
			return tx.StepTransition(t.Context(), &store.StepTransitionParams{Step: &st, From: from, Event: event,
				At: e.clock.Now(), Processor: Processor})
		})
	}
	var te *taskertype.TransitionError
	if err := taskTry(taskertype.TaskPending, taskertype.TaskComplete, taskertype.TaskEventAllStepsComplete); !errors.As(err, &te) ||
		!errors.Is(err, taskertype.ErrIllegalTransition) || te.Machine != "task" {
		t.Errorf("task event all_steps_complete in pending: %v, want a *TransitionError", err)
	}
	if err := taskTry(taskertype.TaskPending, taskertype.TaskComplete, taskertype.TaskEventStart); !errors.Is(err, taskertype.ErrIllegalTransition) {
		t.Errorf("task event start in pending to complete (not where start leads): %v, want ErrIllegalTransition", err)
	}
	if err := taskTry("", taskertype.TaskPending, taskertype.TaskEventCreate); !errors.Is(err, taskertype.ErrIllegalTransition) {
		t.Errorf("a second create of a task: %v, want ErrIllegalTransition", err)
	}
	if err := stepTry(taskertype.StepPending, taskertype.StepEnqueuedForOrchestration, taskertype.StepEventSucceed); !errors.As(err, &te) ||
		te.Machine != "step" {
		t.Errorf("step event succeed in pending: %v, want a *TransitionError", err)
	}
	if err := stepTry(taskertype.StepPending, taskertype.StepInProgress, taskertype.StepEventEnqueue); !errors.Is(err, taskertype.ErrIllegalTransition) {
		t.Errorf("step event enqueue in pending to in_progress: %v, want ErrIllegalTransition", err)
	}
	if task := e.taskGet(t, p.Task.ID); task.State != taskertype.TaskPending {
		t.Errorf("an illegal transition moved the task to %s", task.State)
	}
	if s := e.steps(t, p.Task.ID)["a"]; s.State != taskertype.StepPending {
		t.Errorf("an illegal transition moved the step to %s", s.State)
	}
	if n := len(e.transitions(t, p.Task.ID, uuid.Nil)); n != 1+len(p.Steps) {
		t.Errorf("%d transitions, want only the %d creates", n, 1+len(p.Steps))
	}
}

func testNotFound(t *testing.T, e *env) {
	missing := newID(t)
	if _, err := e.s.TaskGet(t.Context(), missing); !errors.Is(err, taskertype.ErrNotFound) || !strings.Contains(err.Error(), missing.String()) {
		t.Errorf("TaskGet of a missing task: %v, want ErrNotFound naming it", err)
	}
	if steps, err := e.s.StepList(t.Context(), missing); err != nil || len(steps) != 0 {
		t.Errorf("StepList of a missing task: %d steps, %v; want none", len(steps), err)
	}
	err := e.s.InTx(t.Context(), func(tx store.Tx) error {
		if _, err := tx.TaskGetForUpdate(t.Context(), missing); !errors.Is(err, taskertype.ErrNotFound) {
			t.Errorf("TaskGetForUpdate of a missing task: %v, want ErrNotFound", err)
		}
		if _, err := tx.StepGet(t.Context(), missing); !errors.Is(err, taskertype.ErrNotFound) || !strings.Contains(err.Error(), missing.String()) {
			t.Errorf("StepGet of a missing step: %v, want ErrNotFound naming it", err)
		}
		if _, err := tx.StepInputs(t.Context(), missing); !errors.Is(err, taskertype.ErrNotFound) {
			t.Errorf("StepInputs of a missing step: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var errRollback = errors.New("storetest: roll back")

func testRollback(t *testing.T, e *env) {
	needQueue(t, e)
	if err := e.q.QueueEnsure(t.Context(), "q"); err != nil {
		t.Fatal(err)
	}
	p := diamond(t, e)
	err := e.s.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.TaskCreate(t.Context(), p); err != nil {
			return err
		}
		if err := tx.MessageSend(t.Context(), &queue.SendParams{Queue: "q", Body: []byte("never")}); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errRollback)
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx returned %v, want fn's error", err)
	}
	if _, err := e.s.TaskGet(t.Context(), p.Task.ID); !errors.Is(err, taskertype.ErrNotFound) {
		t.Errorf("TaskGet after the rollback: %v, want ErrNotFound", err)
	}
	if n := len(e.transitions(t, p.Task.ID, uuid.Nil)); n != 0 {
		t.Errorf("%d transitions after the rollback", n)
	}
	e.clock.Advance(time.Hour)
	msgs, err := e.q.MessageClaim(t.Context(), &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) != 0 {
		t.Errorf("claim after the rollback: %d messages, %v; want none", len(msgs), err)
	}
	// The same task can be created afterwards.
	e.create(t, p)
}

func testMessageCommitted(t *testing.T, e *env) {
	needQueue(t, e)
	if err := e.q.QueueEnsure(t.Context(), "q"); err != nil {
		t.Fatal(err)
	}
	wakeups := e.q.Capabilities().Wakeups
	wake, cancel := e.q.Subscribe("q")
	defer cancel()
	p := diamond(t, e)
	e.inTx(t, func(tx store.Tx) error {
		if err := tx.TaskCreate(t.Context(), p); err != nil {
			return err
		}
		if err := tx.MessageSend(t.Context(), &queue.SendParams{Queue: "q", Body: []byte("step a")}); err != nil {
			return err
		}
		if wakeups {
			select {
			case <-wake:
				t.Errorf("woken before the commit")
			default:
			}
		}
		return nil
	})
	if wakeups {
		select {
		case <-wake:
		case <-time.After(5 * time.Second):
			t.Fatal("no wake-up after the commit")
		}
	}
	msgs, err := e.q.MessageClaim(t.Context(), &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "step a" {
		t.Fatalf("claim after the commit: %v, %v; want the message", msgs, err)
	}

	// A message to a queue that was never ensured fails the send, not the
	// whole store.
	err = e.s.InTx(t.Context(), func(tx store.Tx) error {
		return tx.MessageSend(t.Context(), &queue.SendParams{Queue: "nowhere"})
	})
	if !errors.Is(err, taskertype.ErrNotFound) {
		t.Errorf("MessageSend to a queue never ensured: %v, want ErrNotFound", err)
	}
}

func testTransitionOrder(t *testing.T, e *env) {
	// Enough steps that one transaction records more transitions than any
	// single batch a driver might write.
	p := diamond(t, e)
	for i := range 70 {
		p.Steps = append(p.Steps, &taskertype.Step{ID: newID(t), Name: fmt.Sprint("extra", i), Handler: "h",
			Position: 4 + i, Retry: taskertype.RetryPolicy{MaxAttempts: 1}, DependsOn: []uuid.UUID{p.Steps[0].ID}})
	}
	type key struct {
		step  uuid.UUID
		event string
	}
	var want []key
	want = append(want, key{uuid.Nil, "create"})
	for _, s := range p.Steps {
		want = append(want, key{s.ID, "create"})
	}
	e.create(t, p)

	// Interleaved task and step transitions, several in one transaction.
	a, b := p.Steps[0].ID, p.Steps[1].ID
	e.inTx(t, func(tx store.Tx) error {
		for _, tr := range []struct {
			task bool
			step uuid.UUID
			from string
			to   string
			ev   string
		}{
			{true, uuid.Nil, "pending", "initializing", "start"},
			{false, a, "pending", "enqueued", "enqueue"},
			{true, uuid.Nil, "initializing", "enqueuing_steps", "ready_steps_found"},
			{false, a, "enqueued", "in_progress", "start"},
			{false, b, "pending", "cancelled", "cancel"},
			{true, uuid.Nil, "enqueuing_steps", "steps_in_process", "steps_enqueued"},
		} {
			var err error
			if tr.task {
				err = tx.TaskTransition(t.Context(), &store.TaskTransitionParams{ID: p.Task.ID,
					From: taskertype.TaskState(tr.from), To: taskertype.TaskState(tr.to), Event: taskertype.TaskEvent(tr.ev),
					At: e.clock.Now(), Processor: Processor})
			} else {
				st, gerr := tx.StepGet(t.Context(), tr.step)
				if gerr != nil {
					return gerr
				}
				st.State = taskertype.StepState(tr.to)
				err = tx.StepTransition(t.Context(), &store.StepTransitionParams{Step: st,
					From: taskertype.StepState(tr.from), Event: taskertype.StepEvent(tr.ev), At: e.clock.Now(), Processor: Processor})
			}
			if err != nil {
				return err
			}
			want = append(want, key{tr.step, tr.ev})
			e.clock.Advance(time.Millisecond)
		}
		return nil
	})
	e.moveStep(t, a, taskertype.StepEventSucceed, nil)
	want = append(want, key{a, "succeed"})
	e.moveTask(t, p.Task.ID, taskertype.TaskStepsInProcess, taskertype.TaskEventStepFinished)
	want = append(want, key{uuid.Nil, "step_finished"})

	ts := e.transitions(t, p.Task.ID, uuid.Nil)
	if len(ts) != len(want) {
		t.Fatalf("%d transitions, want %d", len(ts), len(want))
	}
	for i, tr := range ts {
		if got := (key{tr.StepID, tr.Event}); got != want[i] {
			t.Fatalf("transition %d is %v %s, want %v %s", i, got.step, got.event, want[i].step, want[i].event)
		}
		if i > 0 && tr.ID <= ts[i-1].ID {
			t.Fatalf("transition IDs not increasing: %d after %d", tr.ID, ts[i-1].ID)
		}
	}
	ofA := e.transitions(t, p.Task.ID, a)
	var evs []string
	for _, tr := range ofA {
		if tr.StepID != a {
			t.Fatalf("transitions of step a include one of %v", tr.StepID)
		}
		evs = append(evs, tr.Event)
	}
	if want := []string{"create", "enqueue", "start", "succeed"}; !slices.Equal(evs, want) {
		t.Errorf("transitions of step a: %v, want %v", evs, want)
	}
}

func testStepInputs(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	ids := map[string]uuid.UUID{}
	for _, s := range p.Steps {
		ids[s.Name] = s.ID
	}
	run := func(name string, result json.RawMessage) {
		e.moveStep(t, ids[name], taskertype.StepEventEnqueue, nil)
		e.moveStep(t, ids[name], taskertype.StepEventStart, func(s *taskertype.Step) { s.Attempts = 1 })
		e.moveStep(t, ids[name], taskertype.StepEventSucceed, func(s *taskertype.Step) { s.Result = result })
		e.moveStep(t, ids[name], taskertype.StepEventComplete, nil)
	}
	run("a", json.RawMessage(`{"reserved": true}`))
	run("b", json.RawMessage(`{"x": 1}`))
	// c is resolved by hand, without a result.
	e.moveStep(t, ids["c"], taskertype.StepEventResolveManually, nil)

	e.inTx(t, func(tx store.Tx) error {
		in, err := tx.StepInputs(t.Context(), ids["d"])
		if err != nil {
			return err
		}
		if !jsonEqual(in.Context, p.Task.Context) {
			t.Errorf("context %s, want %s", in.Context, p.Task.Context)
		}
		if len(in.Results) != 2 || !jsonEqual(in.Results["b"], []byte(`{"x": 1}`)) || !jsonEqual(in.Results["c"], []byte(`null`)) {
			t.Errorf("results of d's dependencies: %s, want b: {\"x\": 1}, c: null", fmtResults(in.Results))
		}
		in, err = tx.StepInputs(t.Context(), ids["a"])
		if err != nil {
			return err
		}
		if in.Results == nil || len(in.Results) != 0 {
			t.Errorf("results of a step without dependencies: %v, want an empty map", in.Results)
		}
		in, err = tx.StepInputs(t.Context(), ids["b"])
		if err != nil {
			return err
		}
		if len(in.Results) != 1 || !jsonEqual(in.Results["a"], []byte(`{"reserved": true}`)) {
			t.Errorf("results of b's dependencies: %s", fmtResults(in.Results))
		}
		return nil
	})
}

func testStepInputsCorrelation(t *testing.T, e *env) {
	corr, parent := newID(t), newID(t)
	withIDs := diamond(t, e)
	withIDs.Task.Request.CorrelationID, withIDs.Task.Request.ParentCorrelationID = corr, parent
	without := diamond(t, e)
	check := func(how string, tx store.Tx, p *store.TaskCreateParams, wantCorr, wantParent uuid.UUID) {
		t.Helper()
		in, err := tx.StepInputs(t.Context(), p.Steps[3].ID)
		if err != nil {
			t.Errorf("%s: StepInputs: %v", how, err)
			return
		}
		if in.CorrelationID != wantCorr || in.ParentCorrelationID != wantParent {
			t.Errorf("%s: correlation ids %s, %s; want %s, %s", how, in.CorrelationID, in.ParentCorrelationID, wantCorr, wantParent)
		}
	}
	e.inTx(t, func(tx store.Tx) error {
		for _, p := range []*store.TaskCreateParams{withIDs, without} {
			if err := tx.TaskCreate(t.Context(), p); err != nil {
				return err
			}
		}
		check("in the transaction that created the task", tx, withIDs, corr, parent)
		check("a task without correlation ids, created here", tx, without, uuid.Nil, uuid.Nil)
		return nil
	})
	e.inTx(t, func(tx store.Tx) error {
		check("read by StepInputs", tx, withIDs, corr, parent)
		check("a task without correlation ids, read", tx, without, uuid.Nil, uuid.Nil)
		return nil
	})
	e.inTx(t, func(tx store.Tx) error {
		ids := []uuid.UUID{withIDs.Task.ID, without.Task.ID}
		if _, err := tx.Prefetch(t.Context(), &store.PrefetchParams{ContextsOf: ids}); err != nil {
			return err
		}
		check("after a prefetch of the context", tx, withIDs, corr, parent)
		check("a task without correlation ids, after a prefetch", tx, without, uuid.Nil, uuid.Nil)
		return nil
	})
}

func testStepAncestorResults(t *testing.T, e *env) {
	p := diamond(t, e)
	// e depends on d; f is unrelated and completed: not an ancestor.
	eID, fID := newID(t), newID(t)
	p.Steps = append(p.Steps,
		&taskertype.Step{ID: eID, Name: "e", Handler: "handle_e", Position: 4, Retry: p.Steps[0].Retry, Timeout: time.Minute, DependsOn: []uuid.UUID{p.Steps[3].ID}},
		&taskertype.Step{ID: fID, Name: "f", Handler: "handle_f", Position: 5, Retry: p.Steps[0].Retry, Timeout: time.Minute})
	e.create(t, p)
	ids := map[string]uuid.UUID{}
	for _, s := range p.Steps {
		ids[s.Name] = s.ID
	}
	run := func(name string, result json.RawMessage) {
		e.moveStep(t, ids[name], taskertype.StepEventEnqueue, nil)
		e.moveStep(t, ids[name], taskertype.StepEventStart, func(s *taskertype.Step) { s.Attempts = 1 })
		e.moveStep(t, ids[name], taskertype.StepEventSucceed, func(s *taskertype.Step) { s.Result = result })
		e.moveStep(t, ids[name], taskertype.StepEventComplete, nil)
	}
	run("a", json.RawMessage(`{"a": 1}`))
	run("b", json.RawMessage(`{"b": 2}`))
	run("d", json.RawMessage(`{"d": 4}`))
	run("f", json.RawMessage(`{"f": 6}`))
	// c is resolved by hand, without a result: no result to give.
	e.moveStep(t, ids["c"], taskertype.StepEventResolveManually, nil)
	got := func(name string) map[string]json.RawMessage {
		t.Helper()
		r, err := e.s.StepAncestorResults(t.Context(), p.Task.ID, ids[name])
		if err != nil {
			t.Fatalf("StepAncestorResults(%s): %v", name, err)
		}
		return r
	}
	r := got("e")
	if len(r) != 3 || !jsonEqual(r["a"], []byte(`{"a": 1}`)) || !jsonEqual(r["b"], []byte(`{"b": 2}`)) || !jsonEqual(r["d"], []byte(`{"d": 4}`)) {
		t.Errorf("ancestors of e: %s, want a, b and d (c has no result, f is no ancestor)", fmtResults(r))
	}
	if r := got("a"); len(r) != 0 {
		t.Errorf("ancestors of a root step: %s, want none", fmtResults(r))
	}
	// A transaction that holds the task's steps (prefetched, as a claim or a
	// report does) gives the same ancestors without a read; a step without
	// dependencies has none; a transaction that holds nothing, nil.
	same := func(name string, a, want map[string]json.RawMessage) {
		t.Helper()
		if len(a) != len(want) {
			t.Errorf("ancestors of %s held: %s, want %s", name, fmtResults(a), fmtResults(want))
		}
		for k, v := range want {
			if !jsonEqual(a[k], v) {
				t.Errorf("ancestors of %s held: %s, want %s", name, fmtResults(a), fmtResults(want))
			}
		}
	}
	// Holding the step alone (a backend may hold more with it): the
	// ancestors, all of them, or nil; never a part.
	e.inTx(t, func(tx store.Tx) error {
		if _, err := tx.StepGet(t.Context(), ids["e"]); err != nil {
			return err
		}
		if a := tx.StepAncestorsHeld(ids["e"]); a != nil {
			same("e", a, r)
		}
		return nil
	})
	e.inTx(t, func(tx store.Tx) error {
		if a := tx.StepAncestorsHeld(ids["e"]); a != nil {
			t.Errorf("ancestors held by a transaction that read nothing: %s, want nil", fmtResults(a))
		}
		if _, err := tx.Prefetch(t.Context(), &store.PrefetchParams{TaskIDs: []uuid.UUID{p.Task.ID}, ContextsOf: []uuid.UUID{p.Task.ID}}); err != nil {
			return err
		}
		for name, want := range map[string]map[string]json.RawMessage{"e": r, "a": {}, "d": got("d")} {
			a := tx.StepAncestorsHeld(ids[name])
			if a == nil {
				t.Errorf("ancestors of %s held by a transaction that prefetched its task: nil, want %s", name, fmtResults(want))
				continue
			}
			same(name, a, want)
		}
		return nil
	})
	if r, err := e.s.StepAncestorResults(t.Context(), p.Task.ID, newID(t)); err != nil || len(r) != 0 {
		t.Errorf("ancestors of an unknown step: %s, %v; want none, no error", fmtResults(r), err)
	}
}

func testTransitionsAfter(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	a := p.Steps[0].ID
	e.moveStep(t, a, taskertype.StepEventEnqueue, nil)
	e.moveStep(t, a, taskertype.StepEventStart, func(s *taskertype.Step) { s.Attempts = 1 })
	all := e.transitions(t, p.Task.ID, uuid.Nil)
	if len(all) < 3 {
		t.Fatalf("%d transitions, want several", len(all))
	}
	for i, tr := range all {
		after, err := e.s.TransitionList(t.Context(), &store.TransitionListParams{TaskID: p.Task.ID, After: tr.ID})
		if err != nil {
			t.Fatal(err)
		}
		want := all[i+1:]
		if len(after) != len(want) {
			t.Fatalf("after transition %d (id %d): %d transitions, want %d", i, tr.ID, len(after), len(want))
		}
		for j := range want {
			if *after[j] != *want[j] {
				t.Errorf("after id %d, transition %d: %+v, want %+v", tr.ID, j, after[j], want[j])
			}
		}
		step, err := e.s.TransitionList(t.Context(), &store.TransitionListParams{TaskID: p.Task.ID, StepID: a, After: tr.ID})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, w := range want {
			if w.StepID == a {
				n++
			}
		}
		if len(step) != n {
			t.Errorf("step a's transitions after id %d: %d, want %d", tr.ID, len(step), n)
		}
	}
}

func fmtResults(m map[string]json.RawMessage) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s: %s", k, v))
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}

func testTaskList(t *testing.T, e *env) {
	var ids []uuid.UUID
	for range 3 {
		p := diamond(t, e)
		e.create(t, p)
		ids = append(ids, p.Task.ID)
		e.clock.Advance(time.Second)
	}
	e.moveTask(t, ids[1], taskertype.TaskPending, taskertype.TaskEventStart)

	list := func(p *store.TaskListParams) []uuid.UUID {
		t.Helper()
		tasks, err := e.s.TaskList(t.Context(), p)
		if err != nil {
			t.Fatalf("TaskList(%+v): %v", p, err)
		}
		var got []uuid.UUID
		for _, task := range tasks {
			got = append(got, task.ID)
		}
		return got
	}
	check := func(name string, got, want []uuid.UUID) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	check("all tasks", list(&store.TaskListParams{}), []uuid.UUID{ids[2], ids[1], ids[0]})
	check("all tasks (nil params)", list(nil), []uuid.UUID{ids[2], ids[1], ids[0]})
	check("pending", list(&store.TaskListParams{States: []taskertype.TaskState{taskertype.TaskPending}}), []uuid.UUID{ids[2], ids[0]})
	check("initializing", list(&store.TaskListParams{States: []taskertype.TaskState{taskertype.TaskInitializing}}), []uuid.UUID{ids[1]})
	check("pending or initializing", list(&store.TaskListParams{States: []taskertype.TaskState{taskertype.TaskInitializing, taskertype.TaskPending}}),
		[]uuid.UUID{ids[2], ids[1], ids[0]})
	check("complete", list(&store.TaskListParams{States: []taskertype.TaskState{taskertype.TaskComplete}}), nil)
	check("limit 2", list(&store.TaskListParams{Limit: 2}), []uuid.UUID{ids[2], ids[1]})
	check("pending, limit 1", list(&store.TaskListParams{States: []taskertype.TaskState{taskertype.TaskPending}, Limit: 1}), []uuid.UUID{ids[2]})
}

var errLost = errors.New("storetest: another transaction moved the step first")

func testConcurrentCAS(t *testing.T, e *env) {
	const racers = 8
	p := diamond(t, e)
	e.create(t, p)
	stepID := p.Steps[0].ID

	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, racers)
	)
	for i := range racers {
		wg.Go(func() {
			<-start
			errs[i] = e.s.InTx(t.Context(), func(tx store.Tx) error {
				if _, err := tx.TaskGetForUpdate(t.Context(), p.Task.ID); err != nil {
					return err
				}
				st, err := tx.StepGet(t.Context(), stepID)
				if err != nil {
					return err
				}
				if st.State != taskertype.StepPending {
					return errLost
				}
				st.State = taskertype.StepEnqueued
				return tx.StepTransition(t.Context(), &store.StepTransitionParams{Step: st, From: taskertype.StepPending,
					Event: taskertype.StepEventEnqueue, At: e.clock.Now(), Processor: fmt.Sprint("racer", i)})
			})
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, errLost), errors.Is(err, taskertype.ErrStaleState):
		default:
			t.Errorf("racer %d: %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d transactions moved the step, want exactly 1", wins)
	}
	ts := e.transitions(t, p.Task.ID, stepID)
	if len(ts) != 2 || ts[1].Event != "enqueue" {
		t.Fatalf("step transitions %d (last %+v), want the create and one enqueue", len(ts), ts[len(ts)-1])
	}
}

func testPanic(t *testing.T, e *env) {
	p := diamond(t, e)
	func() {
		defer func() {
			if r := recover(); r != "storetest: boom" {
				t.Errorf("recovered %v, want the panic of fn", r)
			}
		}()
		_ = e.s.InTx(t.Context(), func(tx store.Tx) error {
			if err := tx.TaskCreate(t.Context(), p); err != nil {
				return err
			}
			panic("storetest: boom")
		})
		t.Error("InTx returned after fn panicked")
	}()
	if _, err := e.s.TaskGet(t.Context(), p.Task.ID); !errors.Is(err, taskertype.ErrNotFound) {
		t.Errorf("TaskGet after the panic: %v, want ErrNotFound", err)
	}
	// The store is still usable: the transaction did not stay open.
	e.create(t, p)
	if task := e.taskGet(t, p.Task.ID); task.State != taskertype.TaskPending {
		t.Errorf("task state %s", task.State)
	}
}

func testTxClaimAck(t *testing.T, e *env) {
	needQueue(t, e)
	if !e.q.Capabilities().SharesStoreDatabase {
		err := e.s.InTx(t.Context(), func(tx store.Tx) error {
			_, err := tx.MessageClaim(t.Context(), &queue.ClaimParams{Queue: "q", Max: 1, VisibilityTimeout: time.Minute})
			return err
		})
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("MessageClaim in a store whose queue is elsewhere: %v, want errors.ErrUnsupported", err)
		}
		return
	}
	ctx := t.Context()
	if err := e.q.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"one", "two"} {
		if _, err := e.q.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	claim := func(tx store.Tx) []*queue.Message {
		msgs, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	// Rolled back: the claim and the acknowledgement vanish.
	err := e.s.InTx(ctx, func(tx store.Tx) error {
		msgs := claim(tx)
		if len(msgs) != 2 {
			t.Fatalf("claimed %d messages in the transaction, want 2", len(msgs))
		}
		if err := tx.MessageAck(ctx, &queue.AckParams{Queue: "q", Receipts: []queue.Receipt{msgs[0].Receipt()}}); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx: %v", err)
	}
	// Committed: the acknowledged message is gone, the other one is claimed.
	var second int64
	e.inTx(t, func(tx store.Tx) error {
		msgs := claim(tx)
		if len(msgs) != 2 || msgs[0].ReadCount != 1 {
			t.Fatalf("after the rollback: %d messages (first read %d times), want both, unclaimed before", len(msgs), msgs[0].ReadCount)
		}
		second = msgs[1].ID
		return tx.MessageAck(ctx, &queue.AckParams{Queue: "q", Receipts: []queue.Receipt{msgs[0].Receipt()}})
	})
	if msgs, err := e.q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute}); err != nil || len(msgs) != 0 {
		t.Fatalf("claim after the commit: %d messages, %v; want none (one acknowledged, one claimed)", len(msgs), err)
	}
	e.clock.Advance(2 * time.Minute)
	msgs, err := e.q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) != 1 || msgs[0].ID != second || msgs[0].ReadCount != 2 {
		t.Fatalf("after the claim expired: %v, %v; want the second message, read twice", msgs, err)
	}
}

func testTaskHops(t *testing.T, e *env) {
	ctx := t.Context()
	p := diamond(t, e)
	e.create(t, p)
	id := p.Task.ID
	hops := []taskertype.TaskEvent{taskertype.TaskEventStart, taskertype.TaskEventReadyStepsFound, taskertype.TaskEventStepsEnqueued,
		taskertype.TaskEventStepFinished, taskertype.TaskEventAllStepsComplete}
	e.clock.Advance(time.Second)
	e.inTx(t, func(tx store.Tx) error {
		state := taskertype.TaskPending
		for _, ev := range hops {
			to, err := taskertype.NextTaskState(state, ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.TaskTransition(ctx, &store.TaskTransitionParams{ID: id, From: state, To: to, Event: ev, At: e.clock.Now(), Processor: Processor}); err != nil {
				return err
			}
			state = to
			got, err := tx.TaskGetForUpdate(ctx, id)
			if err != nil {
				return err
			}
			if got.State != state {
				t.Errorf("read back in the transaction after %s: %s, want %s", ev, got.State, state)
			}
		}
		// A hop from a state the task already left is stale, even here.
		err := tx.TaskTransition(ctx, &store.TaskTransitionParams{ID: id, From: taskertype.TaskPending, To: taskertype.TaskInitializing,
			Event: taskertype.TaskEventStart, At: e.clock.Now(), Processor: Processor})
		if !errors.Is(err, taskertype.ErrStaleState) {
			t.Errorf("a hop from a state left in this transaction: %v, want ErrStaleState", err)
		}
		return nil
	})
	task := e.taskGet(t, id)
	if task.State != taskertype.TaskComplete || !task.FinishedAt.Equal(e.clock.Now()) || !task.UpdatedAt.Equal(e.clock.Now()) {
		t.Fatalf("after commit: %s, finished %v, updated %v; want complete at %v", task.State, task.FinishedAt, task.UpdatedAt, e.clock.Now())
	}
	var events []string
	for _, tr := range e.transitions(t, id, uuid.Nil) {
		if tr.StepID == uuid.Nil && tr.Event != string(taskertype.TaskEventCreate) {
			events = append(events, tr.Event)
		}
	}
	want := []string{"start", "ready_steps_found", "steps_enqueued", "step_finished", "all_steps_complete"}
	if !slices.Equal(events, want) {
		t.Errorf("logged task events %v, want %v", events, want)
	}
}

func testStepHops(t *testing.T, e *env) {
	ctx := t.Context()
	p := diamond(t, e)
	e.create(t, p)
	a, b := p.Steps[0].ID, p.Steps[1].ID
	for _, ev := range []taskertype.StepEvent{taskertype.StepEventEnqueue, taskertype.StepEventStart} {
		e.moveStep(t, a, ev, nil)
	}
	e.clock.Advance(time.Second)
	move := func(tx store.Tx, id uuid.UUID, ev taskertype.StepEvent, edit func(*taskertype.Step)) error {
		st, err := tx.StepGet(ctx, id)
		if err != nil {
			return err
		}
		from := st.State
		if st.State, err = taskertype.NextStepState(from, ev); err != nil {
			return err
		}
		if edit != nil {
			edit(st)
		}
		return tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: from, Event: ev, At: e.clock.Now(), Processor: Processor})
	}
	e.inTx(t, func(tx store.Tx) error {
		// a reports and completes; b, which depends on a, is enqueued and
		// started, and its inputs carry a's result: all in one transaction.
		steps, err := tx.StepList(ctx, p.Task.ID) // the reads a driver may keep
		if err != nil || len(steps) != 4 {
			t.Fatalf("step list: %d steps, %v", len(steps), err)
		}
		if err := move(tx, a, taskertype.StepEventSucceed, func(s *taskertype.Step) { s.Result = json.RawMessage(`{"v":1}`) }); err != nil {
			return err
		}
		if err := move(tx, a, taskertype.StepEventComplete, nil); err != nil {
			return err
		}
		if err := move(tx, b, taskertype.StepEventEnqueue, nil); err != nil {
			return err
		}
		if err := move(tx, b, taskertype.StepEventStart, func(s *taskertype.Step) { s.Attempts = 1 }); err != nil {
			return err
		}
		steps, err = tx.StepList(ctx, p.Task.ID)
		if err != nil {
			return err
		}
		for _, s := range steps {
			want := map[uuid.UUID]taskertype.StepState{a: taskertype.StepComplete, b: taskertype.StepInProgress}[s.ID]
			if want != "" && s.State != want {
				t.Errorf("step list in the transaction: %s is %s, want %s", s.Name, s.State, want)
			}
			if s.ID == b && len(s.DependsOn) != 1 {
				t.Errorf("step list in the transaction lost b's dependencies: %v", s.DependsOn)
			}
		}
		in, err := tx.StepInputs(ctx, b)
		if err != nil {
			return err
		}
		if string(in.Results["a"]) != `{"v":1}` {
			t.Errorf("b's inputs in the transaction: %s, want a's result", in.Results["a"])
		}
		// A move from a state the step left in this transaction is stale.
		st, err := tx.StepGet(ctx, a)
		if err != nil {
			return err
		}
		st.State = taskertype.StepComplete
		err = tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: taskertype.StepEnqueuedForOrchestration,
			Event: taskertype.StepEventComplete, At: e.clock.Now(), Processor: Processor})
		if !errors.Is(err, taskertype.ErrStaleState) {
			t.Errorf("completing a twice in one transaction: %v, want ErrStaleState", err)
		}
		return nil
	})
	steps := e.steps(t, p.Task.ID)
	if s := steps["a"]; s.State != taskertype.StepComplete || string(s.Result) != `{"v":1}` || !s.UpdatedAt.Equal(e.clock.Now()) {
		t.Errorf("a after commit: %s, result %s, updated %v", s.State, s.Result, s.UpdatedAt)
	}
	if s := steps["b"]; s.State != taskertype.StepInProgress || s.Attempts != 1 {
		t.Errorf("b after commit: %s after %d attempts, want in_progress after 1", s.State, s.Attempts)
	}
	var events []string
	for _, tr := range e.transitions(t, p.Task.ID, a) {
		events = append(events, tr.Event)
	}
	if got := strings.Join(events, ","); got != "create,enqueue,start,succeed,complete" {
		t.Errorf("a's log: %s", got)
	}
}

func testRevision(t *testing.T, e *env) {
	p := diamond(t, e)
	e.create(t, p)
	id, a := p.Task.ID, p.Steps[0].ID
	rev := func() int64 { return e.taskGet(t, id).Revision }
	if r := rev(); r != 0 {
		t.Fatalf("a new task's revision is %d, want 0", r)
	}
	e.moveTask(t, id, taskertype.TaskPending, taskertype.TaskEventStart)
	if r := rev(); r != 1 {
		t.Fatalf("after a task transition: revision %d, want 1", r)
	}
	e.moveStep(t, a, taskertype.StepEventEnqueue, nil) // pending → enqueued: into flight
	if r := rev(); r != 2 {
		t.Fatalf("after a step entered flight: revision %d, want 2", r)
	}
	e.moveStep(t, a, taskertype.StepEventStart, nil)   // enqueued → in_progress
	e.moveStep(t, a, taskertype.StepEventSucceed, nil) // in_progress → enqueued_for_orchestration
	if r := rev(); r != 2 {
		t.Fatalf("after moves inside flight: revision %d, want 2 still", r)
	}
	e.moveStep(t, a, taskertype.StepEventComplete, nil) // out of flight
	if r := rev(); r != 3 {
		t.Fatalf("after a step left flight: revision %d, want 3", r)
	}
	e.inTx(t, func(tx store.Tx) error {
		task, err := tx.TaskGetForUpdate(t.Context(), id)
		if err != nil {
			return err
		}
		if task.Revision != 3 {
			t.Errorf("TaskGetForUpdate: revision %d, want 3", task.Revision)
		}
		return nil
	})
}

func testPrefetch(t *testing.T, e *env) {
	p1, p2 := diamond(t, e), diamond(t, e)
	e.create(t, p1)
	e.create(t, p2)
	want2 := e.steps(t, p2.Task.ID)
	a1, a2 := p1.Steps[0].ID, p2.Steps[0].ID
	e.inTx(t, func(tx store.Tx) error {
		ctx := t.Context()
		if _, err := tx.Prefetch(ctx, nil); !errors.Is(err, taskertype.ErrInvalid) {
			t.Errorf("Prefetch(nil): %v, want ErrInvalid", err)
		}
		if missed, err := tx.Prefetch(ctx, &store.PrefetchParams{}); err != nil || len(missed) != 0 {
			t.Errorf("Prefetch of nothing: missed %v, %v", missed, err)
		}
		// A step of the first task moves before the prefetch: the prefetch
		// must not undo it.
		st, err := tx.StepGet(ctx, a1)
		if err != nil {
			return err
		}
		st.State = taskertype.StepEnqueued
		if err := tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: taskertype.StepPending,
			Event: taskertype.StepEventEnqueue, At: e.clock.Now(), Processor: Processor}); err != nil {
			return err
		}
		unknown := newID(t)
		missed, err := tx.Prefetch(ctx, &store.PrefetchParams{TaskIDs: []uuid.UUID{p1.Task.ID, unknown, p1.Task.ID},
			ContextsOf: []uuid.UUID{p2.Task.ID}})
		if err != nil {
			return fmt.Errorf("Prefetch: %w", err)
		}
		if !slices.Equal(missed, []uuid.UUID{unknown}) {
			t.Errorf("Prefetch missed %v, want only the unknown task %s", missed, unknown)
		}
		if got, err := tx.StepGet(ctx, a1); err != nil || got.State != taskertype.StepEnqueued {
			t.Errorf("a step moved before the prefetch reads back as %v (%v), want enqueued", got, err)
		}
		task, err := tx.TaskGetForUpdate(ctx, p2.Task.ID)
		if err != nil {
			return err
		}
		if task.State != taskertype.TaskPending || task.Name != p2.Task.Name {
			t.Errorf("prefetched task: %+v", task)
		}
		for _, s := range p2.Steps {
			got, err := tx.StepGet(ctx, s.ID)
			if err != nil {
				return err
			}
			w := want2[s.Name]
			if got.State != w.State || got.Name != w.Name || got.TaskID != w.TaskID || got.Position != w.Position || got.Retry != w.Retry {
				t.Errorf("prefetched step %s: %+v, want %+v", s.Name, got, w)
			}
		}
		in, err := tx.StepInputs(ctx, p2.Steps[3].ID)
		if err != nil {
			return err
		}
		if !jsonEqual(in.Context, p2.Task.Context) || len(in.Results) != 2 {
			t.Errorf("inputs after a prefetch: context %s, %d results; want %s and 2", in.Context, len(in.Results), p2.Task.Context)
		}
		// Nothing another transaction holds: skipping locked rows takes all.
		if missed, err := tx.Prefetch(ctx, &store.PrefetchParams{TaskIDs: []uuid.UUID{p2.Task.ID, p1.Task.ID}, SkipLocked: true}); err != nil || len(missed) != 0 {
			t.Errorf("Prefetch of held tasks, skipping locked ones: missed %v, %v; want none", missed, err)
		}
		// A step moved after the prefetch is written at commit.
		st, err = tx.StepGet(ctx, a2)
		if err != nil {
			return err
		}
		st.State = taskertype.StepEnqueued
		return tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: taskertype.StepPending,
			Event: taskertype.StepEventEnqueue, At: e.clock.Now(), Processor: Processor})
	})
	if s := e.steps(t, p1.Task.ID)[p1.Steps[0].Name]; s.State != taskertype.StepEnqueued {
		t.Errorf("after commit, the step moved before the prefetch is %s, want enqueued", s.State)
	}
	if s := e.steps(t, p2.Task.ID)[p2.Steps[0].Name]; s.State != taskertype.StepEnqueued {
		t.Errorf("after commit, the step moved after the prefetch is %s, want enqueued", s.State)
	}
	if n := len(e.transitions(t, p2.Task.ID, a2)); n != 2 {
		t.Errorf("the step moved after the prefetch has %d transitions, want 2 (create, enqueue)", n)
	}
}

func testNotify(t *testing.T, e *env) {
	needQueue(t, e)
	if !e.q.Capabilities().Wakeups {
		t.Skip("the queue has no wake-ups")
	}
	if !e.q.Capabilities().SharesStoreDatabase {
		// A queue elsewhere (a broker behind the outbox): the store cannot
		// wake its subscribers at its commit, and says so.
		err := e.s.InTx(t.Context(), func(tx store.Tx) error { return tx.Notify(t.Context(), queue.StepsStoppedChannel) })
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("Notify in a store whose queue is elsewhere: %v, want errors.ErrUnsupported", err)
		}
		return
	}
	wake, cancel := e.q.Subscribe(queue.StepsStoppedChannel)
	defer cancel()
	notify := func(tx store.Tx) error { return tx.Notify(t.Context(), queue.StepsStoppedChannel) }
	rolledBack := errors.New("rolled back")
	if err := e.s.InTx(t.Context(), func(tx store.Tx) error {
		if err := notify(tx); err != nil {
			return err
		}
		return rolledBack
	}); !errors.Is(err, rolledBack) {
		t.Fatalf("InTx: %v", err)
	}
	select {
	case <-wake:
		t.Fatal("woken by a transaction that rolled back")
	case <-time.After(200 * time.Millisecond):
	}
	e.inTx(t, func(tx store.Tx) error {
		if err := notify(tx); err != nil {
			return err
		}
		select {
		case <-wake:
			t.Errorf("woken before the commit")
		default:
		}
		return nil
	})
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up after the commit")
	}
}
