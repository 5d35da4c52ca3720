package transition_test

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

// TestRecordersReuse: a Recorder lent by Recorders carries nothing from
// the transaction it served before, committed or rolled back, nor from
// another goroutine's: each transaction publishes exactly its own events
// and runs exactly its own after-commit functions.
func TestRecordersReuse(t *testing.T) {
	st, err := storesqlite.Open(t.Context(), storesqlite.Config{Path: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bus := events.NewBus()
	sub, err := bus.Subscribe(events.Filter{}, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var recs transition.Recorders
	created := func(rec *transition.Recorder, id uuid.UUID) {
		rec.Created(&taskertype.Task{ID: id, Namespace: "ns"}, time.Now())
	}
	failed, after := uuid.New(), 0
	boom := errors.New("boom")
	if err := recs.InTx(t.Context(), st, bus, "p", func(_ store.Tx, rec *transition.Recorder) error {
		created(rec, failed)
		rec.AfterCommit(func() { after++ })
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("the failing transaction returned %v", err)
	}
	const goroutines, each = 8, 200
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				id := uuid.New()
				if err := recs.InTx(t.Context(), st, bus, "p", func(_ store.Tx, rec *transition.Recorder) error {
					if rec.Processor != "p" {
						t.Errorf("the recorder's processor is %q", rec.Processor)
					}
					created(rec, id)
					return nil
				}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if after != 0 {
		t.Fatalf("the rolled-back transaction's after-commit function ran %d times", after)
	}
	seen := make(map[uuid.UUID]int)
	for len(sub.C()) > 0 {
		e := <-sub.C()
		seen[e.TaskID]++
	}
	if seen[failed] != 0 {
		t.Fatalf("the rolled-back transaction's event was published %d times", seen[failed])
	}
	if len(seen) != goroutines*each {
		t.Fatalf("%d tasks' events published, want %d", len(seen), goroutines*each)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("task %s: %d events, want 1", id, n)
		}
	}
}
