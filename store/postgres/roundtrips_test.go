package postgres_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	storepg "github.com/tasker-go/tasker/store/postgres"
	"github.com/tasker-go/tasker/store/storetest"
	"github.com/tasker-go/tasker/taskertype"
)

// path drives the store as the engine's hot path does, one transaction per
// call, so that the round trips of each can be counted.
type path struct {
	t     testing.TB
	s     *storepg.Store
	clock *testclock.Clock
	queue string
}

func newPath(t testing.TB) *path {
	_, dbURL := pgtest.Schema(t)
	clock := testclock.New(storetest.Start)
	p := &path{t: t, s: openStore(t, dbURL, clock), clock: clock, queue: queue.StepQueue("ns")}
	for _, q := range []string{p.queue, queue.ResultsQueue} {
		if err := p.s.Queue().QueueEnsure(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// trips runs fn in a transaction and returns its round trips.
func (p *path) trips(fn func(tx store.Tx) error) uint64 {
	p.t.Helper()
	before := p.s.RoundTrips()
	if err := p.s.InTx(p.t.Context(), fn); err != nil {
		p.t.Fatalf("InTx: %v", err)
	}
	return p.s.RoundTrips() - before
}

func (p *path) move(tx store.Tx, st *taskertype.Step, ev taskertype.StepEvent, edit func(*taskertype.Step)) error {
	from := st.State
	to, err := taskertype.NextStepState(from, ev)
	if err != nil {
		return err
	}
	st.State = to
	if edit != nil {
		edit(st)
	}
	return tx.StepTransition(p.t.Context(), &store.StepTransitionParams{Step: st, From: from, Event: ev, At: p.clock.Now(), Processor: "rt"})
}

func (p *path) hop(tx store.Tx, task *taskertype.Task, evs ...taskertype.TaskEvent) error {
	for _, ev := range evs {
		to, err := taskertype.NextTaskState(task.State, ev)
		if err != nil {
			return err
		}
		if err := tx.TaskTransition(p.t.Context(), &store.TaskTransitionParams{ID: task.ID, From: task.State, To: to, Event: ev,
			At: p.clock.Now(), Processor: "rt"}); err != nil {
			return err
		}
		task.State = to
	}
	return nil
}

// linear returns a task of n steps, each after the previous one.
func linear(t testing.TB, n int) (*taskertype.Task, []*taskertype.Step) {
	task := &taskertype.Task{ID: uuid.Must(uuid.NewV7()), Namespace: "ns", Name: "linear", Version: "1", Context: []byte(`{"order": 42}`)}
	steps := make([]*taskertype.Step, n)
	for i := range steps {
		steps[i] = &taskertype.Step{ID: uuid.Must(uuid.NewV7()), Name: fmt.Sprint("s", i), Handler: "h", Position: i,
			Retry: taskertype.RetryPolicy{MaxAttempts: 3, Retryable: true, Backoff: taskertype.BackoffExponential, Base: time.Second}}
		if i > 0 {
			steps[i].DependsOn = []uuid.UUID{steps[i-1].ID}
		}
	}
	return task, steps
}

func body(task *taskertype.Task, st *taskertype.Step) []byte {
	return []byte(`{"task_id":"` + task.ID.String() + `","step_id":"` + st.ID.String() + `"}`)
}

// create is the engine's creation: the task and its steps, the task's hops
// to steps_in_process, the first step enqueued with its message, and, as a
// local worker with free slots does, its claim and start with its inputs.
func (p *path) create(task *taskertype.Task, steps []*taskertype.Step) (uint64, *queue.Message) {
	ctx := p.t.Context()
	var claimed *queue.Message
	n := p.trips(func(tx store.Tx) error {
		if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: steps, At: p.clock.Now(), Processor: "rt"}); err != nil {
			return err
		}
		if err := p.hop(tx, task, taskertype.TaskEventStart, taskertype.TaskEventReadyStepsFound); err != nil {
			return err
		}
		if err := p.move(tx, steps[0], taskertype.StepEventEnqueue, nil); err != nil {
			return err
		}
		if err := tx.MessageSend(ctx, &queue.SendParams{Queue: p.queue, Body: body(task, steps[0])}); err != nil {
			return err
		}
		if err := p.hop(tx, task, taskertype.TaskEventStepsEnqueued); err != nil {
			return err
		}
		return p.claimAndStart(tx, &claimed)
	})
	return n, claimed
}

// claimAndStart is the local worker's claim: claim, prefetch the tasks
// (skipping those another transaction holds), read the step, start it, read
// its inputs.
func (p *path) claimAndStart(tx store.Tx, claimed **queue.Message) error {
	ctx := p.t.Context()
	msgs, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: p.queue, Max: 4, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) == 0 {
		*claimed = nil
		return err
	}
	*claimed = msgs[0]
	var ids struct {
		TaskID uuid.UUID `json:"task_id"`
		StepID uuid.UUID `json:"step_id"`
	}
	if err := json.Unmarshal(msgs[0].Body, &ids); err != nil {
		return err
	}
	if _, err := tx.Prefetch(ctx, &store.PrefetchParams{ContextsOf: []uuid.UUID{ids.TaskID}, SkipLocked: true}); err != nil {
		return err
	}
	st, err := tx.StepGet(ctx, ids.StepID)
	if err != nil {
		return err
	}
	if err := p.move(tx, st, taskertype.StepEventStart, func(s *taskertype.Step) { s.Attempts++; s.StartedAt = p.clock.Now() }); err != nil {
		return err
	}
	_, err = tx.StepInputs(ctx, ids.StepID)
	return err
}

