package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/queue/rabbitmq"
	"github.com/tasker-go/tasker/queue/rabbitmq/amqptest"
	"github.com/tasker-go/tasker/store"
	storepg "github.com/tasker-go/tasker/store/postgres"
	"github.com/tasker-go/tasker/store/storetest"
	"github.com/tasker-go/tasker/taskertype"
)

// openOutboxStore opens a store on dbURL whose messages go to q through the
// outbox.
func openOutboxStore(t testing.TB, dbURL string, clock taskertype.Clock, q queue.Queue, sweep time.Duration) *storepg.Store {
	t.Helper()
	s, err := storepg.Open(context.Background(), storepg.Config{URL: dbURL, Clock: clock, AutoMigrate: true, MaxConns: 10,
		Outbox: storepg.OutboxConfig{Queue: q, Sweep: sweep, Batch: 50, Lease: 300 * time.Millisecond}})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// The store's suite on PostgreSQL with RabbitMQ as its queue: the
// messages of transactions go through the outbox.
func TestConformanceOutbox(t *testing.T) {
	amqptest.URL(t)
	storetest.Run(t, storetest.Harness{
		Name: "postgres+rabbitmq",
		New: func(t *testing.T, clock taskertype.Clock) (store.Store, queue.Queue) {
			_, dbURL := pgtest.Schema(t)
			q := amqptest.Open(t, rabbitmq.Config{Clock: clock})
			return openOutboxStore(t, dbURL, clock, q, 0), q
		},
	})
}

func outboxRows(t *testing.T, dbURL string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM message_outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func sendInTx(t *testing.T, s *storepg.Store, name string, bodies ...string) {
	t.Helper()
	err := s.InTx(t.Context(), func(tx store.Tx) error {
		for _, b := range bodies {
			if err := tx.MessageSend(t.Context(), &queue.SendParams{Queue: name, Body: []byte(b)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
}

// claimAll claims from q until want messages came or 10s passed, and
// returns the bodies claimed (each acknowledged).
func claimAll(t *testing.T, q queue.Queue, name string, want int) map[string]int {
	t.Helper()
	seen := make(map[string]int)
	n := 0
	deadline := time.Now().Add(10 * time.Second)
	for n < want && time.Now().Before(deadline) {
		msgs, err := q.MessageClaim(t.Context(), &queue.ClaimParams{Queue: name, Max: 100, VisibilityTimeout: time.Minute})
		if err != nil {
			t.Fatalf("MessageClaim: %v", err)
		}
		if len(msgs) == 0 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		receipts := make([]queue.Receipt, len(msgs))
		for i, m := range msgs {
			seen[string(m.Body)]++
			receipts[i] = m.Receipt()
			n++
		}
		if err := q.MessageAck(t.Context(), &queue.AckParams{Queue: name, Receipts: receipts}); err != nil {
			t.Fatalf("MessageAck: %v", err)
		}
	}
	return seen
}

func TestOutboxCrashBetweenCommitAndPublishLosesNothing(t *testing.T) {
	amqptest.URL(t)
	_, dbURL := pgtest.Schema(t)
	prefix := amqptest.Prefix()
	q := amqptest.Open(t, rabbitmq.Config{Prefix: prefix})
	if err := q.QueueEnsure(t.Context(), "steps"); err != nil {
		t.Fatal(err)
	}
	// The first process commits and dies before its relay publishes.
	dead := openOutboxStore(t, dbURL, nil, q, time.Hour)
	dead.StopRelay()
	sendInTx(t, dead, "steps", "one", "two", "three")
	if n := outboxRows(t, dbURL); n != 3 {
		t.Fatalf("%d rows in the outbox after the commit, want 3", n)
	}
	if msgs, err := q.MessageClaim(t.Context(), &queue.ClaimParams{Queue: "steps", Max: 10, VisibilityTimeout: time.Minute}); err != nil || len(msgs) != 0 {
		t.Fatalf("claim before any relay ran: %d messages, %v; want none", len(msgs), err)
	}
	// Another process's relay finds them on its sweep.
	openOutboxStore(t, dbURL, nil, q, 50*time.Millisecond)
	seen := claimAll(t, q, "steps", 3)
	for _, b := range []string{"one", "two", "three"} {
		if seen[b] != 1 {
			t.Errorf("message %q claimed %d times, want once", b, seen[b])
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for outboxRows(t, dbURL) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := outboxRows(t, dbURL); n != 0 {
		t.Errorf("%d rows left in the outbox after their confirms, want none", n)
	}
}

func TestOutboxRelaysOfSeveralProcessesPublishEachRowOnce(t *testing.T) {
	amqptest.URL(t)
	_, dbURL := pgtest.Schema(t)
	q := amqptest.Open(t, rabbitmq.Config{})
	if err := q.QueueEnsure(t.Context(), "steps"); err != nil {
		t.Fatal(err)
	}
	// The rows are written while no relay runs, then three relays (three
	// processes) race for them.
	writer := openOutboxStore(t, dbURL, nil, q, time.Hour)
	writer.StopRelay()
	const rows = 1500
	var wg sync.WaitGroup
	for w := range 5 {
		wg.Go(func() {
			for i := range rows / 5 / 10 {
				var bodies []string
				for j := range 10 {
					bodies = append(bodies, fmt.Sprint(w, "-", i, "-", j))
				}
				sendInTx(t, writer, "steps", bodies...)
			}
		})
	}
	wg.Wait()
	var relays []*storepg.Store
	for range 3 {
		relays = append(relays, openOutboxStore(t, dbURL, nil, q, 20*time.Millisecond))
	}
	seen := claimAll(t, q, "steps", rows)
	if len(seen) != rows {
		t.Fatalf("claimed %d distinct messages, want %d", len(seen), rows)
	}
	for b, n := range seen {
		if n != 1 {
			t.Errorf("message %q published %d times, want once", b, n)
		}
	}
	var published uint64
	for _, r := range relays {
		published += r.OutboxStats().Published
	}
	if published != rows {
		t.Errorf("the relays published %d rows, want %d", published, rows)
	}
	// Nothing more arrives.
	time.Sleep(100 * time.Millisecond)
	if msgs, _ := q.MessageClaim(t.Context(), &queue.ClaimParams{Queue: "steps", Max: 10, VisibilityTimeout: time.Minute}); len(msgs) != 0 {
		t.Errorf("%d more messages after all were claimed", len(msgs))
	}
}
