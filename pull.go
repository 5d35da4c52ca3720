package tasker

import (
	"errors"
	"fmt"
	"time"

	"github.com/tasker-go/tasker/internal/dispatch"
)

// The dispatch channel's types, for programs that drive pull workers.
type (
	// PullChannel hands steps to pull workers: Poll or PollWait takes the
	// next step, Complete returns its result.
	PullChannel = dispatch.Channel
	// PullEvent is a step handed to a pull worker.
	PullEvent = dispatch.Event
	// PullResult is what a pull worker reports for a PullEvent.
	PullResult = dispatch.Result
	// PullMetrics describes the steps waiting for or held by pull workers.
	PullMetrics = dispatch.Metrics
)

func (e *Engine) openPull() error {
	c := e.cfg.Pull
	if c.Capacity == 0 {
		c.Capacity = e.cfg.WorkerConcurrency
	}
	if c.CompleteTimeout == 0 {
		c.CompleteTimeout = 5 * time.Minute
	}
	if c.StarvationThreshold == 0 {
		c.StarvationThreshold = 30 * time.Second
	}
	ch, err := dispatch.New(dispatch.Config{
		Capacity: c.Capacity, CompleteTimeout: c.CompleteTimeout, StarvationThreshold: c.StarvationThreshold,
		Logger: e.log, Clock: e.clock,
	})
	if err != nil {
		return fmt.Errorf("tasker: Config.Pull: %w", err)
	}
	e.pull = ch
	return nil
}

// RegisterPullHandler makes the steps whose handler is name wait for a pull
// worker, a program in another language, to take them from the engine's
// PullChannel and complete them. Register before Start.
func (e *Engine) RegisterPullHandler(name string) error {
	if name == "" {
		return errors.New("tasker: register pull handler: the name is empty")
	}
	return e.RegisterHandler(name, e.pull.HandlerFor(name))
}

// Pull returns the dispatch channel of the pull workers.
func (e *Engine) Pull() *PullChannel { return e.pull }

// ServePullHandlers tells the engine which handlers pull workers serve
// now, for Config.PullUnregistered: a step of namespace whose handler has
// no Go handler goes to the pull workers when serves(namespace, name) is
// true; when it is false the step is not started and waits, its attempt
// not spent, until it is true (a task that waits past its staleness
// threshold goes to the DLQ as worker_unavailable). Nil, the default,
// hands every such step to them. serves is called for each such step: it
// must be quick and safe for concurrent use. The HTTP API sets it to its
// registry of workers, so that a worker registering its namespaces and
// handlers is all it takes.
func (e *Engine) ServePullHandlers(serves func(namespace, name string) bool) {
	if serves == nil {
		e.pullServes.Store(nil)
		return
	}
	e.pullServes.Store(&serves)
}

// pullFallback is the worker's handler for a step whose handler no Go
// handler has, under Config.PullUnregistered; nil while no pull worker
// serves it.
func (e *Engine) pullFallback(namespace, name string) Handler {
	f := e.pullServes.Load()
	if f == nil {
		return e.pull.HandlerFor(name)
	}
	if !(*f)(namespace, name) {
		return nil
	}
	return e.pull.HandlerForServed(name, *f)
}
