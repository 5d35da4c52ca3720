package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// testRequestAndIdentity: a task's request fields read back; its identity
// hash is unique (the same in one transaction, or in another, is refused
// with store.ErrIdentityTaken), found by TaskList; tasks without one never
// collide.
func testRequestAndIdentity(t *testing.T, e *env) {
	p := diamond(t, e)
	rq := taskertype.TaskRequest{Priority: 3, CorrelationID: newID(t), ParentCorrelationID: newID(t),
		Initiator: "alice", SourceSystem: "shop", Reason: "order placed",
		Tags: []string{"a", `b "quoted", with \ and {braces}`}, IdempotencyKey: "key", IdentityHash: "h1"}
	p.Task.Request = rq
	e.create(t, p)
	got := e.taskGet(t, p.Task.ID).Request
	if !slices.Equal(got.Tags, rq.Tags) || got.Priority != rq.Priority || got.CorrelationID != rq.CorrelationID ||
		got.ParentCorrelationID != rq.ParentCorrelationID || got.Initiator != rq.Initiator || got.SourceSystem != rq.SourceSystem ||
		got.Reason != rq.Reason || got.IdempotencyKey != rq.IdempotencyKey || got.IdentityHash != rq.IdentityHash {
		t.Fatalf("request read back as %+v, want %+v", got, rq)
	}
	found, err := e.s.TaskList(t.Context(), &store.TaskListParams{IdentityHash: "h1"})
	if err != nil || len(found) != 1 || found[0].ID != p.Task.ID || found[0].Request.IdentityHash != "h1" {
		t.Fatalf("TaskList by identity: %v, %v", found, err)
	}
	if found, err := e.s.TaskList(t.Context(), &store.TaskListParams{IdentityHash: "h-none"}); err != nil || len(found) != 0 {
		t.Fatalf("TaskList by an unknown identity: %v, %v", found, err)
	}

	dup := diamond(t, e)
	dup.Task.Request.IdentityHash = "h1"
	err = e.s.InTx(t.Context(), func(tx store.Tx) error { return tx.TaskCreate(t.Context(), dup) })
	if !errors.Is(err, store.ErrIdentityTaken) || !errors.Is(err, taskertype.ErrDuplicateTask) || errors.Is(err, store.ErrTaskExists) {
		t.Fatalf("a second task with a stored identity: %v, want store.ErrIdentityTaken", err)
	}
	a, b := diamond(t, e), diamond(t, e)
	a.Task.Request.IdentityHash, b.Task.Request.IdentityHash = "h2", "h2"
	err = e.s.InTx(t.Context(), func(tx store.Tx) error {
		if err := tx.TaskCreate(t.Context(), a); err != nil {
			return err
		}
		return tx.TaskCreate(t.Context(), b)
	})
	if !errors.Is(err, store.ErrIdentityTaken) {
		t.Fatalf("two tasks with one identity in a transaction: %v, want store.ErrIdentityTaken", err)
	}
	for _, id := range []uuid.UUID{dup.Task.ID, a.Task.ID, b.Task.ID} {
		if _, err := e.s.TaskGet(t.Context(), id); !errors.Is(err, taskertype.ErrNotFound) {
			t.Fatalf("a refused task was stored (TaskGet %s: %v)", id, err)
		}
	}
	// Without an identity (always_unique): any number.
	for range 3 {
		e.create(t, diamond(t, e))
	}
	plain := diamond(t, e)
	e.create(t, plain)
	if got := e.taskGet(t, plain.Task.ID).Request; got.IdentityHash != "" || got.Tags != nil || got.CorrelationID != uuid.Nil {
		t.Fatalf("a task without request fields read back as %+v", got)
	}
}
