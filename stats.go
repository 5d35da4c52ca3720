package tasker

import (
	"github.com/tasker-go/tasker/internal/resilience"
	"github.com/tasker-go/tasker/internal/statemanager"
	"github.com/tasker-go/tasker/internal/stats"
	"github.com/tasker-go/tasker/internal/templatecache"
	"github.com/tasker-go/tasker/internal/worker"
	"github.com/tasker-go/tasker/queue"
	storepg "github.com/tasker-go/tasker/store/postgres"
)

// Stats is a snapshot of the engine's in-process structures: what they hold
// and what they counted. docs/concurrency.md says what each one is.
type Stats struct {
	// Events times the events orchestration processed: rate over the last
	// 100, average and percentiles over the last 1000, and when the last
	// one was processed.
	Events stats.LatencySnapshot
	// Machines is the state manager's cache of task state machines: zero
	// on both backends, which answer a task's steps without it (the
	// embedded one from its row cache, PostgreSQL from the rows its
	// transaction's Prefetch holds); only a store of another kind uses it.
	Machines statemanager.Stats
	// Worker is the Go worker's: steps in flight and the completion
	// listener's correlations. Zero without workers.
	Worker worker.Stats
	// Pull is the dispatch channel of the pull workers.
	Pull PullMetrics
	// Templates is the template manager's cache.
	Templates templatecache.Stats
	// Breakers are the circuit breakers of the queue and of the store.
	Breakers []resilience.BreakerStats
	// Bus is the in-process event bus.
	Bus BusStats
	// Wakeups are the queue provider's wake-ups: on PostgreSQL, the
	// demux's fan-out (TAS-163 #11), the listener's notifications and
	// reconnects, and the fallback polls. Nil when the provider does not
	// report them.
	Wakeups *queue.WakeupStats
	// Queues are the provider's counts per queue (TAS-163 #10): messages
	// sent, received, acknowledged, released and redelivered through this
	// process, and the broker's count of ready messages. Nil when the
	// provider does not count them (RabbitMQ does).
	Queues []queue.Counters
	// Outbox is the transactional outbox's relay, when the store sends
	// its messages through one (PostgreSQL with RabbitMQ messaging); nil
	// otherwise.
	Outbox *storepg.OutboxStats
	// Admission is the back-pressure on new tasks (MaxQueuedSteps).
	Admission AdmissionStats
	// DeadLettered counts the orchestration messages this engine set
	// aside as dead letters; Engine.DeadLetters lists those of every
	// process.
	DeadLettered uint64
	// DomainEvents counts the domain events this process published,
	// refused (schema), dropped (full subscription buffers) and consumed.
	DomainEvents DomainEventStats
	// Tasks counts, by namespace, the tasks this process created and the
	// ones it finished, by terminal state (from the event bus, before any
	// subscriber could drop an event).
	Tasks []stats.TaskCounts
	// Steps counts, by namespace and handler, the step attempts this
	// process's orchestration judged, with their run times.
	Steps []stats.StepCounts
	// Pools are the database connection pools of the backend the engine
	// opened (none when Config.Store was given).
	Pools []PoolStats
}

// AdmissionStats counts CreateTask's back-pressure decisions.
type AdmissionStats struct {
	Admitted, Refused uint64
}

// BusStats describes the event bus.
type BusStats struct {
	Subscribers int
	// Dropped sums the events the live subscriptions could not take.
	Dropped uint64
}

// Stats returns the figures of the engine's structures. It takes no lock
// that the hot paths take for long, and may be called at any time.
func (e *Engine) Stats() Stats {
	s := Stats{
		Events:    e.orch.EventStats(),
		Machines:  e.orch.MachineStats(),
		Pull:      e.pull.Metrics(),
		Templates: e.tmpl.Stats(),
		Bus:       BusStats{Subscribers: e.bus.Subscribers(), Dropped: e.bus.Dropped()},
	}
	s.DeadLettered = e.orch.DeadLettered()
	s.DomainEvents = e.domain.Stats()
	s.Tasks, s.Steps = e.outcomes.Tasks(), e.outcomes.Steps()
	s.Pools = e.pools()
	for _, b := range e.breakers {
		s.Breakers = append(s.Breakers, b.Stats())
	}
	e.mu.Lock()
	w := e.worker
	e.mu.Unlock()
	if w != nil {
		s.Worker = w.Stats()
	}
	if r, ok := e.rawQueue.(queue.WakeupReporter); ok {
		ws := r.WakeupStats()
		s.Wakeups = &ws
	}
	if r, ok := e.rawQueue.(queue.CounterReporter); ok {
		s.Queues = r.Counters()
	}
	if pg, ok := e.rawStore.(*storepg.Store); ok && pg.HasOutbox() {
		o := pg.OutboxStats()
		s.Outbox = &o
	}
	if e.admit != nil {
		s.Admission.Admitted, s.Admission.Refused = e.admit.Counts()
	}
	return s
}
