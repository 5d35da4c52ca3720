package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/queue"
	queuepg "github.com/tasker-go/tasker/queue/postgres"
	"github.com/tasker-go/tasker/queue/queuetest"
	"github.com/tasker-go/tasker/taskertype"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openQueue opens a queue on its own pool (a "process") on dbURL.
func openQueue(t testing.TB, dbURL string, clock taskertype.Clock, edit ...func(*queuepg.Config)) *queuepg.Queue {
	t.Helper()
	// No fallback poll unless a test asks: its signals would blur the
	// wake-up tests.
	cfg := queuepg.Config{URL: dbURL, TestClock: clock, AutoMigrate: true, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond, PollInterval: -1}
	for _, e := range edit {
		e(&cfg)
	}
	q, err := queuepg.Open(context.Background(), cfg)
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
		Name: "postgres",
		New: func(t *testing.T, clock taskertype.Clock) queue.Queue {
			_, dbURL := pgtest.Schema(t)
			return openQueue(t, dbURL, clock)
		},
	})
}

func waitWake(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("no wake-up after %s", what)
	}
}

func noWake(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("woken by %s", what)
	case <-time.After(100 * time.Millisecond):
	}
}

// listening waits until q's listener is connected with another pid than
// not, and returns its pid, with the subscriber's channel drained.
func listening(t *testing.T, q *queuepg.Queue, ch <-chan struct{}, not uint32) uint32 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pid := q.ListenerPID(); pid != 0 && pid != not {
			select {
			case <-ch:
			default:
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener did not connect")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWakeupAcrossProcesses(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	clock := testclock.New(queuetest.Start)
	a := openQueue(t, dbURL, clock) // two pools, two listeners: two processes
	b := openQueue(t, dbURL, clock)
	for _, name := range []string{"q", "other"} {
		if err := a.QueueEnsure(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	wake, cancel := a.Subscribe("q")
	defer cancel()
	wakeOther, cancelOther := a.Subscribe("other")
	defer cancelOther()
	listening(t, a, wake, 0)
	select {
	case <-wakeOther:
	default:
	}

	if _, err := b.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte("from b")}); err != nil {
		t.Fatal(err)
	}
	waitWake(t, wake, "a send by another process")
	noWake(t, wakeOther, "a send to another queue")

	// A release without delay by the other process wakes too.
	msgs, err := a.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 1, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("claim: %v, %v", msgs, err)
	}
	if err := b.MessageNack(ctx, &queue.NackParams{Queue: "q", Receipt: msgs[0].Receipt()}); err != nil {
		t.Fatal(err)
	}
	waitWake(t, wake, "a release by another process")

	// So does a message another process sent in a transaction, at commit.
	tx, err := b.DB().Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.SendTx(ctx, tx, &queue.SendParams{Queue: "q", Body: []byte("in tx")}); err != nil {
		t.Fatal(err)
	}
	noWake(t, wake, "a send not committed yet")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitWake(t, wake, "the commit of a send by another process")

	// A delayed message wakes the other process when it falls due: the
	// sender's timer notifies.
	if _, err := b.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte("later"), Delay: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	noWake(t, wake, "a delayed send before its delay ran out")
	waitWake(t, wake, "a delayed message falling due")

	// Four wake-ups came from the other process (a send, a release, a
	// commit, a delay falling due), each taken by the subscriber of q. The
	// demux counts a signal just after the subscriber may have taken it:
	// give the last count a moment.
	st := a.WakeupStats()
	for deadline := time.Now().Add(time.Second); st.Signals < 4 && time.Now().Before(deadline); st = a.WakeupStats() {
		time.Sleep(time.Millisecond)
	}
	if st.Queues != 2 || st.Subscribers != 2 || st.Notifications != 4 || st.Signals != 4 || st.Reconnects != 0 {
		t.Errorf("wake-up stats %+v: want 2 queues, 2 subscribers, 4 notifications and signals, no reconnect", st)
	}
}

func TestListenerReconnects(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	clock := testclock.New(queuetest.Start)
	a := openQueue(t, dbURL, clock)
	b := openQueue(t, dbURL, clock)
	if err := a.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	wake, cancel := a.Subscribe("q")
	defer cancel()
	wake2, cancel2 := a.Subscribe("idle")
	defer cancel2()
	pid := listening(t, a, wake, 0)
	select {
	case <-wake2:
	default:
	}

	// The server ends the listener's connection.
	var ok bool
	if err := b.DB().Pool.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d): %v, %v", pid, ok, err)
	}
	// Every subscriber is woken once after the reconnection: notifications
	// may have been lost meanwhile.
	waitWake(t, wake, "the listener's reconnection")
	waitWake(t, wake2, "the listener's reconnection (subscriber of another queue)")
	newPID := listening(t, a, wake, pid)
	if newPID == pid {
		t.Fatalf("the listener kept pid %d", pid)
	}
	// And it listens again.
	if _, err := b.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	waitWake(t, wake, "a send after the reconnection")
	if st := a.WakeupStats(); st.Reconnects != 1 {
		t.Errorf("wake-up stats %+v: want 1 reconnect", st)
	}
}

