// Package orchestration drives tasks through their state machine: it creates
// tasks, enqueues the steps whose dependencies are satisfied, processes the
// results workers send back, schedules retries and finalizes tasks.
//
// Every change is a compare-and-set inside one store transaction, together
// with the messages it implies, and each result is processed under the task's
// row lock, so any number of orchestrators may run against one store.
package orchestration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/background"
	"github.com/tasker-go/tasker/internal/consumer"
	"github.com/tasker-go/tasker/internal/dlq"
	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/group"
	"github.com/tasker-go/tasker/internal/statemanager"
	"github.com/tasker-go/tasker/internal/stats"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/internal/wire"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// Config configures an Orchestrator. The zero value of each optional field
// means its default.
type Config struct {
	Store store.Store // required
	Queue queue.Queue // required
	// Bus receives an event for every committed transition; nil: none.
	Bus    *events.Bus
	Logger *slog.Logger // default: discard
	Clock  taskertype.Clock
	// Processor names this orchestrator in the transition log.
	Processor string
	// ClaimBatch is the most result messages claimed at once. Default 64.
	ClaimBatch int
	// VisibilityTimeout hides a claimed result while it is processed; if
	// this process dies, another picks the result up after it. Default 30s.
	VisibilityTimeout time.Duration
	// IdlePoll is the fallback poll interval when no wake-up arrives.
	// Default 1s.
	IdlePoll time.Duration
	// Rand returns uniform values in [0, 1) for backoff jitter. Default
	// math/rand/v2.
	Rand func() float64
	// MaxDeliveries is how many times a message of the orchestration
	// queues is delivered and fails before it is set aside as a dead
	// letter (queue.Queue.MessageDeadLetter) instead of being tried again.
	// Default 5.
	MaxDeliveries int
	// RedeliveryDelay is how long a message whose processing failed waits
	// before it is tried again, times its deliveries so far, up to 30
	// times itself. Default 1s.
	RedeliveryDelay time.Duration
	// StoreHoldsRows says the store answers a task's steps without a
	// read: the embedded backend from its row cache, PostgreSQL from the
	// rows the transaction's Prefetch holds. The state manager would save
	// nothing there and is not used (docs/concurrency.md, #2/#3).
	StoreHoldsRows bool
	// Templates returns a task's template, through a cache: orchestration
	// reads it when a step succeeds, to apply a decision step's outcome.
	// Nil: every step completes as a standard step (tasks made of
	// standard steps only).
	Templates func(ctx context.Context, namespace, name, version string) (*template.Template, error)
	// MaxCreatedSteps bounds the steps decisions create at run time in one
	// task; a decision that would pass it fails. Default 100 (tasker-core's).
	MaxCreatedSteps int
	// MaxDecisionDepth bounds how many decisions may be nested on one
	// chain of dependencies; a decision deeper fails. Default 20
	// (tasker-core's).
	MaxDecisionDepth int
	// MaxBatchWorkers bounds the workers one batchable step's outcome may
	// create; a plan with more fails the step. Default 1000.
	MaxBatchWorkers int
	// DomainEvents, if set, is called in the transaction that records a
	// step's outcome, once the outcome is final (the step completed,
	// waits for a retry or failed for good), to publish the step's
	// declared domain events (internal/domainevents). An error fails
	// the transaction.
	DomainEvents func(ctx context.Context, tx store.Tx, rec *transition.Recorder, task *taskertype.Task, step *taskertype.Step) error
	// DomainEventQueue, if set, names the durable domain event queue of
	// a namespace: it is created with the namespace's step queue.
	DomainEventQueue func(namespace string) string
}

