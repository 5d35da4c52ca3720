package stats

import (
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/puzpuzpuz/xsync/v4"

	"github.com/tasker-go/tasker/internal/events"
)

// MaxOutcomeKeys bounds the namespaces, and separately the
// (namespace, handler) pairs, Outcomes keeps apart; the events of any
// beyond are counted under OtherLabel. Both come from registered
// templates, so the bound is only met by a process serving that many.
const MaxOutcomeKeys = 1000

// OtherLabel is the namespace and handler of the events past MaxOutcomeKeys.
const OtherLabel = "_other"

// DurationBuckets are the upper bounds, in seconds, of the step duration
// histogram (Prometheus's default buckets).
var DurationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// TaskCounts counts one namespace's tasks by what happened to them in this
// process: created here, and finished here in each terminal state.
type TaskCounts struct {
	Namespace                                             string
	Created, Completed, Failed, Cancelled, ResolvedByHand uint64
}

// StepCounts counts one (namespace, handler)'s step attempts that this
// process's orchestration judged: succeeded, failed and retried, failed for
// good; and their run times.
type StepCounts struct {
	Namespace, Handler         string
	Succeeded, Retried, Failed uint64
	// Buckets[i] counts the attempts that ran at most DurationBuckets[i]
	// seconds (cumulative, as Prometheus's); Count and Sum cover all.
	Buckets []uint64
	Count   uint64
	Sum     time.Duration
}

type taskCounters struct{ created, completed, failed, cancelled, resolved atomic.Uint64 }

type stepCounters struct {
	succeeded, retried, failed, count atomic.Uint64
	sum                               atomic.Int64
	buckets                           []atomic.Uint64 // not cumulative
}

type stepKey struct{ ns, handler string }

// Outcomes counts task and step outcomes from the event bus (Observe is
// the bus's observer): lock-free counters in maps bounded by
// MaxOutcomeKeys.
type Outcomes struct {
	tasks *xsync.Map[string, *taskCounters]
	steps *xsync.Map[stepKey, *stepCounters]
}

// NewOutcomes returns empty counters.
func NewOutcomes() *Outcomes {
	return &Outcomes{tasks: xsync.NewMap[string, *taskCounters](), steps: xsync.NewMap[stepKey, *stepCounters]()}
}

// Observe counts e. It never blocks.
func (o *Outcomes) Observe(e *events.Event) {
	if e.Namespace == "" {
		return // a step event whose publisher did not know the task
	}
	switch e.Kind {
	case events.KindTaskTransition:
		var c *atomic.Uint64
		t := o.task(e.Namespace)
		switch {
		case e.Event == "create":
			c = &t.created
		case e.To == "complete":
			c = &t.completed
		case e.To == "error":
			c = &t.failed
		case e.To == "cancelled":
			c = &t.cancelled
		case e.To == "resolved_manually":
			c = &t.resolved
		default:
			return
		}
		c.Add(1)
	case events.KindStepTransition:
		var judged func(*stepCounters) *atomic.Uint64
		switch {
		case e.From == "enqueued_for_orchestration" && e.To == "complete":
			judged = func(s *stepCounters) *atomic.Uint64 { return &s.succeeded }
		case e.From == "enqueued_as_error_for_orchestration" && e.To == "waiting_for_retry":
			judged = func(s *stepCounters) *atomic.Uint64 { return &s.retried }
		case e.From == "enqueued_as_error_for_orchestration" && (e.To == "error" || e.To == "complete"),
			e.From == "enqueued_for_orchestration" && e.To == "error":
			judged = func(s *stepCounters) *atomic.Uint64 { return &s.failed }
		default:
			return
		}
		s := o.step(stepKey{e.Namespace, e.Handler})
		judged(s).Add(1)
		if e.Duration > 0 {
			s.count.Add(1)
			s.sum.Add(int64(e.Duration))
			secs := e.Duration.Seconds()
			for i, b := range DurationBuckets {
				if secs <= b {
					s.buckets[i].Add(1)
					break
				}
			}
		}
	}
}

func (o *Outcomes) task(ns string) *taskCounters {
	if c, ok := o.tasks.Load(ns); ok {
		return c
	}
	if o.tasks.Size() >= MaxOutcomeKeys {
		ns = OtherLabel
	}
	c, _ := o.tasks.LoadOrCompute(ns, func() (*taskCounters, bool) { return &taskCounters{}, false })
	return c
}

func (o *Outcomes) step(k stepKey) *stepCounters {
	if c, ok := o.steps.Load(k); ok {
		return c
	}
	if o.steps.Size() >= MaxOutcomeKeys {
		k = stepKey{OtherLabel, OtherLabel}
	}
	c, _ := o.steps.LoadOrCompute(k, func() (*stepCounters, bool) {
		return &stepCounters{buckets: make([]atomic.Uint64, len(DurationBuckets))}, false
	})
	return c
}

// Tasks returns the task counts by namespace, sorted.
func (o *Outcomes) Tasks() []TaskCounts {
	var out []TaskCounts
	o.tasks.Range(func(ns string, c *taskCounters) bool {
		out = append(out, TaskCounts{Namespace: ns, Created: c.created.Load(), Completed: c.completed.Load(),
			Failed: c.failed.Load(), Cancelled: c.cancelled.Load(), ResolvedByHand: c.resolved.Load()})
		return true
	})
	slices.SortFunc(out, func(a, b TaskCounts) int { return strings.Compare(a.Namespace, b.Namespace) })
	return out
}

// Steps returns the step counts by namespace and handler, sorted.
func (o *Outcomes) Steps() []StepCounts {
	var out []StepCounts
	o.steps.Range(func(k stepKey, c *stepCounters) bool {
		s := StepCounts{Namespace: k.ns, Handler: k.handler, Succeeded: c.succeeded.Load(), Retried: c.retried.Load(),
			Failed: c.failed.Load(), Count: c.count.Load(), Sum: time.Duration(c.sum.Load()), Buckets: make([]uint64, len(c.buckets))}
		var cum uint64
		for i := range c.buckets {
			cum += c.buckets[i].Load()
			s.Buckets[i] = cum
		}
		out = append(out, s)
		return true
	})
	slices.SortFunc(out, func(a, b StepCounts) int {
		return cmp2(a.Namespace, b.Namespace, a.Handler, b.Handler)
	})
	return out
}

func cmp2(a1, b1, a2, b2 string) int {
	if c := strings.Compare(a1, b1); c != 0 {
		return c
	}
	return strings.Compare(a2, b2)
}
