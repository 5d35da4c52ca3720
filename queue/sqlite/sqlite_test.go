package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/queue/queuetest"
	queuesqlite "github.com/tasker-go/tasker/queue/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openQueue(t testing.TB, path string, clock taskertype.Clock) *queuesqlite.Queue {
	t.Helper()
	q, err := queuesqlite.Open(context.Background(), queuesqlite.Config{Path: path, Clock: clock})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q
}

func TestConformance(t *testing.T) {
	queuetest.Run(t, queuetest.Harness{
		Name: "sqlite",
		New: func(t *testing.T, clock taskertype.Clock) queue.Queue {
			return openQueue(t, filepath.Join(t.TempDir(), "queue.db"), clock)
		},
	})
}

// TestConformanceInMemory runs the suite on queues kept in memory
// (Config.InMemory): the same contract, without the rows.
func TestConformanceInMemory(t *testing.T) {
	queuetest.Run(t, queuetest.Harness{
		Name: "sqlite in memory",
		New: func(t *testing.T, clock taskertype.Clock) queue.Queue {
			q, err := queuesqlite.Open(context.Background(), queuesqlite.Config{
				Path: filepath.Join(t.TempDir(), "queue.db"), Clock: clock, InMemory: func(string) bool { return true }})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { q.Close() })
			return q
		},
	})
}

func TestWakeupStatsCountSignalsAndCoalescedOnes(t *testing.T) {
	ctx := t.Context()
	q := openQueue(t, filepath.Join(t.TempDir(), "queue.db"), testclock.New(queuetest.Start))
	if err := q.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	wake, cancel := q.Subscribe("q")
	defer cancel()
	for range 3 { // the first fills the subscriber's buffer; the others find it full
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	<-wake
	want := queue.WakeupStats{Queues: 1, Subscribers: 1, Signals: 1, Coalesced: 2}
	if st := q.WakeupStats(); st != want {
		t.Fatalf("wake-up stats %+v, want %+v", st, want)
	}
	cancel()
	if st := q.WakeupStats(); st.Queues != 0 || st.Subscribers != 0 {
		t.Fatalf("after unsubscribing: %+v, want no queue and no subscriber", st)
	}
}

func TestReleaseClaims(t *testing.T) {
	ctx := t.Context()
	clock := testclock.New(queuetest.Start)
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := queuesqlite.Open(ctx, queuesqlite.Config{Path: path, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []queue.SendParams{{Queue: "q", Body: []byte("a")}, {Queue: "q", Body: []byte("b")}, {Queue: "q", Body: []byte("delayed"), Delay: time.Hour}} {
		if _, err := q.MessageSend(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Hour})
	if err != nil || len(msgs) != 2 {
		t.Fatalf("claim: %d messages, %v; want 2", len(msgs), err)
	}
	// The process "dies" with two claims outstanding.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = openQueue(t, path, clock)
	wake, cancel := q.Subscribe("q")
	defer cancel()
	n, err := q.ReleaseClaims(ctx)
	if err != nil || n != 2 {
		t.Fatalf("ReleaseClaims: %d, %v; want 2", n, err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("ReleaseClaims did not wake the subscribers")
	}
	msgs, err = q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Hour})
	if err != nil || len(msgs) != 2 || msgs[0].ReadCount != 2 {
		t.Fatalf("claim after release: %d messages, %v; want the 2 released ones, read twice", len(msgs), err)
	}
	// The delayed message keeps its delay.
	s, err := q.QueueStats(ctx, "q")
	if err != nil || s.Delayed != 1 || s.Claimed != 2 {
		t.Fatalf("stats %+v, %v; want 1 delayed and 2 claimed", s, err)
	}
	if n, err := q.ReleaseClaims(ctx); err != nil || n != 2 {
		t.Fatalf("second ReleaseClaims: %d, %v; want 2", n, err)
	}
}

func TestDelayedSendWakesWhenDue(t *testing.T) {
	ctx := t.Context()
	clock := testclock.New(queuetest.Start)
	q := openQueue(t, filepath.Join(t.TempDir(), "queue.db"), clock)
	if err := q.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	wake, cancel := q.Subscribe("q")
	defer cancel()
	// Timers run on real time; the fake clock is moved along with it so that
	// the message is due when the timer fires.
	for _, d := range []time.Duration{300 * time.Millisecond, 100 * time.Millisecond} {
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte(d.String()), Delay: d}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-wake:
		t.Fatal("woken before any delay ran out")
	case <-time.After(50 * time.Millisecond):
	}
	clock.Advance(100 * time.Millisecond)
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up when the earlier delay ran out")
	}
	clock.Advance(200 * time.Millisecond)
	// The later delay is found again in the database when the first timer fires.
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up when the later delay ran out")
	}
	msgs, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) != 2 {
		t.Fatalf("claim: %d messages, %v; want both", len(msgs), err)
	}
}

