package orchestration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	storepg "github.com/tasker-go/tasker/store/postgres"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
)

// onBackends runs test on a fresh SQLite store and, when its test database
// is configured, on a fresh PostgreSQL schema.
func onBackends(t *testing.T, test func(t *testing.T, st store.Store, q queue.Queue)) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := storesqlite.Open(t.Context(), storesqlite.Config{Path: filepath.Join(t.TempDir(), "t.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		test(t, st, st.Queue())
	})
	if os.Getenv(pgtest.EnvURL) == "" {
		return
	}
	t.Run("postgres", func(t *testing.T) {
		_, url := pgtest.Schema(t)
		st, err := storepg.Open(t.Context(), storepg.Config{URL: url, AutoMigrate: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		test(t, st, st.Queue())
	})
}

func TestAMessageThatKeepsFailingIsSetAsideAfterMaxDeliveries(t *testing.T) {
	onBackends(t, func(t *testing.T, st store.Store, q queue.Queue) {
		const max = 3
		ctx := t.Context()
		o, err := New(Config{Store: st, Queue: q, MaxDeliveries: max, RedeliveryDelay: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		name := queue.ResultsQueue
		if err := q.QueueEnsure(ctx, name); err != nil {
			t.Fatal(err)
		}
		wake, cancel := q.Subscribe(name)
		defer cancel()
		id, err := q.MessageSend(ctx, &queue.SendParams{Queue: name, Body: []byte(`{"any":"thing"}`)})
		if err != nil {
			t.Fatal(err)
		}
		failing := func(context.Context, store.Tx, *transition.Recorder, *queue.Message) error {
			return errors.New("the database said no")
		}
		for delivery := 1; delivery <= max; {
			n, err := o.round(ctx, name, 10, failing)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 { // released with a delay: wait for it to come back
				select {
				case <-wake:
				case <-time.After(10 * time.Second):
					t.Fatalf("delivery %d never came", delivery)
				}
				continue
			}
			dead, err := q.DeadLetterList(ctx, &queue.DeadLetterListParams{Queue: name})
			if err != nil {
				t.Fatal(err)
			}
			if delivery < max && len(dead) > 0 {
				t.Fatalf("set aside after %d deliveries, want %d", delivery, max)
			}
			if delivery == max {
				if len(dead) != 1 {
					t.Fatalf("%d dead letters after %d failed deliveries, want 1", len(dead), max)
				}
				d := dead[0]
				if d.MessageID != id || d.ReadCount != max || string(d.Body) != `{"any":"thing"}` ||
					!strings.Contains(d.Reason, "the database said no") || !strings.Contains(d.Reason, "3 deliveries") {
					t.Errorf("dead letter %+v, want message %d after %d deliveries with the last error", d, id, max)
				}
			}
			delivery++
		}
		if s, err := q.QueueStats(ctx, name); err != nil || s.Visible+s.Claimed+s.Delayed != 0 {
			t.Errorf("queue %+v (%v) after the dead letter, want it empty", s, err)
		}
		if got := o.DeadLettered(); got != 1 {
			t.Errorf("DeadLettered %d, want 1", got)
		}
	})
}

func TestAnUnreadableMessageIsSetAsideAtOnce(t *testing.T) {
	onBackends(t, func(t *testing.T, st store.Store, q queue.Queue) {
		ctx := t.Context()
		o, err := New(Config{Store: st, Queue: q})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.QueueEnsure(ctx, queue.ResultsQueue); err != nil {
			t.Fatal(err)
		}
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: queue.ResultsQueue, Body: []byte("not a result")}); err != nil {
			t.Fatal(err)
		}
		if n, err := o.round(ctx, queue.ResultsQueue, 10, o.processResult); n != 1 || err != nil {
			t.Fatalf("round: %d messages, %v", n, err)
		}
		dead, err := q.DeadLetterList(ctx, &queue.DeadLetterListParams{})
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) != 1 || dead[0].ReadCount != 1 || !strings.Contains(dead[0].Reason, "cannot be processed") {
			t.Fatalf("dead letters %+v, want the message, set aside at its first delivery", dead)
		}
	})
}
