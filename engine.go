package tasker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasker-go/tasker/internal/admission"
	"github.com/tasker-go/tasker/internal/dispatch"
	"github.com/tasker-go/tasker/internal/dlq"
	"github.com/tasker-go/tasker/internal/domainevents"
	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/orchestration"
	"github.com/tasker-go/tasker/internal/resilience"
	"github.com/tasker-go/tasker/internal/stats"
	"github.com/tasker-go/tasker/internal/templatecache"
	"github.com/tasker-go/tasker/internal/worker"
	"github.com/tasker-go/tasker/queue"
	queuepg "github.com/tasker-go/tasker/queue/postgres"
	"github.com/tasker-go/tasker/store"
	storepg "github.com/tasker-go/tasker/store/postgres"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// Config configures an Engine. The zero value runs everything in this
// process on the embedded SQLite file "tasker.db".
type Config struct {
	// DatabasePath is the SQLite file of the embedded backend, created if
	// missing. Default "tasker.db". Ignored when Store or DatabaseURL is set.
	DatabasePath string
	// DatabaseURL selects the PostgreSQL backend (store and queues in one
	// database), e.g. "postgres://user@host:5432/db?sslmode=disable".
	// Ignored when Store is set.
	DatabaseURL string
	// Messaging selects where the queues live with DatabaseURL:
	// MessagingPostgres ("" or "postgres": in the store's database, a
	// state change and its message commit together) or MessagingRabbitMQ
	// ("rabbitmq": on the broker at AMQPURL; the messages of a transaction
	// go through a transactional outbox in the database,
	// docs/rabbitmq.md). Ignored when Store is set.
	Messaging string
	// AMQPURL is the RabbitMQ broker of MessagingRabbitMQ, e.g.
	// "amqp://guest:guest@127.0.0.1:5672/".
	AMQPURL string
	// AMQPPrefix is put before every name the engine declares on the
	// broker, so that several installations share a virtual host.
	// Default none.
	AMQPPrefix string
	// AutoMigrate applies the PostgreSQL schema migrations at Open (they
	// are safe to run from several processes at once); otherwise run
	// `tasker migrate` first.
	AutoMigrate bool
	// Store and Queue replace the embedded backend; set both or neither.
	// The engine does not close them.
	Store store.Store
	Queue queue.Queue
	// Templates are registered at Open: stored in the database, all or
	// none, where every process sharing it finds them. More may be added
	// with RegisterTemplate or LoadTemplates.
	Templates []*template.Template
	// ReplaceTemplates: a template registered by this process (at Open,
	// with RegisterTemplate or LoadTemplates) whose definition differs
	// from the one stored under its version replaces the stored one,
	// which is logged with the old and the new digest. Without it such a
	// template is refused (*store.TemplateConflictError). Tasks created
	// before keep the steps of the old definition (a task's steps are
	// materialized when it is created); this process's template cache
	// drops the name at once, other processes' caches after their TTL.
	// `tasker run` sets it (the developer's edit-and-run loop); serve and
	// worker take --replace-templates.
	ReplaceTemplates bool
	// Environment selects the overrides a tasker-core template's
	// environments section applies when LoadTemplates reads it. Default
	// template.DefaultEnvironment ("production"); the commands take
	// --environment or TASKER_ENV.
	Environment string
	// Logger receives the engine's logs. Default: discard.
	Logger *slog.Logger
	// Clock tells the engine the time. Default: the wall clock.
	Clock Clock
	// DisableOrchestration: this process runs no orchestrator (it only
	// runs workers; another process orchestrates).
	DisableOrchestration bool
	// DisableWorkers: this process runs no workers.
	DisableWorkers bool
	// WorkerNamespaces are the namespaces whose steps this process's
	// workers run. Default: the namespaces of the templates registered
	// when Start is called.
	WorkerNamespaces []string
	// WorkerConcurrency bounds the handlers running at once: what the
	// services the handlers call see from this process. Default 8 ×
	// Procs, at least 100. The outcomes that finish together are
	// stored in one transaction (up to 256), so at saturation a larger
	// concurrency costs fewer transactions per step.
	WorkerConcurrency int
	// Procs is the processors the engine sizes its defaults by
	// (WorkerConcurrency's, and on PostgreSQL the transactions storing
	// outcomes at once, one per processor up to 8). Default GOMAXPROCS. A
	// host that raises GOMAXPROCS beyond the CPUs for threads of its own
	// (libtasker, for the host's threads that call in) gives the value from
	// before.
	Procs int
	// ReportGroups is how many transactions storing outcomes may run at
	// once on a database of many writers (PostgreSQL). Default: one per
	// Procs, up to 8. Fewer carry more outcomes each, so the CPU per
	// outcome falls, but their round trips leave the CPUs idle in between
	// (docs/benchmarks.md, "Latency at half load"). Each takes a pooled
	// connection while it runs, so groups beyond the pool's size wait for
	// one, as claims and creations do. Outcomes go to a group by a byte of
	// their task's id, hence at most 256. SQLite's single writer stores one
	// group at a time whatever this says.
	ReportGroups int
	// ProcessorName names this process in the transition log. Default
	// "host:pid".
	ProcessorName string
	// PriorityAging is the waiting one point of a task's priority
	// (CreateParams.Priority) is worth when workers claim its steps: a step
	// of a task of priority p goes ahead of steps of priority q < p that
	// became ready less than (p-q)×PriorityAging before it, and behind those
	// that have waited longer, so low priority never starves. Applies to the
	// built-in backends (a Config.Queue of your own has its own setting);
	// 1ms to 1h, and a gap is worth at most a day of waiting
	// (queue.MaxPriorityBoost). Every process of a database should use the
	// same value: each stamps the messages it sends. Default 10s
	// (queue.DefaultPriorityAging).
	PriorityAging time.Duration
	// IdlePoll is how often idle consumers look for work when no wake-up
	// arrives. Default 1s, or 1m when the queue polls for its subscribers
	// itself (queue.Capabilities.PollsSubscribed, as PostgreSQL's does), so
	// that an idle process costs the database almost nothing.
	IdlePoll time.Duration
	// ClaimTimeout is how long a claimed message stays hidden from other
	// processes: when a process dies, its messages come back after it. A
	// worker's claim is a lease that a heartbeat renews every third of it
	// while the step runs, so a killed worker's steps come back after one
	// ClaimTimeout, whatever their timeouts, and run elsewhere after that
	// plus their retry policy's backoff (the lost attempt is a retryable
	// failure). Zero means 30s. At least 1s.
	ClaimTimeout time.Duration
	// CancelCheck is how often a worker reads whether the steps it runs
	// were cancelled, resolved or completed by hand in another process, as
	// the fallback for the notification such an action sends at its commit
	// (lost only while the process's listener reconnects). Default 1s.
	CancelCheck time.Duration
	// MaxQueuedSteps is the back-pressure on new work: CreateTask refuses a
	// task, with an error wrapping taskertype.ErrQueueFull, while the queue
	// of its namespace holds this many steps waiting for a worker. The
	// depth is read at most once a second per namespace, so the bound is
	// approximate. Default 10,000; negative: no bound.
	MaxQueuedSteps int
	// MaxContextBytes bounds a task's context, in bytes of JSON: CreateTask
	// refuses a larger one with an error wrapping taskertype.ErrInvalid, and
	// stores nothing. Default DefaultMaxContextBytes (1 MiB); negative: no
	// bound.
	MaxContextBytes int
	// DefaultIdentityStrategy is the identity strategy of the templates
	// that declare none (docs/identity.md): "" is IdentityStrict,
	// tasker-core's default. IdentityAlwaysUnique keeps the behaviour of
	// versions before task identity, where every create made a task.
	DefaultIdentityStrategy IdentityStrategy
	// MaxResultBytes bounds a step's result, in bytes of JSON: a handler
	// (or pull worker) returning a larger one fails the attempt for good,
	// and nothing of the result is stored. Default DefaultMaxResultBytes
	// (4 MiB); negative: no bound.
	MaxResultBytes int
	// Pull configures the dispatch channel that hands steps to pull
	// workers (see RegisterPullHandler).
	Pull PullConfig
	// PullUnregistered hands every step whose handler no Go handler is
	// registered under to the pull workers, as RegisterPullHandler would
	// under the step's handler name: a pull worker then says which
	// handlers it serves when it polls (internal/api's /v1/workers routes).
	// False: such a step is not started and waits, no attempt spent, for
	// a worker that has its handler (a task that waits past its staleness
	// threshold goes to the DLQ as worker_unavailable).
	PullUnregistered bool
	// CircuitBreaker configures the breakers in front of the store and the
	// queue: when a backend keeps failing, calls fail fast for a while
	// instead of piling up.
	CircuitBreaker CircuitBreakerConfig
	// MaxDeliveries is how many times a message of the orchestration
	// queues may be delivered and fail before it is set aside as a dead
	// letter (see Engine.DeadLetters) instead of being tried again.
	// Default 5.
	MaxDeliveries int
	// MaxCreatedSteps bounds the steps decision steps create at run time
	// in one task; a decision whose outcome would pass it fails for good
	// (docs/workflows.md). 0 means the default, 100 (tasker-core's).
	MaxCreatedSteps int
	// MaxDecisionDepth bounds how many decision steps may be nested on one
	// chain of dependencies; a decision deeper fails for good. 0 means the
	// default, 20 (tasker-core's).
	MaxDecisionDepth int
	// MaxBatchWorkers bounds the workers one batchable step's outcome may
	// create; a plan with more fails the step for good
	// (docs/workflows.md). 0 means the default, 1000.
	MaxBatchWorkers int
	// Staleness configures the staleness detector, which every process
	// that orchestrates runs (one at a time acts per database): it finds
	// tasks stuck past their template's lifecycle thresholds and records
	// DLQ investigations (docs/dlq.md).
	Staleness StalenessConfig
}

