// Package worker runs Go handlers for the steps of one or more namespaces:
// it claims step messages, starts the step (a compare-and-set, so a
// duplicate message cannot run a step twice), runs the handler under the
// step's timeout with the task context and the dependencies' results, and
// sends the result back to orchestration. A claimed step always produces a
// result: success, failure, or a timeout failure; if this process dies, the
// claim expires and the next worker records the attempt as lost.
//
// The claim is a lease: a heartbeat renews it while the handler runs, and
// each attempt carries a fencing token (taskertype.Step.AttemptID) that the
// store checks when the attempt's outcome is written, so the outcome of an
// attempt that lost its claim changes nothing.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/consumer"
	"github.com/tasker-go/tasker/internal/correlation"
	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/group"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// Config configures a Worker. The zero value of an optional field means its
// default.
type Config struct {
	Store store.Store // required
	Queue queue.Queue // required
	// LeaseQueue renews the claims of running steps. Default Queue. The
	// engine gives the queue without its circuit breaker, so that renewals
	// go on while the breaker is open.
	LeaseQueue queue.Queue
	// LeaseStore renews the store leases of running attempts, taken when
	// the queue does not share the store's database (see storeLease).
	// Default Store. The engine gives the store without its circuit
	// breaker, as it does LeaseQueue.
	LeaseStore store.Store
	Bus        *events.Bus
	// Logger defaults to discarding.
	Logger *slog.Logger
	Clock  taskertype.Clock
	// Processor names this worker in the transition log.
	Processor string
	// Namespaces whose step queues this worker consumes; at least one.
	Namespaces []string
	// Handlers by name; a step naming a handler not here fails (retryably,
	// so a worker that has it may take the retry).
	Handlers map[string]taskertype.Handler
	// Concurrency bounds the handlers running at once, across namespaces.
	// Default DefaultConcurrency: 8 × GOMAXPROCS, at least 100.
	Concurrency int
	// ClaimBatch is the most messages claimed at once. Default Concurrency.
	ClaimBatch int
	// ReportGroups is how many transactions storing outcomes may run at
	// once, when the queue shares the store's database: outcomes are split
	// between that many group committers by task, so that one task's stay
	// in order. A store with one writer (SQLite) gains nothing from more
	// than one. Default 1.
	ReportGroups int
	// VisibilityTimeout is the lease of a claim: a heartbeat renews the
	// claim of a running step once a third of it passed, and cancels the
	// handler of a claim it could not renew by two thirds, before another
	// worker may claim it; the steps of a worker that died run elsewhere
	// after one lease. Default 30s.
	VisibilityTimeout time.Duration
	// CancelCheck is how often the heartbeat reads whether the running
	// steps still wait for their attempts (another process may have
	// cancelled them); the handlers of those that do not are cancelled.
	// Default 1s.
	CancelCheck time.Duration
	// IdlePoll is the fallback poll interval when no wake-up arrives.
	// Default 1s.
	IdlePoll time.Duration
	// TimeoutGrace is how long a handler may run past its step's timeout
	// before the worker reports the timeout without waiting for it. Default 1s.
	TimeoutGrace time.Duration
	// MaxResultBytes bounds a handler's result, in bytes of JSON: a larger
	// one fails the attempt for good and is not stored. Zero: no bound.
	MaxResultBytes int
	// StepSettings, when set, gives a step's configuration and method from
	// its template; the worker asks before it calls the handler, outside
	// any transaction, and an error fails the attempt (retryably). Nil: the
	// handlers get none.
	StepSettings func(ctx context.Context, ref StepRef) (StepSettings, error)
	// Results, when set, processes a reported outcome inside the worker's
	// own transaction instead of the worker sending a result message to
	// orchestration. Set it only when this process runs orchestration.
	Results ResultProcessor
	// Fallback, when set, gives the handler of a step of namespace whose
	// handler name no entry of Handlers has; nil (as Fallback, or as its
	// answer): no handler serves the step yet. The engine sets it to hand
	// such steps to pull workers (Config.PullUnregistered). A step no
	// handler serves is not started: its message comes back later
	// (waitDelay), no attempt is spent, and the step waits until a handler
	// serves it (the staleness detector reports a task that waits too
	// long as worker_unavailable).
	Fallback func(namespace, name string) taskertype.Handler
}

// StepRef names a step for Config.StepSettings: its task, namespace and
// step name, and the task's template when the step's message named it (""
// in a message sent before messages did: read the task then).
type StepRef struct {
	TaskID                       uuid.UUID
	Namespace, Template, Version string
	Step                         string
}

