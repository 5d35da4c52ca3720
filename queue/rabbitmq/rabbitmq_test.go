package rabbitmq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/queue/queuetest"
	"github.com/tasker-go/tasker/queue/rabbitmq"
	"github.com/tasker-go/tasker/queue/rabbitmq/amqptest"
	"github.com/tasker-go/tasker/taskertype"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	amqptest.URL(t)
	queuetest.Run(t, queuetest.Harness{
		Name: "rabbitmq",
		New: func(t *testing.T, clock taskertype.Clock) queue.Queue {
			return amqptest.Open(t, rabbitmq.Config{Clock: clock, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
		},
	})
}

// deleteQueue deletes a queue on the broker behind the provider's back, as
// an operator would.
func deleteQueue(t *testing.T, name string) {
	t.Helper()
	conn, err := amqp.Dial(amqptest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDelete(name, false, false, false); err != nil {
		t.Fatalf("delete queue %s: %v", name, err)
	}
}

func TestAPublishNoQueueTakesIsAnErrorAndThePublishAgainDelivers(t *testing.T) {
	prefix := amqptest.Prefix()
	q := amqptest.Open(t, rabbitmq.Config{Prefix: prefix})
	ctx := t.Context()
	if err := q.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	send := func(body string) error {
		_, err := q.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte(body)})
		return err
	}
	batch := func(body string) error {
		return q.MessageSendBatch(ctx, []*queue.SendParams{{Queue: "q", Body: []byte(body)}})
	}
	for _, c := range []struct {
		how  string
		send func(string) error
	}{{"one by one", send}, {"in a batch", batch}} {
		deleteQueue(t, prefix+"q")
		if err := c.send("dropped"); !errors.Is(err, rabbitmq.ErrReturned) {
			t.Fatalf("%s: a publish to a deleted queue: %v, want ErrReturned", c.how, err)
		}
		// The provider declared the queue again: the publish made again
		// (as the outbox makes it) delivers.
		if err := c.send("again " + c.how); err != nil {
			t.Fatalf("%s: the publish made again: %v", c.how, err)
		}
		got, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || string(got[0].Body) != "again "+c.how {
			t.Fatalf("%s: claimed %d messages (%v), want the one published again", c.how, len(got), got)
		}
		if err := q.MessageAck(ctx, &queue.AckParams{Queue: "q", Receipts: []queue.Receipt{got[0].Receipt()}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReturnsOfAGivenUpBatchDoNotStopTheConnection: a batch to a deleted
// queue gives up at its first return, and the returns of the rest (more
// than the buffer holds) are swept: the connection's reader is never
// stopped by a full buffer, so publishes and claims go on.
func TestReturnsOfAGivenUpBatchDoNotStopTheConnection(t *testing.T) {
	prefix := amqptest.Prefix()
	q := amqptest.Open(t, rabbitmq.Config{Prefix: prefix})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := q.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	deleteQueue(t, prefix+"q")
	batch := make([]*queue.SendParams, 3000) // over maxReturnsBuffered (1,024)
	for i := range batch {
		batch[i] = &queue.SendParams{Queue: "q", Body: []byte("dropped")}
	}
	if err := q.MessageSendBatch(ctx, batch); !errors.Is(err, rabbitmq.ErrReturned) {
		t.Fatalf("a batch to a deleted queue: %v, want ErrReturned", err)
	}
	if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte("after")}); err != nil {
		t.Fatalf("a publish after the returned batch: %v (the connection is stuck?)", err)
	}
	var bodies []string
	for len(bodies) < 1 {
		got, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 3000, VisibilityTimeout: time.Minute})
		if err != nil {
			t.Fatalf("claim after the returned batch: %v (the connection is stuck?)", err)
		}
		for _, m := range got {
			bodies = append(bodies, string(m.Body))
		}
		if ctx.Err() != nil {
			t.Fatal("nothing to claim after the returned batch")
		}
	}
	if bodies[len(bodies)-1] != "after" {
		t.Fatalf("claimed %d messages ending %q, want the last to be the publish after the batch", len(bodies), bodies[len(bodies)-1])
	}
}