func TestDelayedSendWakesWhenDue(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	clock := testclock.New(queuetest.Start)
	q := openQueue(t, dbURL, clock)
	if err := q.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	wake, cancel := q.Subscribe("q")
	defer cancel()
	listening(t, q, wake, 0)
	// Timers run on real time; the fake clock is moved along with it so that
	// the message is due when the timer fires.
	for _, d := range []time.Duration{300 * time.Millisecond, 100 * time.Millisecond} {
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte(d.String()), Delay: d}); err != nil {
			t.Fatal(err)
		}
	}
	noWake(t, wake, "a delayed send before any delay ran out")
	clock.Advance(100 * time.Millisecond)
	waitWake(t, wake, "the earlier delay running out")
	clock.Advance(200 * time.Millisecond)
	// The later delay is found again in the database when the first timer fires.
	waitWake(t, wake, "the later delay running out")
	msgs, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) != 2 {
		t.Fatalf("claim: %d messages, %v; want both", len(msgs), err)
	}
}

// An expired claim sends no notification: the fallback poll finds the
// message visible again and wakes the subscriber, with one statement for all
// of the process's subscribed queues.
func TestPollFindsExpiredClaims(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	clock := testclock.New(queuetest.Start)
	q := openQueue(t, dbURL, clock, func(c *queuepg.Config) { c.PollInterval = 20 * time.Millisecond })
	if !q.Capabilities().PollsSubscribed {
		t.Fatal("Capabilities().PollsSubscribed is false with a PollInterval")
	}
	for _, name := range []string{"a", "b", "unsubscribed"} {
		if err := q.QueueEnsure(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: name, Body: []byte(name)}); err != nil {
			t.Fatal(err)
		}
		if msgs, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: 1, VisibilityTimeout: time.Minute}); err != nil || len(msgs) != 1 {
			t.Fatalf("claim %s: %d messages, %v", name, len(msgs), err)
		}
	}
	wakeA, cancelA := q.Subscribe("a")
	defer cancelA()
	wakeB, cancelB := q.Subscribe("b")
	defer cancelB()
	// A queue subscribed to but never ensured by this process is left out
	// of the statement rather than failing it.
	wakeX, cancelX := q.Subscribe("never_ensured")
	defer cancelX()
	listening(t, q, wakeA, 0)
	<-time.After(100 * time.Millisecond)
	for len(wakeB) > 0 {
		<-wakeB
	}
	noWake(t, wakeA, "claimed messages that are still hidden")
	noWake(t, wakeB, "claimed messages that are still hidden")

	clock.Advance(2 * time.Minute) // both claims expire; nobody notifies
	waitWake(t, wakeA, "the claim on a expiring")
	waitWake(t, wakeB, "the claim on b expiring")
	noWake(t, wakeX, "a poll of a queue that does not exist")
	if msgs, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "a", Max: 1, VisibilityTimeout: time.Minute}); err != nil || len(msgs) != 1 {
		t.Fatalf("claim a again: %d messages, %v", len(msgs), err)
	}
	// Once a's message is claimed again, the poll stops waking a.
	<-time.After(100 * time.Millisecond)
	for len(wakeA) > 0 {
		<-wakeA
	}
	noWake(t, wakeA, "a queue whose only message is claimed")
	if st := q.WakeupStats(); st.Polls == 0 || st.PollWakeups < 2 || st.Notifications != 0 {
		t.Errorf("wake-up stats %+v: want polls, at least 2 queues woken by them, and no notification (one process)", st)
	}
}