// The default size limits of Config.MaxContextBytes and MaxResultBytes.
const (
	DefaultMaxContextBytes = 1 << 20
	DefaultMaxResultBytes  = 4 << 20
)

// CircuitBreakerConfig configures the circuit breakers. The zero value of
// each field means its default.
type CircuitBreakerConfig struct {
	// FailureThreshold is the number of consecutive backend failures that
	// open a breaker. Default 5.
	FailureThreshold int
	// OpenFor is how long an open breaker fails calls before it lets a
	// trial call through. Default 5s.
	OpenFor time.Duration
}

// PullConfig configures the dispatch channel for pull workers. The zero
// value of each field means its default.
type PullConfig struct {
	// Capacity bounds the steps handed to pull workers at once (queued for
	// polling, or polled and not completed). Default: WorkerConcurrency.
	Capacity int
	// CompleteTimeout is how long a pull worker may take between polling a
	// step and completing it; past it, the step fails with a retryable
	// timeout. Default 5m (the step's own timeout applies too).
	CompleteTimeout time.Duration
	// StarvationThreshold: steps waiting longer than this for a pull worker
	// are reported as starving. Default 30s.
	StarvationThreshold time.Duration
}

// Engine runs orchestration and workers.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	clock    Clock
	store    store.Store
	queue    queue.Queue
	rawQueue queue.Queue        // the provider itself, without its circuit breaker
	rawStore store.Store        // the store itself, without its circuit breaker
	owned    *storesqlite.Store // the embedded backend, when it is the one
	// manyWriters: the store runs write transactions at once (PostgreSQL).
	manyWriters bool
	closer      io.Closer // the backend the engine opened, closed with it
	templates   *template.Registry
	bus         *events.Bus
	outcomes    *stats.Outcomes         // task and step outcomes, from bus
	domain      *domainevents.Publisher // publishes the steps' declared domain events
	orch        *orchestration.Orchestrator
	pull        *dispatch.Channel
	pullServes  atomic.Pointer[func(namespace, name string) bool] // ServePullHandlers
	tmpl        *templatecache.Manager                            // the template manager: a cache in front of templates
	admit       *admission.Gate                                   // nil: no bound on queued steps
	breakers    []*resilience.Breaker                             // the queue's and the store's: fixed at start-up, no registry

	mu       sync.Mutex // guards the fields below
	handlers map[string]Handler
	started  bool
	stopped  bool
	worker   *worker.Worker
	detector *dlq.Detector // nil when this process runs none
	// stopDone is closed when the first Stop returns; stopErr, written
	// before the close, is what it returned.
	stopDone chan struct{}
	stopErr  error
}