// report is the engine's step report with orchestration in the same
// process: the worker acknowledges the step's message, prefetches the
// batch's tasks with their contexts and records the outcome; orchestration
// locks the task and lists its steps (from the rows the prefetch holds),
// completes the step, moves the task on, enqueues the next step with its
// message; the worker claims and starts it.
func (p *path) report(task *taskertype.Task, steps []*taskertype.Step, i int, m *queue.Message) (uint64, *queue.Message) {
	ctx := p.t.Context()
	var claimed *queue.Message
	n := p.trips(func(tx store.Tx) error {
		if err := tx.MessageAck(ctx, &queue.AckParams{Queue: p.queue, Receipts: []queue.Receipt{m.Receipt()}}); err != nil {
			return err
		}
		if _, err := tx.Prefetch(ctx, &store.PrefetchParams{ContextsOf: []uuid.UUID{task.ID}}); err != nil {
			return err
		}
		st, err := tx.StepGet(ctx, steps[i].ID) // the worker's
		if err != nil {
			return err
		}
		if err := p.move(tx, st, taskertype.StepEventSucceed, func(s *taskertype.Step) { s.Result = json.RawMessage(`{"ok":true}`) }); err != nil {
			return err
		}
		if _, err := tx.TaskGetForUpdate(ctx, task.ID); err != nil { // orchestration's
			return err
		}
		listed, err := tx.StepList(ctx, task.ID)
		if err != nil {
			return err
		}
		fresh := listed[i]
		if err := p.move(tx, fresh, taskertype.StepEventComplete, nil); err != nil {
			return err
		}
		if err := p.hop(tx, task, taskertype.TaskEventStepFinished); err != nil {
			return err
		}
		if i+1 == len(steps) {
			return p.hop(tx, task, taskertype.TaskEventAllStepsComplete)
		}
		if err := p.hop(tx, task, taskertype.TaskEventReadyStepsFound); err != nil {
			return err
		}
		next := listed[i+1]
		if err := p.move(tx, next, taskertype.StepEventEnqueue, nil); err != nil {
			return err
		}
		if err := tx.MessageSend(ctx, &queue.SendParams{Queue: p.queue, Body: body(task, next)}); err != nil {
			return err
		}
		if err := p.hop(tx, task, taskertype.TaskEventStepsEnqueued); err != nil {
			return err
		}
		return p.claimAndStart(tx, &claimed)
	})
	return n, claimed
}