func TestDelayedMessagesOfAPreviousRunWake(t *testing.T) {
	ctx := t.Context()
	clock := testclock.New(queuetest.Start)
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := queuesqlite.Open(ctx, queuesqlite.Config{Path: path, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: "q", Delay: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	q.Close()

	q = openQueue(t, path, clock)
	wake, cancel := q.Subscribe("q")
	defer cancel()
	clock.Advance(100 * time.Millisecond)
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatal("a message delayed before the restart woke no one when due")
	}
}

func TestSpecifics(t *testing.T) {
	ctx := t.Context()
	clock := testclock.New(queuetest.Start)
	q := openQueue(t, filepath.Join(t.TempDir(), "queue.db"), clock)
	if err := q.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.QueueStats(ctx, "nowhere"); !errors.Is(err, taskertype.ErrNotFound) {
		t.Errorf("stats of an unknown queue: %v, want ErrNotFound", err)
	}
	if err := q.MessageNack(ctx, &queue.NackParams{Queue: "q", Receipt: queue.Receipt{ID: 42, ReadCount: 1}}); !errors.Is(err, taskertype.ErrNotFound) {
		t.Errorf("nack of an unknown message: %v, want ErrNotFound", err)
	}
	if msgs, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "nowhere", Max: 1}); err != nil || len(msgs) != 0 {
		t.Errorf("claim from an unknown queue: %d, %v; want none and no error", len(msgs), err)
	}
	if c := q.Capabilities(); !c.Wakeups || c.CrossProcessWakeups || !c.SharesStoreDatabase {
		t.Errorf("capabilities %+v", c)
	}

	// SendTx: visible on commit, woken only by NotifySent, gone on rollback.
	wake, cancel := q.Subscribe("q")
	defer cancel()
	tx, err := q.DB().W.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := queue.SendParams{Queue: "q", Body: []byte("in tx")}
	if _, err := q.SendTx(ctx, tx, &p); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if s, _ := q.QueueStats(ctx, "q"); s.Visible != 0 {
		t.Fatalf("a rolled-back SendTx left %d messages", s.Visible)
	}
	tx, err = q.DB().W.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.SendTx(ctx, tx, &p); err != nil {
		t.Fatal(err)
	}
	if _, err := q.SendTx(ctx, tx, &queue.SendParams{Queue: "nowhere"}); !errors.Is(err, taskertype.ErrNotFound) {
		t.Fatalf("SendTx to an unknown queue: %v, want ErrNotFound", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
		t.Fatal("woken before NotifySent")
	default:
	}
	q.NotifySent(p)
	select {
	case <-wake:
	default:
		t.Fatal("NotifySent did not wake the subscriber")
	}

	q.Close()
	if _, err := q.MessageSend(ctx, &p); !errors.Is(err, taskertype.ErrClosed) {
		t.Errorf("send after Close: %v, want ErrClosed", err)
	}
}

// BenchmarkQueueSendClaimAck measures one message's round trip: send, claim
// and acknowledge, each its own write transaction.
func BenchmarkQueueSendClaimAck(b *testing.B) {
	ctx := b.Context()
	q := openQueue(b, filepath.Join(b.TempDir(), "queue.db"), nil)
	if err := q.QueueEnsure(ctx, "q"); err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"task_id":"0190b8f2-7d4c-7c1e-9a57-6e0d6a3b1c2d","step_id":"0190b8f2-7d4c-7c1e-9a57-6e0d6a3b1c2e"}`)
	send := &queue.SendParams{Queue: "q", Body: body}
	claim := &queue.ClaimParams{Queue: "q", Max: 1, VisibilityTimeout: time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := q.MessageSend(ctx, send); err != nil {
			b.Fatal(err)
		}
		msgs, err := q.MessageClaim(ctx, claim)
		if err != nil || len(msgs) != 1 {
			b.Fatalf("claim: %d, %v", len(msgs), err)
		}
		if err := q.MessageAck(ctx, &queue.AckParams{Queue: "q", Receipts: []queue.Receipt{msgs[0].Receipt()}}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestClaimsTakeEachMessageOnceAndCopyBodies, in rows and in memory: a
// claim whose visibility timeout is 0 (the message visible again at once)
// returns each message once; a claimed body, or a sent buffer, changed by
// its caller changes nothing in the queue.
func TestClaimsTakeEachMessageOnceAndCopyBodies(t *testing.T) {
	for _, mode := range []struct {
		name     string
		inMemory func(string) bool
	}{{"rows", nil}, {"memory", func(string) bool { return true }}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := t.Context()
			q, err := queuesqlite.Open(ctx, queuesqlite.Config{Path: filepath.Join(t.TempDir(), "queue.db"),
				Clock: testclock.New(queuetest.Start), InMemory: mode.inMemory})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			if err := q.QueueEnsure(ctx, "q"); err != nil {
				t.Fatal(err)
			}
			buf := []byte("body")
			if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: buf}); err != nil {
				t.Fatal(err)
			}
			buf[0] = 'X'
			for i := 1; i <= 2; i++ {
				msgs, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 5})
				if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "body" || msgs[0].ReadCount != i {
					t.Fatalf("claim %d with no visibility timeout: %d messages, %v; want the one message, body \"body\", read %d times", i, len(msgs), err, i)
				}
				msgs[0].Body[0] = 'Y'
			}
		})
	}
}