// Open opens the backend and returns an engine ready for handlers and
// templates. It starts nothing: call Start.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if (cfg.Store == nil) != (cfg.Queue == nil) {
		return nil, errors.New("tasker: Config.Store and Config.Queue go together: set both, or neither for the embedded SQLite backend")
	}
	if err := checkMessaging(&cfg); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = taskertype.SystemClock{}
	}
	if cfg.ProcessorName == "" {
		host, _ := os.Hostname()
		cfg.ProcessorName = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if cfg.MaxContextBytes == 0 {
		cfg.MaxContextBytes = DefaultMaxContextBytes
	}
	if cfg.MaxResultBytes == 0 {
		cfg.MaxResultBytes = DefaultMaxResultBytes
	}
	if cfg.ReportGroups < 0 || cfg.ReportGroups > 256 {
		return nil, fmt.Errorf("tasker: ReportGroups %d: give between 1 and 256 transactions storing outcomes at once, or 0 for the default (one per processor, up to 8)", cfg.ReportGroups)
	}
	if cfg.WorkerConcurrency < 0 || cfg.Procs < 0 {
		return nil, fmt.Errorf("tasker: WorkerConcurrency (%d) and Procs (%d) must not be negative: give a bound, or 0 for the default", cfg.WorkerConcurrency, cfg.Procs)
	}
	if cfg.Procs == 0 {
		cfg.Procs = runtime.GOMAXPROCS(0)
	}
	if cfg.WorkerConcurrency == 0 {
		cfg.WorkerConcurrency = worker.DefaultConcurrency(cfg.Procs)
	}
	if cfg.ReportGroups == 0 {
		// One transaction storing outcomes per CPU, up to 8: while one
		// waits on the database, another's Go work runs
		// (docs/benchmarks.md, "Issue 9, second session": 1.10–1.15× the
		// drain rate of one on 2 CPUs; measured again, 1.03–1.10× by
		// medians at 7–26 % more CPU per task, "Latency at half load").
		// More would queue for the pool's connections and for
		// PostgreSQL's commit-time NOTIFY lock.
		cfg.ReportGroups = min(cfg.Procs, 8)
	}
	if s := cfg.DefaultIdentityStrategy; s != "" && !slices.Contains(taskertype.IdentityStrategies, s) {
		return nil, fmt.Errorf("tasker: %w: Config.DefaultIdentityStrategy %q is not an identity strategy: use strict, caller_provided or always_unique (or leave it empty for strict)",
			taskertype.ErrInvalid, s)
	}
	if cfg.MaxCreatedSteps < 0 || cfg.MaxDecisionDepth < 0 {
		return nil, fmt.Errorf("tasker: MaxCreatedSteps (%d) and MaxDecisionDepth (%d) must not be negative: give a bound, or 0 for the default (100 and 20)", cfg.MaxCreatedSteps, cfg.MaxDecisionDepth)
	}
	if cfg.MaxBatchWorkers < 0 {
		return nil, fmt.Errorf("tasker: MaxBatchWorkers must not be negative, got %d: give a bound, or 0 for the default (1000)", cfg.MaxBatchWorkers)
	}
	if cfg.MaxDeliveries < 0 {
		return nil, fmt.Errorf("tasker: MaxDeliveries must not be negative, got %d: give the deliveries before a failing message is set aside, or 0 for the default (5)", cfg.MaxDeliveries)
	}
	if err := queue.CheckPriorityAging(cfg.PriorityAging); err != nil {
		return nil, fmt.Errorf("tasker: Config.PriorityAging (--priority-aging): %w", err)
	}
	e := &Engine{
		cfg: cfg, log: cfg.Logger, clock: cfg.Clock, store: cfg.Store, queue: cfg.Queue,
		templates: template.NewRegistry(), bus: events.NewBus(), outcomes: stats.NewOutcomes(), handlers: map[string]Handler{},
	}
	e.bus.Observe(e.outcomes.Observe)
	for _, t := range cfg.Templates {
		if err := e.templates.Add(t); err != nil {
			return nil, fmt.Errorf("tasker: %w", err)
		}
	}
	if e.store == nil && cfg.Messaging == MessagingRabbitMQ {
		if err := e.openRabbitMQ(ctx); err != nil {
			return nil, err
		}
	}
	if e.store == nil && cfg.DatabaseURL != "" {
		st, err := storepg.Open(ctx, storepg.Config{URL: cfg.DatabaseURL, Logger: cfg.Logger, Clock: cfg.Clock, AutoMigrate: cfg.AutoMigrate,
			Queue: queuepg.Config{PriorityAging: cfg.PriorityAging}})
		if err != nil {
			return nil, fmt.Errorf("tasker: %w", err)
		}
		e.closer, e.store, e.queue = st, st, st.Queue()
	}
	if e.store == nil {
		path := cfg.DatabasePath
		if path == "" {
			path = "tasker.db"
		}
		st, err := storesqlite.Open(ctx, storesqlite.Config{Path: path, Logger: cfg.Logger, Clock: cfg.Clock, PriorityAging: cfg.PriorityAging})
		if err != nil {
			return nil, fmt.Errorf("tasker: %w", err)
		}
		e.owned, e.closer, e.store, e.queue = st, st, st, st.Queue()
	}
	if cfg.IdlePoll == 0 && e.queue.Capabilities().PollsSubscribed {
		cfg.IdlePoll = time.Minute
		e.cfg.IdlePoll = cfg.IdlePoll
	}
	e.rawQueue, e.rawStore = e.queue, e.store
	// Both backends answer a task's steps without a read: the embedded one
	// from its row cache, PostgreSQL from the rows a transaction's
	// Prefetch holds. Orchestration then runs without a state manager.
	var holdsRows bool
	switch e.store.(type) {
	case *storesqlite.Store, *storepg.Store:
		holdsRows = true
	}
	_, e.manyWriters = e.store.(*storepg.Store)
	if err := e.guardBackends(); err != nil {
		e.closeOwned()
		return nil, err
	}
	tmpl, err := templatecache.New(templatecache.StoreSource(e.store), templatecache.Config{Clock: cfg.Clock, Logger: cfg.Logger})
	if err != nil {
		e.closeOwned()
		return nil, fmt.Errorf("tasker: %w", err)
	}
	e.tmpl = tmpl
	if len(cfg.Templates) > 0 {
		if err := e.storeTemplates(ctx, cfg.Templates); err != nil {
			e.closeOwned()
			return nil, fmt.Errorf("tasker: Config.Templates: %w", err)
		}
	}
	if cfg.MaxQueuedSteps >= 0 {
		e.admit, err = admission.New(admission.Config{
			Max: int64(cmp.Or(cfg.MaxQueuedSteps, 10_000)), Every: time.Second, Queue: e.queue, Clock: cfg.Clock, Logger: cfg.Logger,
			Hint: "raise the bound (Config.MaxQueuedSteps, or --max-queued-steps)",
		})
		if err != nil {
			e.closeOwned()
			return nil, fmt.Errorf("tasker: %w", err)
		}
	}
	if err := e.openPull(); err != nil {
		e.closeOwned()
		return nil, err
	}
	e.domain = domainevents.NewPublisher(domainevents.NewBus(), cfg.Logger,
		func(ctx context.Context, namespace, name, version string) (*template.Template, error) {
			return e.tmpl.Get(ctx, namespace, name, version)
		})
	orch, err := orchestration.New(orchestration.Config{
		Store: e.store, Queue: e.queue, Bus: e.bus, Logger: cfg.Logger, Clock: cfg.Clock,
		Processor: "orchestrator@" + cfg.ProcessorName, IdlePoll: cfg.IdlePoll, VisibilityTimeout: cfg.ClaimTimeout,
		MaxDeliveries:  cfg.MaxDeliveries,
		StoreHoldsRows: holdsRows,
		Templates: func(ctx context.Context, namespace, name, version string) (*template.Template, error) {
			return e.tmpl.Get(ctx, namespace, name, version)
		},
		MaxCreatedSteps: cfg.MaxCreatedSteps, MaxDecisionDepth: cfg.MaxDecisionDepth, MaxBatchWorkers: cfg.MaxBatchWorkers,
		DomainEvents: e.domain.StepOutcome, DomainEventQueue: domainevents.QueueName,
	})
	if err != nil {
		e.closeOwned()
		return nil, fmt.Errorf("tasker: %w", err)
	}
	e.orch = orch
	if !cfg.DisableOrchestration && !cfg.Staleness.Disabled {
		if e.detector, err = e.newDetector(); err != nil {
			e.closeOwned()
			return nil, err
		}
	}
	return e, nil
}

