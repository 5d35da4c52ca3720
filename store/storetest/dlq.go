package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

func dlqEntry(t *testing.T, e *env, task uuid.UUID, reason taskertype.DLQReason) *taskertype.DLQEntry {
	return &taskertype.DLQEntry{ID: newID(t), TaskID: task, OriginalState: taskertype.TaskPending, Reason: reason,
		At: e.clock.Now(), TaskSnapshot: json.RawMessage(`{"task_name":"order"}`), Metadata: json.RawMessage(`{"k":1}`)}
}

func (e *env) dlqCreate(t *testing.T, en *taskertype.DLQEntry) bool {
	t.Helper()
	var created bool
	e.inTx(t, func(tx store.Tx) error {
		var err error
		created, err = tx.DLQEntryCreate(t.Context(), &store.DLQEntryCreateParams{Entry: en})
		return err
	})
	return created
}

func testDLQ(t *testing.T, e *env) {
	ctx := t.Context()
	p := diamond(t, e)
	e.create(t, p)
	task := p.Task.ID
	first := dlqEntry(t, e, task, taskertype.DLQStalenessTimeout)
	if !e.dlqCreate(t, first) {
		t.Fatal("the first entry was not created")
	}
	// One pending entry per task: a second is not made.
	e.clock.Advance(time.Minute)
	if e.dlqCreate(t, dlqEntry(t, e, task, taskertype.DLQManual)) {
		t.Fatal("a second pending entry of one task was created")
	}
	got, err := e.s.DLQGet(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.TaskID != task || got.Reason != first.Reason || got.ResolutionStatus != taskertype.DLQPending ||
		!got.At.Equal(first.At) || !got.CreatedAt.Equal(first.At) || string(got.TaskSnapshot) != string(first.TaskSnapshot) ||
		string(got.Metadata) != string(first.Metadata) || !got.ResolvedAt.IsZero() {
		t.Fatalf("read back %+v, want %+v", got, first)
	}
	if _, err := e.s.DLQGet(ctx, newID(t)); !errors.Is(err, taskertype.ErrNotFound) {
		t.Fatalf("DLQGet of an unknown entry: %v", err)
	}
	// A rolled-back entry is not there.
	rolled := dlqEntry(t, e, newID(t), taskertype.DLQManual)
	errBoom := errors.New("boom")
	if err := e.s.InTx(ctx, func(tx store.Tx) error {
		if _, err := tx.DLQEntryCreate(ctx, &store.DLQEntryCreateParams{Entry: rolled}); err != nil {
			return err
		}
		return errBoom
	}); !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	if _, err := e.s.DLQGet(ctx, rolled.ID); !errors.Is(err, taskertype.ErrNotFound) {
		t.Fatalf("a rolled-back entry: %v", err)
	}
	// Closing it lets a new investigation of the task begin.
	e.clock.Advance(time.Minute)
	status, notes, by := taskertype.DLQManuallyResolved, "reset the step", "ops"
	upd, err := e.s.DLQUpdate(ctx, &store.DLQUpdateParams{ID: first.ID, Status: &status, Notes: &notes, ResolvedBy: &by, At: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.s.DLQGet(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.ResolutionStatus != status || again.ResolutionNotes != notes || again.ResolvedBy != by ||
		!again.ResolvedAt.Equal(e.clock.Now()) || !again.UpdatedAt.Equal(e.clock.Now()) || upd.ResolutionStatus != status {
		t.Fatalf("after update %+v", again)
	}
	cancelled := taskertype.DLQCancelled
	if _, err := e.s.DLQUpdate(ctx, &store.DLQUpdateParams{ID: first.ID, Status: &cancelled, At: e.clock.Now()}); !errors.Is(err, taskertype.ErrIllegalTransition) {
		t.Fatalf("moving a closed entry: %v", err)
	}
	if _, err := e.s.DLQUpdate(ctx, &store.DLQUpdateParams{ID: newID(t), Notes: &notes, At: e.clock.Now()}); !errors.Is(err, taskertype.ErrNotFound) {
		t.Fatalf("updating an unknown entry: %v", err)
	}
	e.clock.Advance(time.Minute)
	second := dlqEntry(t, e, task, taskertype.DLQMaxRetriesExceeded)
	if !e.dlqCreate(t, second) {
		t.Fatal("a new entry after the first was closed was not created")
	}
	// List: filters, order, pagination.
	list := func(p store.DLQListParams) []uuid.UUID {
		t.Helper()
		es, err := e.s.DLQList(ctx, &p)
		if err != nil {
			t.Fatal(err)
		}
		var ids []uuid.UUID
		for _, en := range es {
			ids = append(ids, en.ID)
		}
		return ids
	}
	if ids := list(store.DLQListParams{TaskID: task}); len(ids) != 2 || ids[0] != second.ID || ids[1] != first.ID {
		t.Fatalf("newest first: %v", ids)
	}
	if ids := list(store.DLQListParams{Oldest: true, Limit: 1, Offset: 1}); len(ids) != 1 || ids[0] != second.ID {
		t.Fatalf("oldest first, offset 1: %v", ids)
	}
	if ids := list(store.DLQListParams{Status: taskertype.DLQPending}); len(ids) != 1 || ids[0] != second.ID {
		t.Fatalf("pending: %v", ids)
	}
	if ids := list(store.DLQListParams{Reason: taskertype.DLQStalenessTimeout}); len(ids) != 1 || ids[0] != first.ID {
		t.Fatalf("by reason: %v", ids)
	}
	if _, err := e.s.DLQList(ctx, &store.DLQListParams{Limit: store.MaxDLQListLimit + 1}); !errors.Is(err, taskertype.ErrInvalid) {
		t.Fatalf("a limit too large: %v", err)
	}
	// Stats by reason, in DLQReasons order.
	stats, err := e.s.DLQStats(ctx, &store.DLQStatsParams{At: e.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 2 || stats[0].Reason != taskertype.DLQMaxRetriesExceeded || stats[0].Pending != 1 || stats[0].Total != 1 ||
		stats[1].Reason != taskertype.DLQStalenessTimeout || stats[1].ManuallyResolved != 1 ||
		stats[1].AvgResolutionMinutes < 1.99 || stats[1].AvgResolutionMinutes > 2.01 || !stats[1].Oldest.Equal(first.At) {
		t.Fatalf("stats %+v %+v", *stats[0], *stats[len(stats)-1])
	}
}

func testStaleLists(t *testing.T, e *env) {
	ctx := t.Context()
	p := diamond(t, e)
	e.create(t, p)
	created := e.clock.Now()
	e.clock.Advance(time.Minute)
	e.inTx(t, func(tx store.Tx) error {
		return tx.TaskTransition(ctx, &store.TaskTransitionParams{ID: p.Task.ID, From: taskertype.TaskPending,
			To: taskertype.TaskInitializing, Event: taskertype.TaskEventStart, At: e.clock.Now(), Processor: Processor})
	})
	entered := e.clock.Now()
	e.inTx(t, func(tx store.Tx) error {
		return tx.TaskTransition(ctx, &store.TaskTransitionParams{ID: p.Task.ID, From: taskertype.TaskInitializing,
			To: taskertype.TaskWaitingForDependencies, Event: taskertype.TaskEventNoReadySteps, At: entered, Processor: Processor})
	})
	key := store.TemplateKey{Namespace: "shop", Name: "order", Version: "1.2.0"}
	waiting := []taskertype.TaskState{taskertype.TaskWaitingForDependencies}
	keys, err := e.s.TaskStaleTemplates(ctx, &store.TaskStaleTemplatesParams{States: waiting, EnteredBefore: entered, CreatedBefore: created.Add(-time.Second)})
	if err != nil || len(keys) != 1 || keys[0] != key {
		t.Fatalf("stale templates: %v %v", keys, err)
	}
	keys, err = e.s.TaskStaleTemplates(ctx, &store.TaskStaleTemplatesParams{States: waiting, EnteredBefore: entered.Add(-time.Second), CreatedBefore: created.Add(-time.Second)})
	if err != nil || len(keys) != 0 {
		t.Fatalf("stale templates before the task entered its state: %v %v", keys, err)
	}
	list := func(enteredBefore, createdBefore time.Time) int {
		t.Helper()
		ts, err := e.s.TaskStaleList(ctx, &store.TaskStaleListParams{Template: key, Limit: 10, CreatedBefore: createdBefore,
			EnteredBefore: map[taskertype.TaskState]time.Time{taskertype.TaskWaitingForDependencies: enteredBefore}})
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range ts {
			if task.ID != p.Task.ID || !task.UpdatedAt.Equal(entered) || task.State != taskertype.TaskWaitingForDependencies {
				t.Fatalf("stale task %+v", task)
			}
		}
		return len(ts)
	}
	if list(entered, time.Time{}) != 1 || list(entered.Add(-time.Second), time.Time{}) != 0 ||
		list(entered.Add(-time.Second), created) != 1 || list(entered.Add(-time.Second), created.Add(-time.Second)) != 0 {
		t.Fatal("the stale list does not follow the times given")
	}
}

func testLockTry(t *testing.T, e *env) {
	ctx := t.Context()
	release, held, err := e.s.LockTry(ctx, "a")
	if err != nil || !held {
		t.Fatalf("LockTry: %v %v", held, err)
	}
	if _, held, err := e.s.LockTry(ctx, "a"); err != nil || held {
		t.Fatalf("a held lock was taken again: %v %v", held, err)
	}
	other, held, err := e.s.LockTry(ctx, "b")
	if err != nil || !held {
		t.Fatalf("another name: %v %v", held, err)
	}
	other()
	release()
	release() // twice is once
	again, held, err := e.s.LockTry(ctx, "a")
	if err != nil || !held {
		t.Fatalf("after release: %v %v", held, err)
	}
	again()
}
