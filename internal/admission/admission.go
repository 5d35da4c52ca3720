// Package admission is the engine's back-pressure on new work: a task is
// refused while the step queue of its namespace holds too many steps
// waiting for a worker. The queues themselves grow with load (a PostgreSQL
// queue is a table), so this is where their bound is enforced: at the one
// entry of new work, never on a step of a task already running, which must
// always be able to move on.
//
// The depth of a queue is read at most once per Every for each namespace;
// callers in between use the last reading. It is a hint, like every cache
// in the engine: the bound holds to within what one interval of creations
// adds. A queue that can estimate its size (queue.DepthEstimator, from the
// database's statistics on PostgreSQL) is counted with QueueDepth only
// when the estimate, never below the depth (it counts claimed and delayed
// messages too), reaches the bound: a count reads every row version of the
// queue's table.
package admission

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v4"
	"golang.org/x/sync/singleflight"

	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

// Config configures a Gate.
type Config struct {
	// Max is the number of steps waiting in a namespace's queue (visible,
	// not claimed) at which new tasks of the namespace are refused. At
	// least 1.
	Max int64
	// Every is how often a namespace's depth is read again. At least 1ms.
	Every time.Duration
	// Hint completes the error's advice: how the caller raises Max.
	Hint   string
	Queue  queue.Queue
	Clock  taskertype.Clock
	Logger *slog.Logger
}

// Gate admits or refuses new tasks. It is safe for concurrent use.
type Gate struct {
	cfg      Config
	readings *xsync.Map[string, *atomic.Pointer[reading]] // one per namespace with templates
	reads    singleflight.Group
	admitted *xsync.Counter
	refused  atomic.Uint64
}

// reading is a namespace's depth as last read; known is false when the
// read failed (the gate then admits until the next reading is due).
type reading struct {
	waiting int64
	known   bool
	at      time.Time
}

// New returns a gate, or an error wrapping taskertype.ErrInvalid that names
// the bad setting.
func New(cfg Config) (*Gate, error) {
	switch {
	case cfg.Max < 1:
		return nil, fmt.Errorf("admission: the queue bound is %d; give at least 1: %w", cfg.Max, taskertype.ErrInvalid)
	case cfg.Every < time.Millisecond:
		return nil, fmt.Errorf("admission: the depth is read every %s; give at least 1ms: %w", cfg.Every, taskertype.ErrInvalid)
	case cfg.Queue == nil || cfg.Clock == nil:
		return nil, fmt.Errorf("admission: a queue and a clock are required: %w", taskertype.ErrInvalid)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Gate{cfg: cfg, readings: xsync.NewMap[string, *atomic.Pointer[reading]](), admitted: xsync.NewCounter()}, nil
}

// Admit returns nil when a task of namespace may be created, or an error
// wrapping taskertype.ErrQueueFull that says how full the queue is and what
// to do. When the depth cannot be read, it admits until the next reading is
// due: the creation then meets the backend's own error, if it persists. It
// waits for a reading at most until ctx ends.
func (g *Gate) Admit(ctx context.Context, namespace string) error {
	slot, _ := g.readings.LoadOrCompute(namespace, func() (*atomic.Pointer[reading], bool) {
		return new(atomic.Pointer[reading]), false
	})
	r := slot.Load()
	if r == nil || g.cfg.Clock.Now().Sub(r.at) >= g.cfg.Every {
		var err error
		if r, err = g.read(ctx, namespace, slot); err != nil {
			return err
		}
	}
	if !r.known || r.waiting < g.cfg.Max {
		g.admitted.Inc()
		return nil
	}
	g.refused.Add(1)
	name := queue.StepQueue(namespace)
	return fmt.Errorf("queue %q holds %d steps waiting for a worker, at its bound of %d: add workers for namespace %q, "+
		"or retry once they have caught up, or %s: %w", name, r.waiting, g.cfg.Max, namespace, g.cfg.Hint, taskertype.ErrQueueFull)
}

// Counts returns the tasks admitted and refused so far.
func (g *Gate) Counts() (admitted, refused uint64) {
	return uint64(g.admitted.Value()), g.refused.Load()
}

// read reads the depth of namespace's queue once for all callers that find
// the reading stale at the same time, and stores it. An error is ctx's
// only: a failed read is stored as unknown.
func (g *Gate) read(ctx context.Context, namespace string, slot *atomic.Pointer[reading]) (*reading, error) {
	ch := g.reads.DoChan(namespace, func() (any, error) {
		// Not the first caller's context: the others share this read.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		r := &reading{at: g.cfg.Clock.Now()}
		name := queue.StepQueue(namespace)
		if e, ok := g.cfg.Queue.(queue.DepthEstimator); ok {
			// Under the bound by the estimate: no count. On an error,
			// the count tells.
			if n, err := e.QueueDepthEstimate(rctx, name); err == nil && n < g.cfg.Max {
				r.waiting, r.known = n, true
				slot.Store(r)
				return r, nil
			}
		}
		n, err := g.cfg.Queue.QueueDepth(rctx, name)
		if err != nil {
			g.cfg.Logger.Warn("admission: could not read the depth of a step queue; admitting new tasks until the next reading",
				"namespace", namespace, "every", g.cfg.Every, "error", err)
		} else {
			r.waiting, r.known = n, true
		}
		slot.Store(r)
		return r, nil
	})
	select {
	case res := <-ch:
		return res.Val.(*reading), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("admission: waiting for the depth of namespace %q: %w", namespace, context.Cause(ctx))
	}
}