// RegisterHandler makes h run the steps whose handler is name. Register
// every handler before Start.
func (e *Engine) RegisterHandler(name string, h Handler) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case name == "":
		return errors.New("tasker: register handler: the name is empty")
	case h == nil:
		return fmt.Errorf("tasker: register handler %q: the handler is nil", name)
	case e.started:
		return fmt.Errorf("tasker: register handler %q: the engine is already started; register handlers before Start", name)
	case e.handlers[name] != nil:
		return fmt.Errorf("tasker: register handler %q: a handler is already registered under that name", name)
	}
	e.handlers[name] = h
	return nil
}

// RegisterTemplate adds a template that tasks may be created from, here
// and in every process that shares the database: it is stored there.
// Registering a template again with the same definition does nothing; a
// changed definition under a registered version is an error matching
// taskertype.ErrInvalid (*store.TemplateConflictError): give it a new
// version.
func (e *Engine) RegisterTemplate(ctx context.Context, t *template.Template) error {
	return e.registerTemplates(ctx, []*template.Template{t})
}

// guardBackends puts a circuit breaker in front of the store and the queue.
func (e *Engine) guardBackends() error {
	cfg := resilience.BreakerConfig{
		FailureThreshold: e.cfg.CircuitBreaker.FailureThreshold, OpenFor: e.cfg.CircuitBreaker.OpenFor,
		Clock: e.clock, Logger: e.log,
	}
	sb, err := resilience.NewBreaker("store", cfg)
	if err != nil {
		return fmt.Errorf("tasker: Config.CircuitBreaker: %w", err)
	}
	qb, err := resilience.NewBreaker("queue", cfg)
	if err != nil {
		return fmt.Errorf("tasker: Config.CircuitBreaker: %w", err)
	}
	e.breakers = []*resilience.Breaker{qb, sb}
	e.store, e.queue = resilience.GuardStore(e.store, sb), resilience.GuardQueue(e.queue, qb)
	return nil
}