// StepSettings is what a step's template says to its handler.
type StepSettings struct {
	Config json.RawMessage // a JSON object, or nil
	Method string
	// Batch is set when the step is a batch worker: a copy of a
	// batch_worker step, created by a batchable step's outcome.
	Batch *BatchSettings
}

// BatchSettings says where a batch worker's inputs come from.
type BatchSettings struct {
	// TemplateStep is the batch_worker step the worker is a copy of.
	TemplateStep string
	// Batchable is the batchable step whose result (a dependency's)
	// holds the batch plan.
	Batchable string
	Metadata  taskertype.BatchMetadata
}

// ResultProcessor is orchestration's side of a step result.
// It locks the task, finds the step, calls report to record the outcome on
// it, and goes on from there.
type ResultProcessor interface {
	ProcessResultTx(ctx context.Context, tx store.Tx, rec *transition.Recorder, taskID, stepID uuid.UUID,
		report func(*taskertype.Step) error) error
}

// DefaultConcurrency is the worker's concurrency for procs processors
// (GOMAXPROCS, or tasker.Config.Procs) when none is set: 8 per processor,
// and at least 100 (River's and Hatchet's defaults are 100 per
// worker). The outcomes that finish together are stored in one
// transaction, so the more slots, the fewer transactions per step at
// saturation: on a 2-core machine, 16 slots drained a backlog of
// single-step tasks on PostgreSQL at 5,200–5,600 tasks/s and 64 to 128 at
// 8,500–12,000 (docs/benchmarks.md, "Issue 9, second session"). The
// concurrency is also what the services a handler calls see: size it for
// them (Config.Concurrency, tasker.Config.WorkerConcurrency, --concurrency).
func DefaultConcurrency(procs int) int { return max(100, 8*procs) }

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = taskertype.SystemClock{}
	}
	if c.Processor == "" {
		c.Processor = "worker"
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency(runtime.GOMAXPROCS(0))
	}
	if c.ClaimBatch == 0 {
		c.ClaimBatch = c.Concurrency
	}
	if c.ReportGroups == 0 {
		c.ReportGroups = 1
	}
	if c.LeaseQueue == nil {
		c.LeaseQueue = c.Queue
	}
	if c.LeaseStore == nil {
		c.LeaseStore = c.Store
	}
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = 30 * time.Second
	}
	if c.CancelCheck == 0 {
		c.CancelCheck = time.Second
	}
	if c.IdlePoll == 0 {
		c.IdlePoll = time.Second
	}
	if c.TimeoutGrace == 0 {
		c.TimeoutGrace = time.Second
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Store == nil:
		return errors.New("worker: Config.Store is required")
	case c.Queue == nil:
		return errors.New("worker: Config.Queue is required")
	case len(c.Namespaces) == 0:
		return errors.New("worker: Config.Namespaces is empty: name at least one namespace to work for")
	case c.ReportGroups < 0 || c.ReportGroups > 256:
		return fmt.Errorf("worker: ReportGroups must be between 1 and 256, got %d", c.ReportGroups)
	case c.Concurrency < 1:
		return fmt.Errorf("worker: Concurrency must be at least 1, got %d", c.Concurrency)
	case c.ClaimBatch < 1:
		return fmt.Errorf("worker: ClaimBatch must be at least 1, got %d", c.ClaimBatch)
	case c.VisibilityTimeout < time.Second:
		return fmt.Errorf("worker: VisibilityTimeout must be at least 1s, got %v", c.VisibilityTimeout)
	case c.CancelCheck < time.Millisecond:
		return fmt.Errorf("worker: CancelCheck must be at least 1ms, got %v", c.CancelCheck)
	case c.IdlePoll < time.Millisecond:
		return fmt.Errorf("worker: IdlePoll must be at least 1ms, got %v", c.IdlePoll)
	case c.TimeoutGrace < 0:
		return fmt.Errorf("worker: TimeoutGrace must not be negative, got %v", c.TimeoutGrace)
	}
	for name, h := range c.Handlers {
		if h == nil {
			return fmt.Errorf("worker: handler %q is nil", name)
		}
	}
	return nil
}

