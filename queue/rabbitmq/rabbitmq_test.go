package rabbitmq_test

import (
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