// LocalWorker is a worker in this process that claims steps within
// orchestration's transaction; see worker.Worker.ClaimInTx.
type LocalWorker interface {
	ClaimInTx(ctx context.Context, tx store.Tx, rec *transition.Recorder, queue string) (after func(committed bool), err error)
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = taskertype.SystemClock{}
	}
	if c.Processor == "" {
		c.Processor = "orchestrator"
	}
	if c.ClaimBatch == 0 {
		c.ClaimBatch = 64
	}
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = 30 * time.Second
	}
	if c.IdlePoll == 0 {
		c.IdlePoll = time.Second
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.MaxDeliveries == 0 {
		c.MaxDeliveries = 5
	}
	if c.RedeliveryDelay == 0 {
		c.RedeliveryDelay = time.Second
	}
	if c.MaxCreatedSteps == 0 {
		c.MaxCreatedSteps = DefaultMaxCreatedSteps
	}
	if c.MaxDecisionDepth == 0 {
		c.MaxDecisionDepth = DefaultMaxDecisionDepth
	}
	if c.MaxBatchWorkers == 0 {
		c.MaxBatchWorkers = DefaultMaxBatchWorkers
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("orchestration: Config.Store is required")
	case c.Queue == nil:
		return errors.New("orchestration: Config.Queue is required")
	case c.ClaimBatch < 1:
		return fmt.Errorf("orchestration: ClaimBatch must be at least 1, got %d", c.ClaimBatch)
	case c.VisibilityTimeout < time.Second:
		return fmt.Errorf("orchestration: VisibilityTimeout must be at least 1s, got %v", c.VisibilityTimeout)
	case c.IdlePoll < time.Millisecond:
		return fmt.Errorf("orchestration: IdlePoll must be at least 1ms, got %v", c.IdlePoll)
	case c.MaxDeliveries < 1:
		return fmt.Errorf("orchestration: MaxDeliveries must be at least 1, got %d", c.MaxDeliveries)
	case c.MaxCreatedSteps < 0:
		return fmt.Errorf("orchestration: MaxCreatedSteps must not be negative, got %d", c.MaxCreatedSteps)
	case c.MaxDecisionDepth < 0:
		return fmt.Errorf("orchestration: MaxDecisionDepth must not be negative, got %d", c.MaxDecisionDepth)
	case c.MaxBatchWorkers < 0:
		return fmt.Errorf("orchestration: MaxBatchWorkers must not be negative, got %d", c.MaxBatchWorkers)
	case c.RedeliveryDelay < 0:
		return fmt.Errorf("orchestration: RedeliveryDelay must not be negative, got %v", c.RedeliveryDelay)
	}
	return nil
}

// Orchestrator processes results and task commands.
type Orchestrator struct {
	cfg   Config
	log   *slog.Logger
	store store.Store
	queue queue.Queue
	clock taskertype.Clock
	// txQueue: the queue shares the store's database, so claims and
	// acknowledgements go in the store's transactions.
	txQueue bool
	local   atomic.Pointer[LocalWorker]
	// machines is the state manager: task state machines by task ID; nil
	// when the store holds the rows (Config.StoreHoldsRows).
	machines *statemanager.Cache[uuid.UUID, *TaskMachine]
	// events times every event orchestration processes (a result, a task
	// command, a creation) and remembers when it last processed one.
	events  *stats.Latency
	creates group.Committer[*createReq]
	ensured sync.Map       // namespaces whose step queue exists: one entry per namespace
	run     background.Run // the consumer loops, between Start and Stop

	// deadLettered counts the messages this orchestrator set aside.
	deadLettered atomic.Uint64
}

// New checks cfg and returns an orchestrator that is not yet running.
func New(cfg Config) (*Orchestrator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o := &Orchestrator{
		cfg: cfg, log: cfg.Logger, store: cfg.Store, queue: cfg.Queue, clock: cfg.Clock,
		txQueue: cfg.Queue.Capabilities().SharesStoreDatabase,
	}
	o.creates = group.Committer[*createReq]{Max: maxCreateBatch, Commit: func(reqs []*createReq) { o.createBatch(reqs, o.creates.More) }}
	var err error
	if !cfg.StoreHoldsRows {
		if o.machines, err = newMachines(); err != nil {
			return nil, err
		}
	}
	if o.events, err = stats.NewLatency(stats.LatencyConfig{Clock: cfg.Clock}); err != nil {
		return nil, err
	}
	return o, nil
}

// SetLocalWorker makes a new task's first steps be claimed and started by w
// in the transaction that creates the task.
func (o *Orchestrator) SetLocalWorker(w LocalWorker) { o.local.Store(&w) }

// Start ensures the orchestration queues exist and starts consuming them.
// Starting a started orchestrator does nothing.
func (o *Orchestrator) Start(ctx context.Context) error {
	if o.run.Running() {
		return nil
	}
	for _, name := range []string{queue.ResultsQueue, queue.TasksQueue} {
		if err := o.queue.QueueEnsure(ctx, name); err != nil {
			return fmt.Errorf("orchestration: ensure queue %s: %w", name, err)
		}
	}
	loops := []*consumer.Loop{
		o.loop(queue.ResultsQueue, o.processResult),
		o.loop(queue.TasksQueue, o.processTaskCommand),
	}
	o.run.Start(ctx, func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, l := range loops {
			wg.Go(func() { l.Run(ctx) })
		}
		wg.Wait()
	})
	return nil
}