// TestRoundTrips counts the round trips of the store's main operations and
// of the engine's path through a step, and holds them to their budgets
// (docs/postgres.md).
func TestRoundTrips(t *testing.T) {
	ctx := t.Context()
	p := newPath(t)
	check := func(what string, got, want uint64) {
		t.Helper()
		t.Logf("%-62s %d round trips", what, got)
		if got > want {
			t.Errorf("%s: %d round trips, want at most %d", what, got, want)
		}
	}

	// Single operations, each in its own transaction.
	task, steps := linear(t, 4)
	check("TaskCreate (4 steps, 5 transitions), commit", p.trips(func(tx store.Tx) error {
		return tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: steps, At: p.clock.Now()})
	}), 1)
	check("TaskGetForUpdate + StepList, commit", p.trips(func(tx store.Tx) error {
		if _, err := tx.TaskGetForUpdate(ctx, task.ID); err != nil {
			return err
		}
		_, err := tx.StepList(ctx, task.ID)
		return err
	}), 3)
	check("Prefetch + TaskGetForUpdate + StepList, commit", p.trips(func(tx store.Tx) error {
		if _, err := tx.Prefetch(ctx, &store.PrefetchParams{TaskIDs: []uuid.UUID{task.ID}}); err != nil {
			return err
		}
		if _, err := tx.TaskGetForUpdate(ctx, task.ID); err != nil {
			return err
		}
		_, err := tx.StepList(ctx, task.ID)
		return err
	}), 2)
	check("TaskCreate + StepList, commit", p.trips(func(tx store.Tx) error {
		task, steps := linear(t, 4)
		if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: steps, At: p.clock.Now()}); err != nil {
			return err
		}
		_, err := tx.StepList(ctx, task.ID)
		return err
	}), 1)
	check("StepGet + StepTransition (bumps the revision), commit", p.trips(func(tx store.Tx) error {
		st, err := tx.StepGet(ctx, steps[0].ID)
		if err != nil {
			return err
		}
		if err := p.move(tx, st, taskertype.StepEventEnqueue, nil); err != nil {
			return err
		}
		*steps[0] = *st // as a cache would keep it
		return nil
	}), 2)
	check("TaskGetForUpdate + 3 TaskTransitions, commit", p.trips(func(tx store.Tx) error {
		if _, err := tx.TaskGetForUpdate(ctx, task.ID); err != nil {
			return err
		}
		return p.hop(tx, task, taskertype.TaskEventStart, taskertype.TaskEventReadyStepsFound, taskertype.TaskEventStepsEnqueued)
	}), 2)
	check("StepTransition of a step not read (cached), commit", p.trips(func(tx store.Tx) error {
		return p.move(tx, steps[0], taskertype.StepEventStart, nil)
	}), 2)
	check("MessageSend, commit", p.trips(func(tx store.Tx) error {
		return tx.MessageSend(ctx, &queue.SendParams{Queue: p.queue, Body: []byte("x")})
	}), 1)
	var msgs []*queue.Message
	check("MessageClaim, commit", p.trips(func(tx store.Tx) error {
		var err error
		msgs, err = tx.MessageClaim(ctx, &queue.ClaimParams{Queue: p.queue, Max: 10, VisibilityTimeout: time.Minute})
		return err
	}), 2)
	check("MessageClaim + MessageAck, commit", p.trips(func(tx store.Tx) error {
		if _, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: p.queue, Max: 10, VisibilityTimeout: time.Minute}); err != nil {
			return err
		}
		return tx.MessageAck(ctx, &queue.AckParams{Queue: p.queue, Receipts: []queue.Receipt{msgs[0].Receipt()}})
	}), 2)
	check("an empty transaction", p.trips(func(tx store.Tx) error { return nil }), 0)

	// The engine's path: a 4-step linear task, created and run to the end.
	task, steps = linear(t, 4)
	n, m := p.create(task, steps)
	check("engine: create + enqueue + claim and start the first step", n, 2)
	total := n
	for i := range steps {
		var n uint64
		n, m = p.report(task, steps, i, m)
		what := fmt.Sprintf("engine: step %d reports, completes; next enqueued, claimed, started", i)
		if i+1 == len(steps) {
			what = fmt.Sprintf("engine: step %d reports, completes; task complete", i)
		}
		check(what, n, 3)
		total += n
	}
	t.Logf("engine: %d round trips for a 4-step task: %.2f per step", total, float64(total)/float64(len(steps)))
	if got, err := p.s.TaskGet(ctx, task.ID); err != nil || got.State != taskertype.TaskComplete {
		t.Fatalf("the task after its path: %+v, %v", got, err)
	}
}

// BenchmarkStepPath runs the engine's path through 4-step linear tasks and
// reports the round trips per step.
func BenchmarkStepPath(b *testing.B) {
	p := newPath(b)
	var trips, stepsRun uint64
	for b.Loop() {
		task, steps := linear(b, 4)
		n, m := p.create(task, steps)
		trips += n
		for i := range steps {
			n, m = p.report(task, steps, i, m)
			trips += n
		}
		stepsRun += uint64(len(steps))
	}
	b.ReportMetric(float64(trips)/float64(stepsRun), "roundtrips/step")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(stepsRun), "ns/step")
}