// TestTwoDeliveriesOfOneMessageIDAreNeverTakenForEachOther: two processes
// that made the same message id (a collision of the 63-bit ids) sent two
// messages; the claims of both are held apart, by their handles.
func TestTwoDeliveriesOfOneMessageIDAreNeverTakenForEachOther(t *testing.T) {
	prefix := amqptest.Prefix()
	q := amqptest.Open(t, rabbitmq.Config{Prefix: prefix})
	ctx := t.Context()
	if err := q.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(amqptest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	const id = 4242
	for _, body := range []string{"a", "b"} {
		err := ch.PublishWithContext(ctx, "", prefix+"q", false, false, amqp.Publishing{Body: []byte(body),
			Headers: amqp.Table{"x-tasker-id": int64(id), "x-tasker-enqueued": time.Now().UnixMicro()}})
		if err != nil {
			t.Fatal(err)
		}
	}
	var got []*queue.Message
	for deadline := time.Now().Add(5 * time.Second); len(got) < 2 && time.Now().Before(deadline); {
		m, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 2, VisibilityTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m...)
	}
	if len(got) != 2 || got[0].ID != id || got[1].ID != id || got[0].Receipt() == got[1].Receipt() {
		t.Fatalf("claimed %+v, want two messages of id %d with distinct receipts", got, id)
	}
	a, b := got[0], got[1]
	if string(a.Body) != "a" {
		a, b = b, a
	}
	if s, err := q.QueueStats(ctx, "q"); err != nil || s.Claimed != 2 {
		t.Fatalf("stats %+v (%v), want 2 claimed", s, err)
	}
	// Acknowledging a takes a, not b: b's claim is still held, and b
	// released comes back.
	if err := q.MessageAck(ctx, &queue.AckParams{Queue: "q", Receipts: []queue.Receipt{a.Receipt()}}); err != nil {
		t.Fatal(err)
	}
	if err := q.MessageExtend(ctx, &queue.ExtendParams{Queue: "q", Receipt: b.Receipt(), VisibilityTimeout: time.Minute}); err != nil {
		t.Fatalf("extend b after a was acknowledged: %v, want its claim still held", err)
	}
	if err := q.MessageNack(ctx, &queue.NackParams{Queue: "q", Receipt: b.Receipt()}); err != nil {
		t.Fatalf("release b: %v", err)
	}
	again, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 2, VisibilityTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || string(again[0].Body) != "b" {
		t.Fatalf("claimed %+v after a was acknowledged and b released, want b alone", again)
	}
}

// TestAClaimTakesPushedDeliveriesWithoutAGet: while a queue's consumer runs
// under its prefetch, the broker pushes the queue's messages, so a claim
// takes those held ready without a basic.get (a round trip to the broker on
// each step's hop); with none held ready it still asks the broker.
func TestAClaimTakesPushedDeliveriesWithoutAGet(t *testing.T) {
	q := amqptest.Open(t, rabbitmq.Config{Prefix: amqptest.Prefix()})
	ctx := t.Context()
	if err := q.QueueEnsure(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	wake, cancel := q.Subscribe("q")
	defer cancel()
	for round := range 3 {
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: "q", Body: []byte("m")}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-wake: // the consumer holds the delivery
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no wake-up within 5s of a send", round)
		}
		gets := rabbitmq.BasicGets(q)
		got, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("round %d: claimed %d messages, want the one pushed", round, len(got))
		}
		if n := rabbitmq.BasicGets(q) - gets; n != 0 {
			t.Errorf("round %d: the claim of a pushed delivery made %d basic.get, want 0", round, n)
		}
		if err := q.MessageAck(ctx, &queue.AckParams{Queue: "q", Receipts: []queue.Receipt{got[0].Receipt()}}); err != nil {
			t.Fatal(err)
		}
	}
	gets := rabbitmq.BasicGets(q)
	got, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "q", Max: 10, VisibilityTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 || rabbitmq.BasicGets(q) == gets {
		t.Errorf("a claim with nothing held ready: %d messages and %d basic.get, want none and the broker asked", len(got), rabbitmq.BasicGets(q)-gets)
	}
}
