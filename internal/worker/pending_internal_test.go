package worker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The claim loop's acquire on a queue whose outcomes ride with its claims:
// at once when no outcome is being stored; after the last one when some
// are; after reportsFirst when they go on; never past its context.
func TestAcquireAfterReports(t *testing.T) {
	w := &Worker{slots: make(chan struct{}, 4)}
	p := newPendingReports()

	n, err := w.acquireAfterReports(t.Context(), p, 3)
	if err != nil || n != 3 {
		t.Fatalf("no outcome being stored: got %d slots, %v; want 3 at once", n, err)
	}
	w.release(n)

	p.add()
	p.add()
	got := make(chan int, 1)
	go func() {
		n, _ := w.acquireAfterReports(context.Background(), p, 2)
		got <- n
	}()
	p.done()
	select {
	case n := <-got:
		t.Fatalf("took %d slots while an outcome was still being stored", n)
	case <-time.After(reportsFirst / 4):
	}
	if len(w.slots) != 0 {
		t.Errorf("%d slots held while waiting for the outcomes: want them given back", len(w.slots))
	}
	p.done()
	select {
	case n := <-got:
		if n != 2 {
			t.Errorf("after the last outcome: got %d slots, want 2", n)
		}
		w.release(n)
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after the last outcome was stored")
	}

	p.add() // an outcome whose storing does not end
	start := time.Now()
	n, err = w.acquireAfterReports(t.Context(), p, 1)
	if err != nil || n != 1 {
		t.Fatalf("an outcome that is never stored: got %d slots, %v; want 1 after the wait", n, err)
	}
	if waited := time.Since(start); waited < reportsFirst {
		t.Errorf("claimed after %v, before the wait of %v ran out", waited, reportsFirst)
	}
	w.release(n)

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(reportsFirst/4, cancel)
	if n, err := w.acquireAfterReports(ctx, p, 1); !errors.Is(err, context.Canceled) || n != 0 || len(w.slots) != 0 {
		t.Errorf("cancelled while waiting: got %d slots (%d held), %v; want 0, none held, context.Canceled", n, len(w.slots), err)
	}
	p.done()
}