// LoadTemplates loads template files, or every *.yaml and *.yml file in
// the given directories, and registers them as RegisterTemplate does. It
// registers none if any is invalid or conflicts, and the error lists every
// problem.
func (e *Engine) LoadTemplates(ctx context.Context, paths ...string) error {
	ts, err := template.Loader{Environment: e.cfg.Environment}.LoadPaths(paths...)
	if err != nil {
		return err
	}
	return e.registerTemplates(ctx, ts)
}

// Templates returns the templates this process registered (Config.Templates,
// RegisterTemplate, LoadTemplates), as it registered them. It is not the
// list tasks are created from: CreateTask reads templates from the
// database, which also holds those other processes registered (and a
// version another process replaced, with Config.ReplaceTemplates, is read
// as stored there).
func (e *Engine) Templates() []*template.Template { return e.templates.List() }

// Start starts orchestration and workers. On the embedded backend it first
// releases the claims a previous, crashed run left behind, so their steps
// run again at once instead of after their claims expire.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.stopped:
		return fmt.Errorf("tasker: start: %w: the engine was stopped; open a new one", taskertype.ErrClosed)
	case e.started:
		return nil
	}
	if e.owned != nil {
		n, err := e.owned.Queue().ReleaseClaims(ctx)
		if err != nil {
			return fmt.Errorf("tasker: start: release claims of a previous run: %w", err)
		}
		if n > 0 {
			e.log.Info("released the claims of a previous run", "messages", n)
		}
	}
	if !e.cfg.DisableOrchestration {
		if err := e.orch.Start(ctx); err != nil {
			return fmt.Errorf("tasker: start: %w", err)
		}
	}
	if !e.cfg.DisableWorkers {
		if err := e.startWorker(ctx); err != nil {
			_ = e.orch.Stop(ctx)
			return fmt.Errorf("tasker: start: %w", err)
		}
	}
	go e.pull.Run(context.WithoutCancel(ctx)) // until Close
	if e.detector != nil {
		e.detector.Start(ctx)
	}
	e.started = true
	return nil
}

