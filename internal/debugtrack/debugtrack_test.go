package debugtrack

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/taskertype"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTracker(t *testing.T, cfg Config) (*Tracker, *testclock.Clock) {
	t.Helper()
	clk := testclock.New(t0)
	cfg.Clock = clk
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, clk
}

func TestConfig(t *testing.T) {
	cases := []struct {
		name, field string
		cfg         Config
	}{
		{"zero MaxEntries is refused with an error naming it", "MaxEntries", Config{MaxAge: time.Minute}},
		{"negative MaxEntries is refused with an error naming it", "MaxEntries", Config{MaxEntries: -1, MaxAge: time.Minute}},
		{"zero MaxAge is refused with an error naming it", "MaxAge", Config{MaxEntries: 1}},
		{"negative MaxAge is refused with an error naming it", "MaxAge", Config{MaxEntries: 1, MaxAge: -time.Minute}},
		{"negative MaxEvents is refused with an error naming it", "MaxEvents", Config{MaxEntries: 1, MaxAge: time.Minute, MaxEvents: -1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, err := New(c.cfg)
			if tr != nil || !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), c.field) ||
				!strings.Contains(err.Error(), "give") {
				t.Fatalf("got %v, %v; want an ErrInvalid naming %s and saying what to give", tr, err, c.field)
			}
		})
	}
	t.Run("a nil clock means the system clock", func(t *testing.T) {
		tr, err := New(Config{MaxEntries: 1, MaxAge: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		id := uuid.New()
		tr.Record(id, uuid.Nil, uuid.Nil, "", "dispatched", "")
		if e, ok := tr.Get(id); !ok || time.Since(e.First) > time.Minute {
			t.Fatalf("got %+v, %v", e, ok)
		}
	})
}

func TestRecordAndGet(t *testing.T) {
	t.Run("events are kept in order under their correlation id", func(t *testing.T) {
		tr, clk := newTracker(t, Config{MaxEntries: 10, MaxAge: time.Hour})
		id, task, step := uuid.New(), uuid.New(), uuid.New()
		tr.Record(id, task, step, "charge", "dispatched", "")
		clk.Advance(time.Second)
		tr.Record(id, uuid.Nil, uuid.Nil, "", "started", "")
		clk.Advance(time.Second)
		tr.Record(id, task, step, "charge", "finished", "success")
		e, ok := tr.Get(id)
		if !ok || e.ID != id || e.TaskID != task || e.StepID != step || e.StepName != "charge" ||
			!e.First.Equal(t0) || !e.Last.Equal(t0.Add(2*time.Second)) || len(e.Events) != 3 {
			t.Fatalf("got %+v, %v", e, ok)
		}
		want := []EventRecord{{"dispatched", t0, ""}, {"started", t0.Add(time.Second), ""}, {"finished", t0.Add(2 * time.Second), "success"}}
		for i, ev := range e.Events {
			if ev.Name != want[i].Name || !ev.At.Equal(want[i].At) || ev.Detail != want[i].Detail {
				t.Fatalf("event %d: %+v, want %+v", i, ev, want[i])
			}
		}
	})
	t.Run("Get returns a copy that the caller may change", func(t *testing.T) {
		tr, _ := newTracker(t, Config{MaxEntries: 10, MaxAge: time.Hour})
		id := uuid.New()
		tr.Record(id, uuid.Nil, uuid.Nil, "s", "dispatched", "")
		e, _ := tr.Get(id)
		e.Events[0].Name = "changed"
		_ = append(e.Events, EventRecord{Name: "extra"})
		if again, _ := tr.Get(id); again.Events[0].Name != "dispatched" || len(again.Events) != 1 {
			t.Fatalf("the tracker's entry changed: %+v", again)
		}
	})
	t.Run("an unknown id is not found", func(t *testing.T) {
		tr, _ := newTracker(t, Config{MaxEntries: 10, MaxAge: time.Hour})
		if _, ok := tr.Get(uuid.New()); ok {
			t.Fatal("found an unknown id")
		}
	})
	t.Run("events past MaxEvents are counted, not kept", func(t *testing.T) {
		tr, clk := newTracker(t, Config{MaxEntries: 10, MaxAge: time.Hour, MaxEvents: 4})
		id := uuid.New()
		for i := range 10 {
			tr.Record(id, uuid.Nil, uuid.Nil, "s", fmt.Sprint("e", i), "")
			clk.Advance(time.Second)
		}
		e, _ := tr.Get(id)
		if len(e.Events) != 4 || e.Events[3].Name != "e3" || e.DroppedEvents != 6 || tr.DroppedEvents() != 6 ||
			!e.Last.Equal(t0.Add(9*time.Second)) {
			t.Fatalf("got %+v (dropped events %d)", e, tr.DroppedEvents())
		}
	})
	t.Run("the default keeps 32 events per execution", func(t *testing.T) {
		tr, _ := newTracker(t, Config{MaxEntries: 10, MaxAge: time.Hour})
		id := uuid.New()
		for range 40 {
			tr.Record(id, uuid.Nil, uuid.Nil, "s", "e", "")
		}
		if e, _ := tr.Get(id); len(e.Events) != DefaultMaxEvents || e.DroppedEvents != 8 {
			t.Fatalf("kept %d, dropped %d", len(e.Events), e.DroppedEvents)
		}
	})
}

func TestBounds(t *testing.T) {
	t.Run("a new execution past MaxEntries evicts the least recently updated one", func(t *testing.T) {
		tr, clk := newTracker(t, Config{MaxEntries: 3, MaxAge: time.Hour})
		ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
		for _, id := range ids[:3] {
			tr.Record(id, uuid.Nil, uuid.Nil, "s", "dispatched", "")
			clk.Advance(time.Second)
		}
		tr.Record(ids[0], uuid.Nil, uuid.Nil, "s", "started", "") // ids[1] is now the least recent
		tr.Record(ids[3], uuid.Nil, uuid.Nil, "s", "dispatched", "")
		if _, ok := tr.Get(ids[1]); ok {
			t.Fatal("the least recently updated execution was kept")
		}
		for _, id := range []uuid.UUID{ids[0], ids[2], ids[3]} {
			if _, ok := tr.Get(id); !ok {
				t.Fatalf("%s was evicted", id)
			}
		}
		if tr.Len() != 3 || tr.Dropped() != 1 {
			t.Fatalf("len %d dropped %d", tr.Len(), tr.Dropped())
		}
	})
	t.Run("executions older than MaxAge are invisible and Cleanup drops them", func(t *testing.T) {
		tr, clk := newTracker(t, Config{MaxEntries: 10, MaxAge: time.Minute})
		old1, old2, young := uuid.New(), uuid.New(), uuid.New()
		tr.Record(old1, uuid.Nil, uuid.Nil, "s", "dispatched", "")
		tr.Record(old2, uuid.Nil, uuid.Nil, "s", "dispatched", "")
		clk.Advance(30 * time.Second)
		tr.Record(young, uuid.Nil, uuid.Nil, "s", "dispatched", "")
		clk.Advance(30 * time.Second)
		if _, ok := tr.Get(old1); ok {
			t.Fatal("an expired execution is visible")
		}
		if r := tr.Recent(10); len(r) != 1 || r[0].ID != young {
			t.Fatalf("recent %+v, want only the young one", r)
		}
		if n := tr.Cleanup(); n != 2 || tr.Len() != 1 || tr.Dropped() != 2 {
			t.Fatalf("cleanup %d, len %d, dropped %d", n, tr.Len(), tr.Dropped())
		}
		if n := tr.Cleanup(); n != 0 {
			t.Fatalf("a second cleanup dropped %d", n)
		}
	})
	t.Run("Cleanup logs what it dropped at Debug", func(t *testing.T) {
		var logs bytes.Buffer
		clk := testclock.New(t0)
		tr, _ := New(Config{MaxEntries: 10, MaxAge: time.Minute, Clock: clk,
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		tr.Record(uuid.New(), uuid.Nil, uuid.Nil, "s", "dispatched", "")
		clk.Advance(time.Hour)
		tr.Cleanup()
		if !strings.Contains(logs.String(), "level=DEBUG") || !strings.Contains(logs.String(), "dropped=1") {
			t.Fatalf("logs %q", logs.String())
		}
	})
	t.Run("recording sheds expired executions without a Cleanup", func(t *testing.T) {
		tr, clk := newTracker(t, Config{MaxEntries: 100, MaxAge: time.Minute})
		for range 5 {
			tr.Record(uuid.New(), uuid.Nil, uuid.Nil, "s", "dispatched", "")
		}
		clk.Advance(2 * time.Minute)
		for range 3 {
			tr.Record(uuid.New(), uuid.Nil, uuid.Nil, "s", "dispatched", "")
		}
		if tr.Len() != 3 || tr.Dropped() != 5 {
			t.Fatalf("len %d dropped %d, want 3 and 5", tr.Len(), tr.Dropped())
		}
	})
}

func TestRecent(t *testing.T) {
	t.Run("Recent lists the most recently updated executions, newest first", func(t *testing.T) {
		tr, clk := newTracker(t, Config{MaxEntries: 10, MaxAge: time.Hour})
		ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
		for _, id := range ids {
			tr.Record(id, uuid.Nil, uuid.Nil, "s", "dispatched", "")
			clk.Advance(time.Second)
		}
		tr.Record(ids[0], uuid.Nil, uuid.Nil, "s", "finished", "ok")
		r := tr.Recent(2)
		if len(r) != 2 || r[0].ID != ids[0] || r[1].ID != ids[2] {
			t.Fatalf("recent %v", r)
		}
		if all := tr.Recent(100); len(all) != 3 || all[2].ID != ids[1] {
			t.Fatalf("all %v", all)
		}
	})
	t.Run("Recent of zero or fewer is empty", func(t *testing.T) {
		tr, _ := newTracker(t, Config{MaxEntries: 10, MaxAge: time.Hour})
		tr.Record(uuid.New(), uuid.Nil, uuid.Nil, "s", "dispatched", "")
		if len(tr.Recent(0)) != 0 || len(tr.Recent(-1)) != 0 {
			t.Fatal("Recent of nothing returned entries")
		}
	})
}

// TestUnderConcurrentLoad records from many goroutines while others read
// and clean up, and checks the bounds and the bookkeeping.
func TestUnderConcurrentLoad(t *testing.T) {
	run := func(t *testing.T, cfg Config, ids int, advance time.Duration) (*Tracker, int) {
		tr, clk := newTracker(t, cfg)
		space := make([]uuid.UUID, ids)
		for i := range space {
			space[i] = uuid.New()
		}
		const writers, each = 16, 1000
		var wg, readers sync.WaitGroup
		stop := make(chan struct{})
		errs := make(chan string, 16)
		for range 3 {
			readers.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if n := tr.Len(); n > cfg.MaxEntries {
						errs <- fmt.Sprintf("%d entries, bound %d", n, cfg.MaxEntries)
					}
					r := tr.Recent(20)
					for i, e := range r {
						if i > 0 && e.Last.After(r[i-1].Last) {
							errs <- "Recent out of order"
						}
						if len(e.Events) > cfg.MaxEvents {
							errs <- "too many events kept"
						}
						for j := 1; j < len(e.Events); j++ {
							if e.Events[j].At.Before(e.Events[j-1].At) {
								errs <- "events out of order"
							}
						}
					}
					if _, ok := tr.Get(space[rand.IntN(len(space))]); ok && advance > 0 {
						tr.Cleanup()
					}
					clk.Advance(advance)
					time.Sleep(50 * time.Microsecond) // a reader is rare: let the writers through
				}
			})
		}
		for range writers {
			wg.Go(func() {
				for range each {
					id := space[rand.IntN(len(space))]
					tr.Record(id, uuid.Nil, uuid.Nil, "s", "e", "")
				}
			})
		}
		wg.Wait()
		close(stop)
		readers.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		return tr, writers * each
	}

	t.Run("with room for everything every event is kept or counted", func(t *testing.T) {
		cfg := Config{MaxEntries: 1000, MaxAge: time.Hour, MaxEvents: 50}
		tr, total := run(t, cfg, 500, 0)
		var kept, counted int
		for _, e := range tr.Recent(cfg.MaxEntries) {
			kept += len(e.Events)
			counted += e.DroppedEvents
		}
		if kept+counted != total || uint64(counted) != tr.DroppedEvents() || tr.Dropped() != 0 {
			t.Fatalf("%d kept + %d counted, want %d (DroppedEvents %d, Dropped %d)",
				kept, counted, total, tr.DroppedEvents(), tr.Dropped())
		}
	})
	t.Run("under eviction by size and age the bounds hold", func(t *testing.T) {
		cfg := Config{MaxEntries: 64, MaxAge: 50 * time.Millisecond, MaxEvents: 8}
		tr, _ := run(t, cfg, 1000, time.Millisecond)
		if tr.Len() > cfg.MaxEntries || tr.Dropped() == 0 {
			t.Fatalf("len %d dropped %d", tr.Len(), tr.Dropped())
		}
	})
}
