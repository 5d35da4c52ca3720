package orchestration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/internal/resilience"
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

// failingCommits is a store whose transactions fail at their end, after fn
// succeeded, while fail is set: as a write buffered until the commit and
// refused there would.
type failingCommits struct {
	store.Store
	fail atomic.Bool
}

func (s *failingCommits) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.Store.InTx(ctx, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if s.fail.Load() {
			return errors.New("commit refused: the database said no")
		}
		return nil
	})
}

// A message whose transaction fails only at its commit is set aside too:
// the batch that holds it does not fail forever.
func TestAMessageWhoseTransactionNeverCommitsIsSetAside(t *testing.T) {
	onBackends(t, func(t *testing.T, st store.Store, q queue.Queue) {
		const max = 2
		ctx := t.Context()
		fs := &failingCommits{Store: st}
		o, err := New(Config{Store: fs, Queue: q, MaxDeliveries: max, RedeliveryDelay: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		name := queue.ResultsQueue
		if err := q.QueueEnsure(ctx, name); err != nil {
			t.Fatal(err)
		}
		wake, cancel := q.Subscribe(name)
		defer cancel()
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: name, Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		commitFails := func(context.Context, store.Tx, *transition.Recorder, *queue.Message) error {
			fs.fail.Store(true)
			return nil
		}
		for round := 1; ; round++ {
			if round > 20 {
				t.Fatal("the message was never set aside")
			}
			fs.fail.Store(false)
			if _, err := o.round(ctx, name, 10, commitFails); err != nil {
				t.Logf("round %d: %v", round, err)
			}
			fs.fail.Store(false)
			dead, err := q.DeadLetterList(ctx, &queue.DeadLetterListParams{})
			if err != nil {
				t.Fatal(err)
			}
			if len(dead) == 1 {
				if dead[0].ReadCount != max || !strings.Contains(dead[0].Reason, "commit refused") {
					t.Errorf("dead letter %+v, want it after %d deliveries with the commit's error", dead[0], max)
				}
				return
			}
			select {
			case <-wake:
			case <-time.After(100 * time.Millisecond): // a failed round leaves the message visible
			}
		}
	})
}

// A delivery refused by an open circuit breaker does not set the message
// aside, whatever its ReadCount: the backend is down, not the message. The
// refused deliveries still raise ReadCount (every delivery does), so the
// first ordinary failure after them may set it aside.
func TestAMessageIsNotSetAsideWhileTheBreakerIsOpen(t *testing.T) {
	onBackends(t, func(t *testing.T, st store.Store, q queue.Queue) {
		const max = 2
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
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: name, Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		open := func(context.Context, store.Tx, *transition.Recorder, *queue.Message) error {
			return fmt.Errorf("process: %w", &resilience.OpenError{Name: "store", State: resilience.StateOpen})
		}
		for delivery := 1; delivery <= 2*max; {
			n, err := o.round(ctx, name, 10, open)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				select {
				case <-wake:
				case <-time.After(10 * time.Second):
					dead, _ := q.DeadLetterList(ctx, &queue.DeadLetterListParams{})
					t.Fatalf("delivery %d never came; dead letters: %d", delivery, len(dead))
				}
				continue
			}
			delivery++
		}
		if dead, err := q.DeadLetterList(ctx, &queue.DeadLetterListParams{}); err != nil || len(dead) != 0 {
			t.Fatalf("dead letters %v (%v) after %d deliveries refused by an open breaker, want none", dead, err, 2*max)
		}
	})
}