// Stop stops consuming and waits for the batch in hand to be processed, or
// for ctx to end. Messages not yet acknowledged are delivered again later.
func (o *Orchestrator) Stop(ctx context.Context) error {
	if err := o.run.Stop(ctx); err != nil {
		return fmt.Errorf("orchestration: stop: %w", err)
	}
	return nil
}

func (o *Orchestrator) loop(name string, process processFunc) *consumer.Loop {
	return &consumer.Loop{
		Queue: o.queue, Name: name, Batch: o.cfg.ClaimBatch, IdlePoll: o.cfg.IdlePoll, Logger: o.log,
		Round: func(ctx context.Context, max int) (int, error) { return o.round(ctx, name, max, process) },
	}
}

// tx runs fn in a store transaction and publishes its transitions after commit.
func (o *Orchestrator) tx(ctx context.Context, fn func(tx store.Tx, rec *transition.Recorder) error) error {
	return transition.InTx(ctx, o.store, o.cfg.Bus, o.cfg.Processor, fn)
}

// apply carries out a plan inside tx.
func (o *Orchestrator) apply(ctx context.Context, tx store.Tx, rec *transition.Recorder, task *taskertype.Task, p Plan, now time.Time) error {
	for _, ev := range p.Events {
		if ev == taskertype.TaskEventStepsEnqueued {
			if err := o.moveSteps(ctx, tx, rec, task, p, now); err != nil {
				return err
			}
		}
		if err := rec.Task(ctx, tx, task, ev, now); err != nil {
			return err
		}
		if ev == taskertype.TaskEventGiveUp {
			// A step that ran out of attempts: an investigation for an
			// operator (max_retries_exceeded), with the give-up.
			if _, err := dlq.RecordMaxRetries(ctx, tx, task, now); err != nil {
				return err
			}
		}
	}
	if !p.WakeAt.IsZero() {
		return o.scheduleRetryDue(ctx, tx, task, p.WakeAt.Sub(now))
	}
	return nil
}

func (o *Orchestrator) moveSteps(ctx context.Context, tx store.Tx, rec *transition.Recorder, task *taskertype.Task, p Plan, now time.Time) error {
	for _, s := range p.Retry {
		if err := rec.Step(ctx, tx, s, taskertype.StepEventRetry, now, func(s *taskertype.Step) {
			s.NextRetryAt = time.Time{}
		}); err != nil {
			return err
		}
	}
	stepQueue := queue.StepQueue(task.Namespace)
	enqueue, err := o.limitBatches(ctx, tx, task, p.Enqueue)
	if err != nil {
		return err
	}
	for _, s := range enqueue {
		if err := rec.Step(ctx, tx, s, taskertype.StepEventEnqueue, now, nil); err != nil {
			return err
		}
		// The task's priority orders the claims of its steps (and of their
		// results, which carry the message's priority on), and so does its
		// age: a step waits from its task's creation (queue.SendParams.Since),
		// so that the steps of the tasks begun first are claimed first.
		if err := tx.MessageSend(ctx, &queue.SendParams{
			Queue: stepQueue, Body: wire.Encode(wire.StepMessage{TaskID: task.ID, StepID: s.ID, Template: task.Name, Version: task.Version}),
			Priority: task.Request.Priority, Since: task.CreatedAt,
		}); err != nil {
			return fmt.Errorf("enqueue step %q on %s: %w", s.Name, stepQueue, err)
		}
	}
	return nil
}

func (o *Orchestrator) scheduleRetryDue(ctx context.Context, tx store.Tx, task *taskertype.Task, delay time.Duration) error {
	return tx.MessageSend(ctx, &queue.SendParams{
		Queue:    queue.TasksQueue,
		Body:     wire.Encode(wire.TaskMessage{Kind: wire.KindRetryDue, TaskID: task.ID}),
		Delay:    max(delay, 0),
		Priority: task.Request.Priority,
	})
}

// timed records the latency of one processed event; call it deferred with
// the time processing started.
func (o *Orchestrator) timed(start time.Time) {
	now := o.clock.Now()
	o.events.RecordAt(now.Sub(start), now)
}

// EventStats returns the latency figures of the events processed.
func (o *Orchestrator) EventStats() stats.LatencySnapshot { return o.events.Snapshot() }