func TestTxHelpers(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	clock := testclock.New(queuetest.Start)
	q := openQueue(t, dbURL, clock)
	if err := q.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	pool := q.DB().Pool
	// Rolled back: nothing sent.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.SendTx(ctx, tx, &queue.SendParams{Queue: "q", Body: []byte("never")}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := q.QueueStats(ctx, "q"); err != nil || s.Visible != 0 {
		t.Fatalf("after a rolled-back SendTx: %+v, %v", s, err)
	}
	// Committed; a send to a missing queue fails without aborting tx.
	tx, err = pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, err := q.SendTx(ctx, tx, &queue.SendParams{Queue: "q", Body: []byte("yes")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.SendTx(ctx, tx, &queue.SendParams{Queue: "nowhere"}); !errors.Is(err, taskertype.ErrNotFound) {
		t.Fatalf("SendTx to a missing queue: %v, want ErrNotFound", err)
	}
	if msgs, err := q.ClaimTx(ctx, tx, &queue.ClaimParams{Queue: "nowhere", Max: 1}); err != nil || len(msgs) != 0 {
		t.Fatalf("ClaimTx from a missing queue: %v, %v; want nothing", msgs, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit after the refused send: %v", err)
	}
	// Claim and acknowledge in one transaction.
	tx, err = pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := q.ClaimTx(ctx, tx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) != 1 || msgs[0].ID != id {
		t.Fatalf("ClaimTx: %v, %v", msgs, err)
	}
	if err := q.AckTx(ctx, tx, &queue.AckParams{Queue: "q", Receipts: []queue.Receipt{msgs[0].Receipt()}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := q.QueueStats(ctx, "q"); err != nil || s.Visible+s.Claimed+s.Delayed+s.Archived != 0 {
		t.Fatalf("after ClaimTx and AckTx: %+v, %v; want the message deleted", s, err)
	}
}

func TestSpecifics(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	clock := testclock.New(queuetest.Start)
	q := openQueue(t, dbURL, clock)
	if c := q.Capabilities(); !c.Wakeups || !c.CrossProcessWakeups || !c.SharesStoreDatabase {
		t.Errorf("capabilities %+v", c)
	}
	for _, name := range []string{"Q", "a-b", "x;drop table y", strings.Repeat("a", 129)} {
		if err := q.QueueEnsure(ctx, name); !errors.Is(err, taskertype.ErrInvalid) {
			t.Errorf("QueueEnsure(%q): %v, want ErrInvalid", name, err)
		}
	}
	if _, err := q.QueueStats(ctx, "nowhere"); !errors.Is(err, taskertype.ErrNotFound) {
		t.Errorf("stats of an unknown queue: %v, want ErrNotFound", err)
	}
	if msgs, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "nowhere", Max: 1}); err != nil || len(msgs) != 0 {
		t.Errorf("claim from an unknown queue: %d, %v; want none and no error", len(msgs), err)
	}
	if err := q.MessageNack(ctx, &queue.NackParams{Queue: "nowhere", Receipt: queue.Receipt{ID: 1, ReadCount: 1}}); !errors.Is(err, taskertype.ErrNotFound) {
		t.Errorf("nack on an unknown queue: %v, want ErrNotFound", err)
	}

	// Names longer than an identifier: the tables' names are shortened with
	// a hash, and two such names stay apart.
	long1, long2 := "worker_"+strings.Repeat("n", 60)+"_one", "worker_"+strings.Repeat("n", 60)+"_two"
	for _, name := range []string{long1, long2} {
		if err := q.QueueEnsure(ctx, name); err != nil {
			t.Fatalf("QueueEnsure(%q): %v", name, err)
		}
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: name, Body: []byte(name)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{long1, long2} {
		msgs, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: 10, VisibilityTimeout: time.Minute})
		if err != nil || len(msgs) != 1 || string(msgs[0].Body) != name {
			t.Fatalf("claim from %q: %v, %v", name, msgs, err)
		}
	}

	// With ArchiveOnAck, the archive keeps acknowledged messages until purged.
	a := openQueue(t, dbURL, clock, func(c *queuepg.Config) { c.ArchiveOnAck = true })
	if err := a.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := a.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := a.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) != 3 {
		t.Fatal(msgs, err)
	}
	if err := a.MessageAck(ctx, &queue.AckParams{Queue: "q", Receipts: []queue.Receipt{msgs[0].Receipt(), msgs[1].Receipt()}}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if err := a.MessageAck(ctx, &queue.AckParams{Queue: "q", Receipts: []queue.Receipt{msgs[2].Receipt()}}); err != nil {
		t.Fatal(err)
	}
	if n, err := a.ArchivePurge(ctx, "q", clock.Now().Add(-time.Minute)); err != nil || n != 2 {
		t.Fatalf("ArchivePurge: %d, %v; want the 2 acknowledged an hour ago", n, err)
	}
	if s, err := a.QueueStats(ctx, "q"); err != nil || s.Archived != 1 {
		t.Fatalf("stats after the purge: %+v, %v", s, err)
	}

	// By default, acknowledged messages are deleted, not archived.
	d := openQueue(t, dbURL, clock)
	if _, err := d.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	msgs, err = d.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
	if err != nil || len(msgs) != 1 {
		t.Fatal(msgs, err)
	}
	if err := d.MessageAck(ctx, &queue.AckParams{Queue: "q", Receipts: []queue.Receipt{msgs[0].Receipt()}}); err != nil {
		t.Fatal(err)
	}
	if s, err := d.QueueStats(ctx, "q"); err != nil || s.Archived != 1 || s.Visible+s.Claimed != 0 {
		t.Fatalf("stats after an ack that deletes: %+v, %v", s, err)
	}

	// Closed.
	d.Close()
	if _, err := d.MessageSend(ctx, &queue.SendParams{Queue: "q"}); !errors.Is(err, taskertype.ErrClosed) {
		t.Errorf("send after Close: %v, want ErrClosed", err)
	}
}

func TestOpenWithoutMigrations(t *testing.T) {
	_, dbURL := pgtest.Schema(t)
	_, err := queuepg.Open(t.Context(), queuepg.Config{URL: dbURL})
	if !errors.Is(err, pgdb.ErrNotMigrated) || !strings.Contains(err.Error(), "tasker migrate") {
		t.Fatalf("Open of an unmigrated database without AutoMigrate: %v, want ErrNotMigrated saying to run tasker migrate", err)
	}
}

// TestSubscriptionsComeAndGo subscribes and cancels from many goroutines
// while messages are sent: subscribers present when a message is sent are
// woken, and nothing is left behind.
func TestSubscriptionsComeAndGo(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	clock := testclock.New(queuetest.Start)
	q := openQueue(t, dbURL, clock)
	other := openQueue(t, dbURL, clock)
	const queues = 4
	for i := range queues {
		if err := q.QueueEnsure(ctx, fmt.Sprint("q", i)); err != nil {
			t.Fatal(err)
		}
	}
	// A long-lived subscriber per queue, woken by the other process's sends.
	stay := make([]<-chan struct{}, queues)
	for i := range queues {
		ch, cancel := q.Subscribe(fmt.Sprint("q", i))
		defer cancel()
		stay[i] = ch
	}
	listening(t, q, stay[0], 0)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, cancel := q.Subscribe(fmt.Sprint("q", (g+i)%queues))
				if i%2 == 0 {
					cancel()
				}
				cancel()
			}
		})
	}
	for round := range 20 {
		for i := range queues {
			select { // drain
			case <-stay[i]:
			default:
			}
		}
		for i := range queues {
			if _, err := other.MessageSend(ctx, &queue.SendParams{Queue: fmt.Sprint("q", i), Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range queues {
			waitWake(t, stay[i], fmt.Sprintf("round %d: a send to q%d", round, i))
		}
	}
	close(stop)
	wg.Wait()
	if n := q.Subscribers(); n != queues {
		t.Fatalf("%d subscriptions left, want the %d long-lived ones", n, queues)
	}
}

// TestDepthEstimate: the estimate reads the table's statistics and its
// sequence, not its rows: at once after the sends it counts every live
// message, visible, claimed or delayed, so it is at least the depth,
// whether the statistics have counted them yet or not; a queue never
// ensured is not found.
func TestDepthEstimate(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	q := openQueue(t, dbURL, testclock.New(queuetest.Start))
	if _, err := q.QueueDepthEstimate(ctx, "nowhere"); !errors.Is(err, taskertype.ErrNotFound) {
		t.Errorf("estimate of an unknown queue: %v, want ErrNotFound", err)
	}
	if _, err := q.QueueDepthEstimate(ctx, "x;drop"); !errors.Is(err, taskertype.ErrInvalid) {
		t.Errorf("estimate of a bad name: %v, want ErrInvalid", err)
	}
	const name = "est"
	if err := q.QueueEnsure(ctx, name); err != nil {
		t.Fatal(err)
	}
	if n, err := q.QueueDepthEstimate(ctx, name); err != nil || n != 0 {
		t.Errorf("estimate of an empty queue: %d, %v; want 0", n, err)
	}
	for range 5 {
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: name, Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: name, Body: []byte("{}"), Delay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: 2, VisibilityTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	depth, err := q.QueueDepth(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := q.QueueDepthEstimate(ctx, name); err != nil || n != 6 || depth != 3 {
		t.Errorf("estimate: %d, %v, depth %d; want the 6 live messages and a depth of 3", n, err, depth)
	}
	// After an ANALYZE, which sets the live rows the statistics count.
	if _, err := q.DB().Pool.Exec(ctx, "ANALYZE q_"+name); err != nil {
		t.Fatal(err)
	}
	if n, err := q.QueueDepthEstimate(ctx, name); err != nil || n < 6 || n > 12 {
		t.Errorf("estimate after an ANALYZE: %d, %v; want the 6 live messages (up to 12, if the sends are counted after it)", n, err)
	}
}