// Worker consumes step queues.
type Worker struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	queue    queue.Queue
	clock    taskertype.Clock
	handlers map[string]taskertype.Handler // read-only after New
	// txQueue: the queue shares the store's database, so claims and
	// acknowledgements go in the store's transactions.
	txQueue bool
	// storeLease: the queue does not share the store's database (a
	// broker), so a claim can vanish while its handler runs (a connection
	// drop gives the broker's deliveries back at once). Each attempt then
	// holds a lease in the store too, taken with its start and renewed
	// with its claim, in database time: a redelivered message of a step
	// whose attempt's store lease runs is parked until the lease can have
	// ended instead of recording the attempt lost, and the attempt's loss
	// of its queue claim alone is no loss. Without it (PostgreSQL, SQLite
	// queues) the claim's visibility timeout is the lease and nothing is
	// written.
	storeLease bool
	slots      chan struct{} // one token per running step
	// reporting holds one token per outcome being stored: with slots, it
	// bounds the steps between claim and stored outcome to twice the slots.
	reporting chan struct{}
	// claims gates the claims made outside the claim loops (in report and
	// creation transactions): Stop closes it and waits for those under way
	// (under its context: see Stop).
	claims  claimGate
	queues  []string                   // the step queues of cfg.Namespaces
	reports []group.Committer[*report] // outcomes waiting for a group commit, by task (Config.ReportGroups)
	corr    *correlation.Tracker       // the completion listener's correlations
	bgDone  chan struct{}              // the background goroutines ended
	stepCtx context.Context            // the context steps run under

	// commitBudget bounds the commit of a transaction that starts steps
	// (startInTx): reportBudget, shorter in tests.
	commitBudget time.Duration
	leases       *leases     // the running attempts and their claims
	leaseQueue   queue.Queue // renews claims (Config.LeaseQueue)
	leaseStore   store.Store // renews store leases (Config.LeaseStore)
	// stopping is set once Stop (or PrepareStop) was called: from then on
	// a handler may give its step back (taskertype.ErrReleased).
	stopping  atomic.Bool
	abandoned atomic.Uint64 // handlers given up on after their grace
	adopted   atomic.Uint64 // redelivered claims taken by the attempt running here
	// checkpoints counts the checkpoints batch workers yielded here.
	checkpoints atomic.Uint64

	// Test hooks, nil in production (export_test.go sets them before
	// Start): beforeClaimCheck runs as a started step is about to check
	// its claim, afterAdopt after a running attempt took a new claim.
	beforeClaimCheck func(*taskertype.Step)
	afterAdopt       func(*taskertype.Step)

	mu         sync.Mutex
	stopClaims context.CancelFunc // ends the claim loops
	stopSteps  context.CancelFunc // ends stepCtx: the handlers', the heartbeat's and the tracker's
	// stopped: Stop was called on the running worker. Its wait for the
	// loops, claims and steps may outlast it (its context ended first),
	// so the worker does not start again.
	stopped bool
	loops   sync.WaitGroup
	steps   sync.WaitGroup // one per claimed message being executed
}

// New checks cfg and returns a worker that is not yet running.
func New(cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Namespaces = slices.Clone(cfg.Namespaces)
	queues := make([]string, len(cfg.Namespaces))
	for i, ns := range cfg.Namespaces {
		queues[i] = queue.StepQueue(ns)
	}
	handlers := make(map[string]taskertype.Handler, len(cfg.Handlers))
	for k, v := range cfg.Handlers {
		handlers[k] = v
	}
	w := &Worker{
		cfg: cfg, log: cfg.Logger, store: cfg.Store, queue: cfg.Queue, clock: cfg.Clock,
		handlers: handlers, slots: make(chan struct{}, cfg.Concurrency), reporting: make(chan struct{}, cfg.Concurrency), queues: queues,
		txQueue:    cfg.Queue.Capabilities().SharesStoreDatabase,
		storeLease: !cfg.Queue.Capabilities().SharesStoreDatabase,
		leaseStore: cfg.LeaseStore,
		// An attempt holds a slot or a reporting token (see work).
		leases: newLeases(2 * cfg.Concurrency), leaseQueue: cfg.LeaseQueue,
		commitBudget: reportBudget,
	}
	w.reports = make([]group.Committer[*report], cfg.ReportGroups)
	for i := range w.reports {
		c := &w.reports[i]
		*c = group.Committer[*report]{Max: maxReportBatch, Size: reportSize, MaxSize: maxReportBytes,
			Commit: func(batch []*report) { w.storeBatch(batch, c.More) }}
	}
	corr, err := correlation.NewTracker(correlation.TrackerConfig{
		// A running step is tracked from dispatch until its outcome is
		// stored; it holds a slot while its handler runs and a reporting
		// token while its outcome is stored (work), so at most twice the
		// slots are tracked.
		Capacity: 2 * cfg.Concurrency,
		// Each step says how long it may take (work sets Expect from its
		// timeout); this is only the default.
		OrphanAfter: 2*cfg.VisibilityTimeout + cfg.TimeoutGrace,
		Clock:       cfg.Clock, Logger: cfg.Logger,
		OnOrphans: w.failOrphans,
	})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	w.corr = corr
	return w, nil
}

