package tasker

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/tasker-go/tasker/internal/domainevents"
)

type (
	// DomainEvent is an event a step declared under publishes_events,
	// published once the step's outcome was recorded (docs/events.md).
	DomainEvent = domainevents.Event
	// DomainEventMetadata says where and when a domain event was fired.
	DomainEventMetadata = domainevents.Metadata
	// DomainEventOutcome is the step outcome an event was published for.
	DomainEventOutcome = domainevents.Outcome
	// DomainEventFailure is the payload of an event published for a
	// failed attempt.
	DomainEventFailure = domainevents.FailurePayload
	// DomainEventSubscription receives the fast and broadcast domain
	// events whose name matches its pattern, until closed.
	DomainEventSubscription = domainevents.Subscription
	// DomainEventHandler handles one durable domain event; an error
	// releases it to be delivered again after a delay.
	DomainEventHandler = domainevents.Handler
	// DomainEventStats counts the domain events of this process.
	DomainEventStats = domainevents.Stats
)

// Domain event outcomes.
const (
	DomainEventSuccess          = domainevents.OutcomeSuccess
	DomainEventRetryableFailure = domainevents.OutcomeRetryableFailure
	DomainEventPermanentFailure = domainevents.OutcomePermanentFailure
)

// DomainEventQueue names the queue of a namespace's durable domain events:
// {namespace}_domain_events.
func DomainEventQueue(namespace string) string { return domainevents.QueueName(namespace) }

// SubscribeDomainEvents delivers the fast and broadcast domain events of
// this process whose name matches pattern, a glob ("order.*", "*",
// "payment.?ailed"), with a buffer of size events. Publishing never waits:
// an event that does not fit is dropped and counted
// (DomainEventSubscription.Dropped, Stats.DomainEvents.Dropped). Close the
// subscription when done. Durable events are read with
// ConsumeDomainEvents instead.
func (e *Engine) SubscribeDomainEvents(pattern string, size int) (*DomainEventSubscription, error) {
	s, err := e.domain.Bus().Subscribe(pattern, size)
	if err != nil {
		return nil, fmt.Errorf("tasker: subscribe to domain events: %w", err)
	}
	return s, nil
}

// ConsumeDomainEventsOptions tunes ConsumeDomainEvents; nil or a zero
// field means its default.
type ConsumeDomainEventsOptions struct {
	// Batch is the most events claimed at once. Default 16.
	Batch int
	// VisibilityTimeout hides a claimed event while its handler runs; an
	// event not acknowledged by then is delivered again. Default: the
	// engine's ClaimTimeout.
	VisibilityTimeout time.Duration
	// MaxDeliveries: an event whose handler failed this many deliveries
	// is set aside as a dead letter (Engine.DeadLetters). Default 10;
	// negative: never.
	MaxDeliveries int
}

// ConsumeDomainEvents reads the durable (and broadcast) domain events of a
// namespace from its queue, {namespace}_domain_events, in any process:
// each is claimed, passed to h and acknowledged when h returns nil. A
// handler error or panic releases the event to be delivered again after a
// delay growing with its deliveries; an event whose claim lapses (the
// consumer died) is delivered again. Delivery is at least once: use
// DomainEvent.ID to drop duplicates. It blocks until ctx ends and then
// returns nil; it returns an error at once for a bad namespace or a
// missing handler. Several consumers of one namespace share its events.
func (e *Engine) ConsumeDomainEvents(ctx context.Context, namespace string, h DomainEventHandler, opts *ConsumeDomainEventsOptions) error {
	if opts == nil {
		opts = &ConsumeDomainEventsOptions{}
	}
	err := domainevents.Consume(ctx, domainevents.ConsumeConfig{
		Queue: e.queue, Namespace: namespace, Handler: h, Logger: e.log, Batch: opts.Batch,
		VisibilityTimeout: cmp.Or(opts.VisibilityTimeout, e.cfg.ClaimTimeout), MaxDeliveries: opts.MaxDeliveries,
		IdlePoll: e.cfg.IdlePoll, Publisher: e.domain,
	})
	if err != nil {
		return fmt.Errorf("tasker: %w", err)
	}
	return nil
}
