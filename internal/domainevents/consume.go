package domainevents

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tasker-go/tasker/internal/consumer"
	"github.com/tasker-go/tasker/queue"
)

// Handler handles one durable domain event. An error (or a panic) releases
// the event to be delivered again after a delay.
type Handler func(ctx context.Context, e *Event) error

// ConsumeConfig configures Consume. The zero value of each optional field
// means its default.
type ConsumeConfig struct {
	Queue     queue.Queue // required
	Namespace string      // required
	Handler   Handler     // required
	Logger    *slog.Logger
	// Batch is the most events claimed at once. Default 16.
	Batch int
	// VisibilityTimeout hides a claimed event while its handler runs; an
	// event not acknowledged by then is delivered again. Default 30s.
	VisibilityTimeout time.Duration
	// RetryDelay is how long an event whose handler failed waits, times
	// its deliveries so far, up to 30 times itself. Default 1s.
	RetryDelay time.Duration
	// MaxDeliveries: an event whose handler failed this many deliveries is
	// set aside as a dead letter. Default 10; negative: never.
	MaxDeliveries int
	// IdlePoll is the fallback poll when no wake-up arrives. Default 1s.
	IdlePoll time.Duration
	// Publisher, if set, counts what the consumer did.
	Publisher *Publisher
}

// ErrConsumeConfig is wrapped by Consume's errors for a bad configuration.
var ErrConsumeConfig = errors.New("domain events: consume")

// Consume claims the durable domain events of a namespace, calls the handler
// for each and acknowledges it once the handler returned nil: at least once,
// since an event whose claim lapsed, or whose process died, is delivered
// again. It returns nil when ctx ends, and an error for a bad configuration
// or a queue that cannot be created.
func Consume(ctx context.Context, c ConsumeConfig) error {
	if c.Queue == nil || c.Handler == nil {
		return fmt.Errorf("%w: a queue and a handler are required", ErrConsumeConfig)
	}
	name := QueueName(c.Namespace)
	if c.Namespace == "" {
		return fmt.Errorf("%w: the namespace is empty; name the namespace whose events to consume (the template's namespace)", ErrConsumeConfig)
	}
	if err := queue.CheckName("consume", name); err != nil {
		return fmt.Errorf("%w: namespace %q: %w", ErrConsumeConfig, c.Namespace, err)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Batch = cmp.Or(c.Batch, 16)
	c.VisibilityTimeout = cmp.Or(c.VisibilityTimeout, 30*time.Second)
	c.RetryDelay = cmp.Or(c.RetryDelay, time.Second)
	c.MaxDeliveries = cmp.Or(c.MaxDeliveries, 10)
	c.IdlePoll = cmp.Or(c.IdlePoll, time.Second)
	if err := c.Queue.QueueEnsure(ctx, name); err != nil {
		return fmt.Errorf("domain events: ensure queue %s: %w", name, err)
	}
	l := &consumer.Loop{Queue: c.Queue, Name: name, Batch: c.Batch, IdlePoll: c.IdlePoll, Logger: c.Logger,
		Round: func(ctx context.Context, max int) (int, error) {
			msgs, err := c.Queue.MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: max, VisibilityTimeout: c.VisibilityTimeout})
			if err != nil {
				return 0, err
			}
			for _, m := range msgs {
				c.handle(ctx, name, m)
			}
			return len(msgs), nil
		}}
	l.Run(ctx)
	return nil
}

func (c *ConsumeConfig) count(f func(p *Publisher)) {
	if c.Publisher != nil {
		f(c.Publisher)
	}
}

// handle runs the handler for one message and acknowledges, releases or
// sets it aside.
func (c *ConsumeConfig) handle(ctx context.Context, name string, m *queue.Message) {
	var e Event
	if err := json.Unmarshal(m.Body, &e); err != nil {
		c.deadLetter(ctx, name, m, fmt.Sprintf("not a domain event: %v", err))
		return
	}
	err := c.call(ctx, &e)
	if ctx.Err() != nil && err != nil {
		return // stopping: the claim lapses and the event is delivered again
	}
	wctx := context.WithoutCancel(ctx)
	if err == nil {
		if err := c.Queue.MessageAck(wctx, &queue.AckParams{Queue: name, Receipts: []queue.Receipt{m.Receipt()}}); err != nil {
			c.Logger.Warn("domain events: acknowledge failed; the event will be delivered again", "queue", name, "event_id", e.ID, "error", err)
			return
		}
		c.count(func(p *Publisher) { p.consumed.Add(1) })
		return
	}
	if c.MaxDeliveries > 0 && m.ReadCount >= c.MaxDeliveries {
		c.deadLetter(wctx, name, m, fmt.Sprintf("the handler failed %d deliveries; the last: %v", m.ReadCount, err))
		return
	}
	delay := min(time.Duration(m.ReadCount)*c.RetryDelay, 30*c.RetryDelay)
	c.Logger.Warn("domain events: handler failed; the event will be delivered again", "queue", name, "event", e.Name,
		"event_id", e.ID, "read_count", m.ReadCount, "retry_in", delay, "error", err)
	if err := c.Queue.MessageNack(wctx, &queue.NackParams{Queue: name, Receipt: m.Receipt(), Delay: delay}); err != nil {
		c.Logger.Warn("domain events: release failed; the event returns after its visibility timeout", "queue", name, "event_id", e.ID, "error", err)
		return
	}
	c.count(func(p *Publisher) { p.released.Add(1) })
}

// call runs the handler, turning a panic into an error.
func (c *ConsumeConfig) call(ctx context.Context, e *Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("domain event handler panicked: %v", r)
		}
	}()
	return c.Handler(ctx, e)
}

func (c *ConsumeConfig) deadLetter(ctx context.Context, name string, m *queue.Message, reason string) {
	c.Logger.Error("domain events: setting an event aside as a dead letter", "queue", name, "message_id", m.ID, "reason", reason)
	if err := c.Queue.MessageDeadLetter(ctx, &queue.DeadLetterParams{Queue: name, Receipt: m.Receipt(), Reason: reason}); err != nil {
		c.Logger.Error("domain events: setting aside failed; the event returns after its visibility timeout", "queue", name, "message_id", m.ID, "error", err)
		return
	}
	c.count(func(p *Publisher) { p.deadLettered.Add(1) })
}