func (e *Engine) startWorker(ctx context.Context) error {
	namespaces := slices.Clone(e.cfg.WorkerNamespaces)
	if len(namespaces) == 0 {
		for _, t := range e.templates.List() {
			if !slices.Contains(namespaces, t.Namespace) {
				namespaces = append(namespaces, t.Namespace)
			}
		}
	}
	if len(namespaces) == 0 {
		e.log.Warn("no worker started: no templates registered and no WorkerNamespaces configured")
		return nil
	}
	wc := worker.Config{
		Store: e.store, Queue: e.queue, Bus: e.bus, Logger: e.cfg.Logger, Clock: e.clock,
		Processor: "worker@" + e.cfg.ProcessorName, Namespaces: namespaces, Handlers: e.handlers,
		Concurrency: e.cfg.WorkerConcurrency, IdlePoll: e.cfg.IdlePoll, VisibilityTimeout: e.cfg.ClaimTimeout,
		MaxResultBytes: max(e.cfg.MaxResultBytes, 0),
		// Claims are renewed past the queue's circuit breaker: a breaker
		// open during a blip must not let them lapse.
		LeaseQueue:   e.rawQueue,
		LeaseStore:   e.rawStore,
		CancelCheck:  e.cfg.CancelCheck,
		StepSettings: e.stepSettings,
	}
	if e.cfg.PullUnregistered {
		wc.Fallback = e.pullFallback
	}
	if e.manyWriters {
		wc.ReportGroups = e.cfg.ReportGroups
	}
	if !e.cfg.DisableOrchestration {
		// Orchestration runs here: hand results over in the worker's own
		// transaction rather than through the results queue.
		wc.Results = e.orch
	}
	w, err := worker.New(wc)
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	e.worker = w
	if !e.cfg.DisableOrchestration {
		e.orch.SetLocalWorker(w)
	}
	return nil
}

