package sqlite_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/internal/wire"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/queue/queuetest"
	queuesqlite "github.com/tasker-go/tasker/queue/sqlite"
	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

const stepQ = "worker_ns"

// stepTask creates a task of namespace ns with the named steps, no
// dependencies, and returns the steps' ids by name.
func stepTask(t *testing.T, s *storesqlite.Store, prio int, names ...string) (uuid.UUID, map[string]uuid.UUID) {
	t.Helper()
	task := &taskertype.Task{ID: uuid.New(), Namespace: "ns", Name: "tmpl", Version: "1.0.0", Context: []byte(`{}`)}
	task.Request.Priority = prio
	ids := map[string]uuid.UUID{}
	var steps []*taskertype.Step
	for i, n := range names {
		ids[n] = uuid.New()
		steps = append(steps, &taskertype.Step{ID: ids[n], Name: n, Handler: "h", Position: i,
			Retry: taskertype.RetryPolicy{MaxAttempts: 3, Backoff: taskertype.BackoffExponential, Base: time.Second}, Timeout: time.Minute})
	}
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		return tx.TaskCreate(t.Context(), &store.TaskCreateParams{Task: task, Steps: steps, At: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	return task.ID, ids
}

// moveStep moves a step through events in one transaction; with send, the
// transaction also sends the step's message, as orchestration does.
func moveStep(t *testing.T, s *storesqlite.Store, taskID, id uuid.UUID, prio int, send bool, events ...taskertype.StepEvent) {
	t.Helper()
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		st, err := tx.StepGet(t.Context(), id)
		if err != nil {
			return err
		}
		for _, ev := range events {
			from := st.State
			if st.State, err = taskertype.NextStepState(from, ev); err != nil {
				return err
			}
			if err := tx.StepTransition(t.Context(), &store.StepTransitionParams{Step: st, From: from, Event: ev, At: time.Now()}); err != nil {
				return err
			}
		}
		if !send {
			return nil
		}
		return tx.MessageSend(t.Context(), &queue.SendParams{Queue: stepQ, Priority: prio,
			Body: wire.Encode(wire.StepMessage{TaskID: taskID, StepID: id, Template: "tmpl", Version: "1.0.0"})})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func moveTask(t *testing.T, s *storesqlite.Store, id uuid.UUID, events ...taskertype.TaskEvent) {
	t.Helper()
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		task, err := tx.TaskGetForUpdate(t.Context(), id)
		if err != nil {
			return err
		}
		from := task.State
		for _, ev := range events {
			to, err := taskertype.NextTaskState(from, ev)
			if err != nil {
				return err
			}
			if err := tx.TaskTransition(t.Context(), &store.TaskTransitionParams{ID: id, From: from, To: to, Event: ev, At: time.Now()}); err != nil {
				return err
			}
			from = to
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// storeToReopen opens a store at path, with queue name ensured, for a test
// that closes it itself and opens it again.
func storeToReopen(t *testing.T, path, name string) *storesqlite.Store {
	t.Helper()
	s, err := storesqlite.Open(t.Context(), storesqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Queue().QueueEnsure(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	return s
}

// reopen closes s and opens its database again.
func reopen(t *testing.T, s *storesqlite.Store, path string) *storesqlite.Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openStore(t, path, nil)
}

func claimStep(t *testing.T, q queue.Queue, max int) []*queue.Message {
	t.Helper()
	msgs, err := q.MessageClaim(t.Context(), &queue.ClaimParams{Queue: stepQ, Max: max, VisibilityTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func stepRows(t *testing.T, s *storesqlite.Store) int {
	t.Helper()
	var n int
	if err := s.Queue().DB().R.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM queue_messages WHERE queue = ?1`, stepQ).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStepQueuesAreRebuiltFromTheStepsAtOpen: the step queues keep no
// rows; a store opened again (after a crash, or a stop) finds a message
// for every enqueued step, never read, and for every step in progress, read
// once (its attempt's process is gone), and none for the others, whatever
// messages there were before.
func TestStepQueuesAreRebuiltFromTheStepsAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasker.db")
	s := storeToReopen(t, path, stepQ)
	live, ids := stepTask(t, s, 7, "waiting", "running", "pending", "done")
	moveTask(t, s, live, taskertype.TaskEventStart, taskertype.TaskEventReadyStepsFound)
	moveStep(t, s, live, ids["waiting"], 7, true, taskertype.StepEventEnqueue)
	moveStep(t, s, live, ids["running"], 7, true, taskertype.StepEventEnqueue)
	moveStep(t, s, live, ids["done"], 7, true, taskertype.StepEventEnqueue)
	// "running" and "done" are claimed and started; "done" reports.
	got := claimStep(t, s.Queue(), 3)
	if len(got) != 3 {
		t.Fatalf("claimed %d step messages, want 3", len(got))
	}
	moveStep(t, s, live, ids["running"], 0, false, taskertype.StepEventStart)
	moveStep(t, s, live, ids["done"], 0, false, taskertype.StepEventStart, taskertype.StepEventSucceed)
	for _, m := range got {
		if _, step, _ := wire.DecodeStep(m.Body); step == ids["waiting"] {
			if err := s.Queue().MessageNack(t.Context(), &queue.NackParams{Queue: stepQ, Receipt: m.Receipt(), Delay: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A task in error whose enqueued step an operator may still run, and
	// a cancelled task whose enqueued step nobody will.
	failed, fids := stepTask(t, s, 0, "left")
	moveStep(t, s, failed, fids["left"], 0, false, taskertype.StepEventEnqueue)
	moveTask(t, s, failed, taskertype.TaskEventStart, taskertype.TaskEventReadyStepsFound, taskertype.TaskEventEnqueueFailed)
	gone, gids := stepTask(t, s, 0, "dropped")
	moveStep(t, s, gone, gids["dropped"], 0, true, taskertype.StepEventEnqueue)
	moveTask(t, s, gone, taskertype.TaskEventCancel)
	if n := stepRows(t, s); n != 0 {
		t.Fatalf("%d rows in the step queue's table, want none: its messages are kept in memory", n)
	}
	s = reopen(t, s, path)
	msgs := claimStep(t, s.Queue(), 10)
	want := map[uuid.UUID]int{ids["waiting"]: 1, ids["running"]: 2, fids["left"]: 1}
	if len(msgs) != len(want) {
		t.Fatalf("after reopening: %d messages, want %d (waiting, running, left)", len(msgs), len(want))
	}
	for _, m := range msgs {
		task, step, err := wire.DecodeStep(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		rc, ok := want[step]
		if !ok {
			t.Fatalf("a message for step %s, which waits for no worker", step)
		}
		if m.ReadCount != rc {
			t.Errorf("step %s: read count %d, want %d", step, m.ReadCount, rc)
		}
		if task == live && m.Priority != 7 {
			t.Errorf("step %s: priority %d, want its task's 7", step, m.Priority)
		}
		sm, err := wire.DecodeStepMessage(m.Body)
		if err != nil || sm.Template != "tmpl" || sm.Version != "1.0.0" {
			t.Errorf("step %s: message %+v, %v; want its task's template tmpl 1.0.0", step, sm, err)
		}
		delete(want, step)
	}
}

// TestRebuiltStepQueuesKeepTheirTasksAge: a rebuilt message waits from its
// task's creation, as orchestration sent it (queue.SendParams.Since): the
// step of the older task is claimed first, though the newer task's step
// became ready before it.
func TestRebuiltStepQueuesKeepTheirTasksAge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasker.db")
	s := storeToReopen(t, path, stepQ)
	older, oids := stepTask(t, s, 0, "a")
	time.Sleep(2 * time.Millisecond) // the creation times, in microseconds, differ
	newer, nids := stepTask(t, s, 0, "a")
	for _, id := range []uuid.UUID{older, newer} {
		moveTask(t, s, id, taskertype.TaskEventStart, taskertype.TaskEventReadyStepsFound)
	}
	moveStep(t, s, newer, nids["a"], 0, false, taskertype.StepEventEnqueue)
	time.Sleep(2 * time.Millisecond)
	moveStep(t, s, older, oids["a"], 0, false, taskertype.StepEventEnqueue)
	s = reopen(t, s, path)
	msgs := claimStep(t, s.Queue(), 2)
	var got []uuid.UUID
	for _, m := range msgs {
		task, _, err := wire.DecodeStep(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, task)
	}
	if len(got) != 2 || got[0] != older || got[1] != newer {
		t.Fatalf("claimed the steps of tasks %v, want the older task's (%s) first, then the newer's (%s)", got, older, newer)
	}
}

// TestStepQueueMessagesFollowTheirTransaction: a send enters the queue at
// the commit, and is claimable in its own transaction; a claim is undone by
// a rollback, read count included; an acknowledgement holds only if its
// transaction commits.
func TestStepQueueMessagesFollowTheirTransaction(t *testing.T) {
	ctx := t.Context()
	clock, s, q := stepQueueStore(t)
	send := func(tx store.Tx, body string) {
		if err := tx.MessageSend(ctx, &queue.SendParams{Queue: stepQ, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	errRollback := errors.New("roll back")

	// Not visible to others before the commit; visible after.
	err := s.InTx(ctx, func(tx store.Tx) error {
		send(tx, "a")
		if got := claimStep(t, q, 1); len(got) != 0 {
			t.Errorf("a message claimed from outside its transaction before the commit")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A send rolled back is never seen.
	err = s.InTx(ctx, func(tx store.Tx) error { send(tx, "never"); return errRollback })
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	// A claim rolled back gives the message back as it was.
	err = s.InTx(ctx, func(tx store.Tx) error {
		got, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: stepQ, Max: 5, VisibilityTimeout: time.Hour})
		if err != nil || len(got) != 1 || string(got[0].Body) != "a" || got[0].ReadCount != 1 {
			t.Errorf("claim in a transaction: %v, %v; want a, read once", got, err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	// Own sends are claimed in claim order with the others; an
	// acknowledgement rolled back leaves the message claimed.
	var a *queue.Message
	err = s.InTx(ctx, func(tx store.Tx) error {
		clock.Advance(time.Millisecond)
		send(tx, "b")
		got, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: stepQ, Max: 5, VisibilityTimeout: time.Hour})
		if err != nil || len(got) != 2 || string(got[0].Body) != "a" || string(got[1].Body) != "b" ||
			got[0].ReadCount != 1 || got[1].ReadCount != 1 {
			t.Fatalf("claim in a transaction that sent b: %v, %v; want a then b, each read once", got, err)
		}
		a = got[0]
		return tx.MessageAck(ctx, &queue.AckParams{Queue: stepQ, Receipts: []queue.Receipt{got[1].Receipt()}})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.MessageAck(ctx, &queue.AckParams{Queue: stepQ, Receipts: []queue.Receipt{a.Receipt()}}); err != nil {
			t.Fatal(err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	st, err := q.QueueStats(ctx, stepQ)
	if err != nil || st.Claimed != 1 || st.Visible != 0 || st.Delayed != 0 {
		t.Fatalf("stats %+v, %v; want a claimed, b gone", st, err)
	}
	clock.Advance(time.Hour)
	got := claimStep(t, q, 5)
	if len(got) != 1 || string(got[0].Body) != "a" || got[0].ReadCount != 2 {
		t.Fatalf("after the claim expired: %v; want a, read twice", got)
	}
	if n := stepRows(t, s); n != 0 {
		t.Fatalf("%d rows written for a step queue, want none", n)
	}
}

// TestAResetTaskKeepsItsStepMessagesAcrossOpens: a task in error, reset by
// an operator, is unfinished again in the database (finished_at written
// back to NULL, then left out of its later writes), so the rebuild finds
// its enqueued step.
func TestAResetTaskKeepsItsStepMessagesAcrossOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasker.db")
	s := storeToReopen(t, path, stepQ)
	id, ids := stepTask(t, s, 0, "a")
	moveTask(t, s, id, taskertype.TaskEventStart, taskertype.TaskEventReadyStepsFound, taskertype.TaskEventEnqueueFailed)
	moveTask(t, s, id, taskertype.TaskEventReset)
	moveTask(t, s, id, taskertype.TaskEventStart, taskertype.TaskEventReadyStepsFound)
	moveStep(t, s, id, ids["a"], 0, true, taskertype.StepEventEnqueue)
	s = reopen(t, s, path)
	task, err := s.TaskGet(t.Context(), id)
	if err != nil || task.State != taskertype.TaskEnqueuingSteps || !task.FinishedAt.IsZero() {
		t.Fatalf("task after reopening: %+v, %v; want enqueuing_steps, not finished", task, err)
	}
	if msgs := claimStep(t, s.Queue(), 10); len(msgs) != 1 {
		t.Fatalf("after reopening: %d step messages, want the reset task's one", len(msgs))
	}
}

// TestNamespaceWorkerKeepsItsDomainEventsInRows: the domain-event queue of
// namespace "worker" (worker_domain_events) looks like a step queue; its
// events are durable all the same.
func TestNamespaceWorkerKeepsItsDomainEventsInRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasker.db")
	const events = "worker_domain_events"
	s := storeToReopen(t, path, events)
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		return tx.MessageSend(t.Context(), &queue.SendParams{Queue: events, Body: []byte(`{"event":"x"}`)})
	})
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path)
	msgs, err := s.Queue().MessageClaim(t.Context(), &queue.ClaimParams{Queue: events, Max: 10, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("after reopening: %d events, %v; want the one sent", len(msgs), err)
	}
}

// TestStepQueueRollbackLeavesLaterClaimsAlone: a rollback undoes only the
// claims its transaction still holds: one that expired and was taken by
// another claim meanwhile stays with its new holder; the queues whose
// claims it undid are woken; and a message the transaction acknowledged is
// not claimed again in it.
func TestStepQueueRollbackLeavesLaterClaimsAlone(t *testing.T) {
	ctx := t.Context()
	clock, s, q := stepQueueStore(t)
	for _, b := range []string{"a", "b"} {
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: stepQ, Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Millisecond)
	}
	wake, cancel := q.Subscribe(stepQ)
	defer cancel()
	errRollback := errors.New("roll back")
	var taken *queue.Message
	err := s.InTx(ctx, func(tx store.Tx) error {
		got, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: stepQ, Max: 2, VisibilityTimeout: time.Second})
		if err != nil || len(got) != 2 {
			t.Fatalf("claim in the transaction: %v, %v; want both", got, err)
		}
		clock.Advance(2 * time.Second) // both claims expire
		if taken = claimStep(t, q, 1)[0]; string(taken.Body) != "a" || taken.ReadCount != 2 {
			t.Fatalf("claim from outside: %s read %d times, want a read twice", taken.Body, taken.ReadCount)
		}
		select { // the sends' wake-up
		case <-wake:
		default:
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("a rollback that gave b back woke no one")
	}
	if err := q.MessageExtend(ctx, &queue.ExtendParams{Queue: stepQ, Receipt: taken.Receipt(), VisibilityTimeout: time.Hour}); err != nil {
		t.Fatalf("the later claim of a was undone by the rollback: %v", err)
	}
	var b *queue.Message
	if got := claimStep(t, q, 5); len(got) != 1 || string(got[0].Body) != "b" || got[0].ReadCount != 1 {
		t.Fatalf("after the rollback: %v; want b alone, read once (its claim undone)", got)
	} else {
		b = got[0]
	}
	clock.Advance(2 * time.Hour) // both claims expire again
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.MessageAck(ctx, &queue.AckParams{Queue: stepQ, Receipts: []queue.Receipt{b.Receipt()}}); err != nil {
			return err
		}
		got, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: stepQ, Max: 5, VisibilityTimeout: time.Hour})
		if err != nil || len(got) != 1 || string(got[0].Body) != "a" {
			t.Errorf("claim after acknowledging b in the same transaction: %v, %v; want a alone", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := q.QueueStats(ctx, stepQ); err != nil || st.Claimed != 1 || st.Visible != 0 {
		t.Fatalf("stats %+v, %v; want a claimed and b gone", st, err)
	}
}

// TestStepQueueRollbackGivesBackWhatItsClaimsPassedOver: a transaction
// that acknowledged an expired message, then claimed past it, and rolled
// back leaves the message in the queue.
func TestStepQueueRollbackGivesBackWhatItsClaimsPassedOver(t *testing.T) {
	ctx := t.Context()
	clock, s, q := stepQueueStore(t)
	if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: stepQ, Body: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	a := claimStep(t, q, 1)[0]
	clock.Advance(2 * time.Hour) // its claim expires
	errRollback := errors.New("roll back")
	err := s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.MessageAck(ctx, &queue.AckParams{Queue: stepQ, Receipts: []queue.Receipt{a.Receipt()}}); err != nil {
			return err
		}
		if got, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: stepQ, Max: 5, VisibilityTimeout: time.Hour}); err != nil || len(got) != 0 {
			t.Errorf("claim after acknowledging a: %v, %v; want none", got, err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if got := claimStep(t, q, 5); len(got) != 1 || got[0].ReadCount != 2 {
		t.Fatalf("after the rollback: %v; want a, read a second time", got)
	}
	// An acknowledgement with the receipt of an earlier claim hides
	// nothing: a claimed again since.
	clock.Advance(2 * time.Hour)
	err = s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.MessageAck(ctx, &queue.AckParams{Queue: stepQ, Receipts: []queue.Receipt{a.Receipt()}}); err != nil {
			return err
		}
		if got, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: stepQ, Max: 5, VisibilityTimeout: time.Hour}); err != nil || len(got) != 1 || got[0].ReadCount != 3 {
			t.Errorf("claim after a stale acknowledgement of a: %v, %v; want a, read a third time", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAStepQueueNamedLikeDomainEventsStaysInRows: namespace
// "x_domain_events" has a step queue, worker_x_domain_events, that is
// also namespace "worker_x"'s domain-event queue: it stays in rows, and a
// store with such steps opens again with their messages.
func TestAStepQueueNamedLikeDomainEventsStaysInRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasker.db")
	const ns = "x_domain_events"
	q := queue.StepQueue(ns)
	s := storeToReopen(t, path, q)
	task := &taskertype.Task{ID: uuid.New(), Namespace: ns, Name: "tmpl", Version: "1.0.0", Context: []byte(`{}`)}
	step := &taskertype.Step{ID: uuid.New(), Name: "a", Handler: "h",
		Retry: taskertype.RetryPolicy{MaxAttempts: 1, Backoff: taskertype.BackoffExponential, Base: time.Second}, Timeout: time.Minute}
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		return tx.TaskCreate(t.Context(), &store.TaskCreateParams{Task: task, Steps: []*taskertype.Step{step}, At: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.InTx(t.Context(), func(tx store.Tx) error {
		st, err := tx.StepGet(t.Context(), step.ID)
		if err != nil {
			return err
		}
		st.State = taskertype.StepEnqueued
		if err := tx.StepTransition(t.Context(), &store.StepTransitionParams{Step: st, From: taskertype.StepPending, Event: taskertype.StepEventEnqueue, At: time.Now()}); err != nil {
			return err
		}
		return tx.MessageSend(t.Context(), &queue.SendParams{Queue: q,
			Body: wire.Encode(wire.StepMessage{TaskID: task.ID, StepID: step.ID})})
	})
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, path)
	msgs, err := s.Queue().MessageClaim(t.Context(), &queue.ClaimParams{Queue: q, Max: 10, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) != 1 || msgs[0].ReadCount != 1 {
		t.Fatalf("after reopening: %d messages, %v; want the step's one, from its row", len(msgs), err)
	}
}

// stepQueueStore opens a store on a test clock with the step queue stepQ
// ensured, and returns the clock, the store and its queue.
func stepQueueStore(t *testing.T) (*testclock.Clock, *storesqlite.Store, *queuesqlite.Queue) {
	t.Helper()
	clock := testclock.New(queuetest.Start)
	s := openStore(t, filepath.Join(t.TempDir(), "tasker.db"), clock)
	q := s.Queue()
	if err := q.QueueEnsure(t.Context(), stepQ); err != nil {
		t.Fatal(err)
	}
	return clock, s, q
}
