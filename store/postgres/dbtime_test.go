package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	storepg "github.com/tasker-go/tasker/store/postgres"
	"github.com/tasker-go/tasker/taskertype"
)

// openEngineStore opens a store as the engine does: the clock given dates
// transitions, and no test clock is given to the queue.
func openEngineStore(t *testing.T, dbURL string, clock taskertype.Clock) *storepg.Store {
	t.Helper()
	s, err := storepg.Open(context.Background(), storepg.Config{URL: dbURL, Clock: clock, AutoMigrate: true, MaxConns: 4})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A process whose clock runs an hour ahead cannot claim a message that
// another process holds: time that decides claims is the database's, not
// the process's.
func TestClaimTimeIsTheDatabases(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	right := openEngineStore(t, dbURL, taskertype.SystemClock{})
	ahead := openEngineStore(t, dbURL, testclock.New(time.Now().Add(time.Hour)))
	const name = "skewed"
	if err := right.Queue().QueueEnsure(ctx, name); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := right.Queue().MessageSend(ctx, &queue.SendParams{Queue: name, Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	// One claimed outside a transaction, one inside one.
	before := time.Now()
	held, err := right.Queue().MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: 1, VisibilityTimeout: 30 * time.Second})
	if err != nil || len(held) != 1 {
		t.Fatalf("claim: %v, %d messages, want 1", err, len(held))
	}
	err = right.InTx(ctx, func(tx store.Tx) error {
		msgs, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: 1, VisibilityTimeout: 30 * time.Second})
		if err == nil && len(msgs) != 1 {
			t.Errorf("claim in a transaction: %d messages, want 1", len(msgs))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The claim expires 30 s after the database's time (this host's clock
	// and the server's are one here).
	if v := held[0].VisibleAt; v.Before(before.Add(29*time.Second)) || v.After(time.Now().Add(31*time.Second)) {
		t.Errorf("VisibleAt = %v, want about 30s after %v", v, before)
	}

	if msgs, err := ahead.Queue().MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: 10, VisibilityTimeout: time.Second}); err != nil || len(msgs) != 0 {
		t.Errorf("the process an hour ahead claimed %d held messages (err %v), want none", len(msgs), err)
	}
	err = ahead.InTx(ctx, func(tx store.Tx) error {
		msgs, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: 10, VisibilityTimeout: time.Second})
		if err == nil && len(msgs) != 0 {
			t.Errorf("the process an hour ahead claimed %d held messages in a transaction, want none", len(msgs))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ahead.Queue().QueueDepth(ctx, name); err != nil || n != 0 {
		t.Errorf("depth seen by the process an hour ahead = %d (err %v), want 0", n, err)
	}
	// A message sent by the process ahead is visible at once to the others.
	if _, err := ahead.Queue().MessageSend(ctx, &queue.SendParams{Queue: name, Body: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	if msgs, err := right.Queue().MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: 10, VisibilityTimeout: time.Second}); err != nil || len(msgs) != 1 {
		t.Errorf("claim of the message sent by the process ahead: %d messages (err %v), want 1", len(msgs), err)
	}
}