// Start ensures the namespaces' queues exist and starts claiming.
// Starting a started worker does nothing; starting a stopped one is an
// error (its Stop may still be waiting for its steps).
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopClaims != nil {
		return nil
	}
	if w.stopped {
		return errors.New("worker: start: the worker was stopped, and a worker starts once: make another with New")
	}
	ensure := slices.Clone(w.queues)
	if w.cfg.Results == nil {
		ensure = append(ensure, queue.ResultsQueue) // reports go there
	}
	for _, name := range ensure {
		if err := w.queue.QueueEnsure(ctx, name); err != nil {
			return fmt.Errorf("worker: ensure queue %s: %w", name, err)
		}
	}
	base := context.WithoutCancel(ctx)
	claimCtx, stopClaims := context.WithCancel(base)
	stepCtx, stopSteps := context.WithCancel(base)
	w.stopClaims, w.stopSteps, w.stepCtx = stopClaims, stopSteps, stepCtx
	stops := w.subscribeStops() // before any step can start
	w.claims.open()
	w.bgDone = make(chan struct{})
	go func() {
		defer close(w.bgDone)
		var bg sync.WaitGroup
		bg.Go(func() { w.heartbeat(stepCtx, stops) })
		w.corr.Run(stepCtx)
		bg.Wait()
	}()

	for _, ns := range w.cfg.Namespaces {
		name := queue.StepQueue(ns)
		l := &consumer.Loop{
			Queue: w.queue, Name: name, Batch: w.cfg.ClaimBatch, IdlePoll: w.cfg.IdlePoll, Logger: w.log,
			Acquire: w.acquire, Release: w.release,
			Round: func(_ context.Context, max int) (int, error) {
				if err := claimCtx.Err(); err != nil {
					return 0, err // Stop began as the slots came
				}
				// Started steps run under stepCtx, which outlives the claims.
				return w.round(stepCtx, name, max)
			},
		}
		w.loops.Go(func() { l.Run(claimCtx) })
	}
	return nil
}

// PrepareStop tells the worker that it is about to stop: from now on a
// handler that returns an error wrapping taskertype.ErrReleased gives its
// step back, to run again later without counting the attempt. Before, such
// an error is an ordinary failure under the step's retry policy. Stop calls
// it; call it earlier when something else gives steps back first (the
// engine drains the pull channel before it stops the worker).
func (w *Worker) PrepareStop() { w.stopping.Store(true) }