// Stop stops claiming new work and waits for the steps in flight to finish
// until ctx ends; steps still running then are released to run again on the
// next start. The embedded backend is closed. Only the first Stop stops:
// a later one returns what the first returned, waiting for it (under its
// own ctx, an error once that ends) while it is under way. Do not call
// Stop from a handler: the stop waits for the handler's own step.
func (e *Engine) Stop(ctx context.Context) (err error) {
	e.mu.Lock()
	if e.stopped {
		first := e.stopDone
		e.mu.Unlock()
		select {
		case <-first: // returned already: its result, whatever ctx
			return e.stopErr
		default:
		}
		select {
		case <-first:
			return e.stopErr
		case <-ctx.Done():
			return fmt.Errorf("tasker: stop: an earlier Stop is still under way: %w", ctx.Err())
		}
	}
	e.stopped = true
	stopDone := make(chan struct{})
	e.stopDone = stopDone
	w := e.worker
	e.mu.Unlock()
	defer func() {
		e.stopErr = err // before the close: a later Stop reads it after
		close(stopDone)
	}()
	var errs []error
	// Steps no pull worker has taken are given back at once (released, to
	// run again later); the workers then wait only for the steps that are
	// really running, in Go or in a pull worker. The worker is told first,
	// so that it gives those steps back rather than fail them.
	if w != nil {
		w.PrepareStop()
	}
	if e.detector != nil {
		errs = append(errs, e.detector.Stop(ctx))
	}
	e.pull.Drain()
	if w != nil {
		errs = append(errs, w.Stop(ctx))
	}
	e.pull.Close()
	// Orchestration finishes the batch in hand within milliseconds; it gets
	// a few seconds of its own even when ctx is spent on the workers.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	errs = append(errs, e.orch.Stop(octx))
	errs = append(errs, e.closeOwned())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tasker: stop: %w", err)
	}
	return nil
}

func (e *Engine) closeOwned() error {
	if e.closer == nil {
		return nil
	}
	return e.closer.Close()
}

// Subscribe delivers the engine's committed state changes that match f,
// with a buffer of size events; events that do not fit are dropped and
// counted (Subscription.Dropped). Close the subscription when done.
func (e *Engine) Subscribe(f EventFilter, size int) (*Subscription, error) {
	return e.bus.Subscribe(f, size)
}
