package tasker

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/queue/rabbitmq"
	storepg "github.com/tasker-go/tasker/store/postgres"
	"github.com/tasker-go/tasker/taskertype"
)

// The values of Config.Messaging.
const (
	MessagingPostgres = "postgres"
	MessagingRabbitMQ = "rabbitmq"
)

// Messagings are the values Config.Messaging takes ("" is postgres).
var Messagings = []string{MessagingPostgres, MessagingRabbitMQ}

// checkMessaging refuses a Messaging the engine does not know, or one that
// lacks what it needs.
func checkMessaging(cfg *Config) error {
	if cfg.Messaging != "" && !slices.Contains(Messagings, cfg.Messaging) {
		return fmt.Errorf("tasker: %w: Config.Messaging %q: use postgres or rabbitmq", taskertype.ErrInvalid, cfg.Messaging)
	}
	if cfg.Messaging != MessagingRabbitMQ || cfg.Store != nil {
		return nil
	}
	if cfg.DatabaseURL == "" {
		return fmt.Errorf("tasker: %w: messaging rabbitmq needs PostgreSQL for the store and its outbox: give a DatabaseURL (--database-url) too", taskertype.ErrInvalid)
	}
	if cfg.AMQPURL == "" {
		return fmt.Errorf("tasker: %w: messaging rabbitmq needs the broker's URL: give AMQPURL (--amqp-url or TASKER_AMQP_URL), e.g. amqp://guest:guest@127.0.0.1:5672/", taskertype.ErrInvalid)
	}
	return nil
}

// openRabbitMQ opens the broker and the PostgreSQL store whose outbox
// relays to it; the engine closes both (the store first: its relay stops
// before the broker's connection does).
func (e *Engine) openRabbitMQ(ctx context.Context) error {
	cfg := e.cfg
	if err := checkMessaging(&cfg); err != nil {
		return err
	}
	// A queue's consumer holds at most as many deliveries as the workers
	// have slots.
	prefetch := cfg.WorkerConcurrency
	q, err := rabbitmq.Open(ctx, rabbitmq.Config{URL: cfg.AMQPURL, Prefix: cfg.AMQPPrefix, Prefetch: prefetch, PriorityAging: cfg.PriorityAging, Logger: cfg.Logger, Clock: cfg.Clock})
	if err != nil {
		return fmt.Errorf("tasker: %w", err)
	}
	st, err := storepg.Open(ctx, storepg.Config{URL: cfg.DatabaseURL, Logger: cfg.Logger, Clock: cfg.Clock, AutoMigrate: cfg.AutoMigrate,
		Outbox: storepg.OutboxConfig{Queue: q}})
	if err != nil {
		_ = q.Close()
		return fmt.Errorf("tasker: %w", err)
	}
	// The orchestration queues exist from the start, so that a process
	// that only reads (tasker dead-letters) knows their dead letters.
	for _, name := range []string{queue.ResultsQueue, queue.TasksQueue} {
		if err := q.QueueEnsure(ctx, name); err != nil {
			_ = st.Close()
			_ = q.Close()
			return fmt.Errorf("tasker: %w", err)
		}
	}
	e.closer, e.store, e.queue = closers{st, q}, st, q
	return nil
}

// closers closes each in turn and joins their errors.
type closers []interface{ Close() error }

func (c closers) Close() error {
	var errs []error
	for _, x := range c {
		errs = append(errs, x.Close())
	}
	return errors.Join(errs...)
}