// Stop stops claiming and waits for running steps to finish. When ctx ends
// first, the handlers' contexts are cancelled and the step of each handler
// that returns is released, to run again later, instead of failing; a
// handler that ignores the cancellation past the grace fails its attempt as
// a retryable timeout. Stop then waits a little longer for the outcomes to
// be stored, and for the heartbeat: once ctx has ended, at most the
// handlers' grace and 5 s in all, then it returns an error naming what
// still runs.
func (w *Worker) Stop(ctx context.Context) error {
	w.PrepareStop()
	w.mu.Lock()
	stopClaims, stopSteps, bgDone := w.stopClaims, w.stopSteps, w.bgDone
	if stopClaims == nil {
		w.mu.Unlock()
		return nil
	}
	w.stopClaims, w.stopSteps = nil, nil
	w.stopped = true
	w.mu.Unlock()
	stopClaims()
	w.claims.close() // no claim starts after this
	done := make(chan struct{})
	go func() {
		// The loops and the claims under way add their steps before the
		// wait for the steps begins. All are waited for under ctx: a
		// claim loop's round, or a report transaction's claims, can wait
		// on a store that does not answer (up to their budgets; stopSteps
		// makes a round roll back, not cut off its commit: startInTx).
		w.loops.Wait()
		w.claims.wait()
		w.steps.Wait()
		close(done)
	}()
	// Once ctx is done, what is left gets the handlers' grace and 5 s, on
	// one timer: the steps, then the heartbeat (whose renewals and checks
	// stopSteps cancels) and the orphan tracker (which may be storing an
	// orphan's failure, under its own budget), either of which may be in a
	// store call.
	var timer *time.Timer
	var grace <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	expire := func() {
		if timer == nil {
			timer = time.NewTimer(w.cfg.TimeoutGrace + 5*time.Second)
			grace = timer.C
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		stopSteps()
		expire()
		select {
		case <-done:
		case <-grace:
			return errors.New("worker: stop: steps are still running (handlers that ignored cancellation) or still being claimed or stored (a store that does not answer); their steps will be retried after their claims expire")
		}
	}
	stopSteps()
	select {
	case <-bgDone:
		return nil
	case <-ctx.Done():
	}
	expire()
	select {
	case <-bgDone:
		return nil
	case <-grace:
		return errors.New("worker: stop: every step has ended, but the heartbeat or the orphan tracker is still in a store call (a store that does not answer, or answers slowly); an orphan's failure not stored leaves its step to run again once its claim expires")
	}
}

// acquire blocks for one slot, then takes up to max without waiting.
func (w *Worker) acquire(ctx context.Context, max int) (int, error) {
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return 1 + w.tryAcquire(max-1), nil
}

// ClaimInTx claims and starts, within the caller's transaction, up to as
// many steps of the named queue as this worker has free slots: orchestration
// running in the same process calls it in the transaction that enqueues a new
// task's first steps, which then start without another transaction or a
// wake-up. It does nothing (a nil function) when the queue is not one of
// this worker's, is not in the store's database, or no slot is free. Call the
// returned function once the transaction ended: with true after a commit (the
// started steps run), with false otherwise (the slots are given back).
func (w *Worker) ClaimInTx(ctx context.Context, tx store.Tx, rec *transition.Recorder, name string) (func(committed bool), error) {
	if !w.txQueue || !slices.Contains(w.queues, name) || !w.claims.enter() {
		return nil, nil
	}
	room := w.tryAcquire(w.cfg.ClaimBatch)
	if room == 0 {
		w.claims.leave()
		return nil, nil
	}
	var c claimed
	if err := w.claimTx(ctx, tx, rec, name, room, true, &c); err != nil {
		w.release(room)
		w.claims.leave()
		return nil, err
	}
	return func(committed bool) {
		defer w.claims.leave()
		if !committed {
			w.release(room)
			return
		}
		w.release(room - c.n)
		w.launch(w.stepCtx, name, &c)
	}, nil
}

// claimGate counts the claims under way outside the claim loops, and lets
// new ones start only while open (between Start and Stop).
type claimGate struct {
	mu      sync.Mutex
	isOpen  bool
	running sync.WaitGroup
}

func (g *claimGate) open() {
	g.mu.Lock()
	g.isOpen = true
	g.mu.Unlock()
}

// enter reports whether a claim may start; if so, leave must follow once
// its steps are launched or given up.
func (g *claimGate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.isOpen {
		return false
	}
	g.running.Add(1)
	return true
}

func (g *claimGate) leave() { g.running.Done() }

// close stops new claims.
func (g *claimGate) close() {
	g.mu.Lock()
	g.isOpen = false
	g.mu.Unlock()
}

// closed reports whether close was called.
func (g *claimGate) closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.isOpen
}

// wait waits for the claims under way; call it after close.
func (g *claimGate) wait() { g.running.Wait() }

// tryAcquire takes up to max slots without waiting.
func (w *Worker) tryAcquire(max int) int {
	n := 0
	for n < max {
		select {
		case w.slots <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

func (w *Worker) release(n int) {
	for range n {
		<-w.slots
	}
}

// InFlight returns the number of steps this worker holds right now.
func (w *Worker) InFlight() int { return len(w.slots) }

// Stats describes what the worker holds now.
type Stats struct {
	InFlight    int // steps holding a slot
	Concurrency int
	// Running counts the attempts whose claims the heartbeat renews.
	Running int
	// Abandoned counts the handlers given up on: they ignored their
	// context past the grace; each kept its slot until it returned.
	Abandoned uint64
	// Adopted counts the messages of running steps claimed again by this
	// worker (their claims had lapsed) and kept by the running attempt.
	Adopted uint64
	// Checkpoints counts the checkpoints batch workers yielded here.
	Checkpoints  uint64
	Correlations correlation.TrackerCounts
}

// Stats returns the worker's figures.
func (w *Worker) Stats() Stats {
	return Stats{
		InFlight: w.InFlight(), Concurrency: w.cfg.Concurrency, Running: w.leases.len(), Abandoned: w.abandoned.Load(), Adopted: w.adopted.Load(),
		Checkpoints: w.checkpoints.Load(), Correlations: w.corr.Counts(),
	}
}
