// Package dispatch is the channel through which pull workers run steps.
//
// Workers written in other languages (Python first) do not receive steps:
// they pull them. The engine's Go worker runs a step whose handler is served
// by pull workers through the taskertype.Handler of a Channel: Handle turns
// the step into an Event, puts it on the poll queue and waits; a pull client
// takes it with Poll or PollWait, runs it and hands the outcome back with
// Complete; Handle then returns that outcome to the worker.
//
// Every event holds one of Capacity slots from the moment Handle queues it
// until Handle returns, so the events in flight (queued or polled and not
// completed) never exceed Capacity. Every path out of Handle returns a
// result or an error: a completion, the step's ctx ending (the event is
// abandoned: it can no longer be polled or completed), a pull worker that
// polled and did not complete within CompleteTimeout (CleanupTimeouts turns
// it into a retryable timeout failure), or Close.
package dispatch

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/taskertype"
)

// ErrCompleteTimeout is wrapped by the failure that Handle returns when the
// pull worker polled the event and did not complete it within
// Config.CompleteTimeout. The failure is retryable.
var ErrCompleteTimeout = errors.New("the pull worker did not complete the event within the complete timeout")

// errClosed is what Handle returns when Close ends its wait. It is a plain
// error, so the step's failure is retryable.
var errClosed = fmt.Errorf("dispatch channel closed before a pull worker completed the step: %w", taskertype.ErrClosed)

// Config configures a Channel.
type Config struct {
	// Capacity bounds the events in flight (queued for polling or polled
	// and not completed): a semaphore. Handle waits for room (respecting
	// its ctx). Required, >= 1.
	Capacity int
	// CompleteTimeout: an event polled and not completed within this is
	// timed out by CleanupTimeouts. Required, > 0.
	CompleteTimeout time.Duration
	// StarvationThreshold: an event waiting longer than this since it was
	// dispatched counts as starving in Metrics and is logged by
	// CheckStarvation. Required, > 0.
	StarvationThreshold time.Duration
	Logger              *slog.Logger     // nil: discard
	Clock               taskertype.Clock // nil: system clock
}

func (cfg *Config) validate() error {
	var errs []error
	if cfg.Capacity < 1 {
		errs = append(errs, fmt.Errorf("%w: dispatch Config.Capacity is %d: give the most events that may be in flight at once (queued or polled and not completed), at least 1",
			taskertype.ErrInvalid, cfg.Capacity))
	}
	if cfg.CompleteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("%w: dispatch Config.CompleteTimeout is %v: give how long a pull worker may hold a polled event before it is timed out, a positive duration such as 5m",
			taskertype.ErrInvalid, cfg.CompleteTimeout))
	}
	if cfg.StarvationThreshold <= 0 {
		errs = append(errs, fmt.Errorf("%w: dispatch Config.StarvationThreshold is %v: give how long an event may wait after dispatch before it counts as starving, a positive duration such as 30s",
			taskertype.ErrInvalid, cfg.StarvationThreshold))
	}
	return errors.Join(errs...)
}

// Event is a step dispatched to pull workers. Context and Results are
// shared with the step's input: treat them as read-only.
type Event struct {
	ID             uuid.UUID // v7, unique per dispatch
	TaskID, StepID uuid.UUID
	Namespace      string
	StepName       string
	Handler        string // the name given to HandlerFor; "" through Handler
	Attempt        int
	MaxAttempts    int       // the step's retry policy's bound, the first attempt included; 0 if unknown
	AttemptID      uuid.UUID // the attempt's fencing token (StepInput.AttemptID)
	Context        json.RawMessage
	// The task's correlation ids (StepInput's; uuid.Nil: none).
	CorrelationID, ParentCorrelationID uuid.UUID
	Results                            map[string]json.RawMessage
	Ancestors                          map[string]json.RawMessage // StepInput.Ancestors: nil when not at hand
	Config                             json.RawMessage            // the step's configuration from its template; nil for none
	Method                             string                     // the entry point the template names; "" for the default
	// Batch is the batch worker's cursor range, settings and last
	// checkpoint (StepInput.Batch); nil for every other step.
	Batch        *taskertype.BatchInput
	DispatchedAt time.Time // when Handle queued it
	PolledAt     time.Time // zero until polled
}

// Result is a pull worker's outcome for an event. The channel keeps Output
// as given: do not modify it after Complete.
type Result struct {
	Output     json.RawMessage // the step's JSON result, on success (nil: JSON null)
	Error      string          // non-empty: the attempt failed with this message
	Permanent  bool            // with Error: do not retry
	RetryAfter time.Duration   // with Error: delay before the retry (overrides backoff)
	// HandedBack: the pull worker gives the step back without a verdict
	// (Error says why); Handle returns an error wrapping
	// taskertype.ErrHandedBack, so the attempt is not counted. See Release.
	HandedBack bool
}

// Metrics is a snapshot of a Channel.
type Metrics struct {
	Queued, Pending      int           // waiting to be polled; polled and not completed
	InFlight, Capacity   int           // Queued+Pending, and the bound
	OldestAge, NewestAge time.Duration // of pending events (since polled); 0 if none
	OldestID             uuid.UUID
	Starving             int // events (queued or pending) dispatched longer ago than StarvationThreshold
	// Counters since New. Abandoned: the step's handler ctx ended before
	// completion, Close or Drain ended its wait, or Release gave it back.
	Completed, TimedOut, Abandoned uint64
}

// Entry states. An entry moves queued → pending → done, or straight to
// done from either; whoever wins the compare-and-swap to done delivers the
// outcome (the Handle itself when it abandons) and counts it, exactly once.
const (
	stateQueued int32 = iota
	statePending
	stateDone
)

// entry is one dispatched event.
type entry struct {
	ev    Event
	state atomic.Int32
	// touched is when a pull worker last said it still holds the event
	// (Extend), in Unix nanoseconds; 0 until then. The complete timeout
	// runs from the later of it and PolledAt.
	touched atomic.Int64
	// done carries the outcome from the winner of the transition to done
	// (Complete or CleanupTimeouts) to Handle. Buffered: a send never blocks.
	done chan outcome

	// Poll queue links, guarded by fifo.mu.
	prev, next *entry
	linked     bool
}

// outcome is what Handle returns: a pull worker's result or err.
type outcome struct {
	r   Result
	err error
}

func (o outcome) value() (any, error) {
	if o.err != nil {
		return nil, o.err
	}
	if r := o.r; r.HandedBack {
		why := cmp.Or(r.Error, "the pull worker gave the step back")
		return nil, fmt.Errorf("dispatch: %s: %w", why, taskertype.ErrHandedBack)
	}
	if r := o.r; r.Error != "" {
		err := errors.New(r.Error)
		switch {
		case r.Permanent:
			return nil, taskertype.Permanent(err)
		case r.RetryAfter > 0:
			return nil, taskertype.RetryAfter(err, r.RetryAfter)
		}
		return nil, err
	}
	if o.r.Output == nil {
		return json.RawMessage("null"), nil
	}
	return o.r.Output, nil
}

// Channel dispatches steps to pull workers. Its methods are safe for
// concurrent use.
type Channel struct {
	cfg   Config
	log   *slog.Logger
	clock taskertype.Clock

	sem     chan struct{} // a slot per event in flight
	queue   fifo          // dispatched, not yet polled
	pending *pendingMap   // polled, not completed
	// notify wakes one PollWait. Whoever leaves the queue non-empty sends
	// (without blocking), so a waiter that takes the token and polls passes
	// it on when more remain.
	notify chan struct{}

	closed    chan struct{}
	isClosed  atomic.Bool
	closeOnce sync.Once
	draining  chan struct{} // closed by Drain
	drainOnce sync.Once

	// waiters wakes every PollWaitMatch when an event is queued: each
	// takes only the events its filter accepts, so one token (notify)
	// could wake the wrong one.
	waiters broadcaster

	completed, timedOut, abandoned atomic.Uint64

	// slotHook, when set (by tests, before use), is called with +1 after a
	// slot is taken and -1 before it is given back.
	slotHook func(delta int)
}

// New returns a Channel.
func New(cfg Config) (*Channel, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = taskertype.SystemClock{}
	}
	return &Channel{
		cfg:      cfg,
		log:      cfg.Logger,
		clock:    cfg.Clock,
		sem:      make(chan struct{}, cfg.Capacity),
		pending:  newPendingMap(cfg.Capacity),
		notify:   make(chan struct{}, 1),
		closed:   make(chan struct{}),
		draining: make(chan struct{}),
	}, nil
}

// handler is a Channel's taskertype.Handler.
type handler struct {
	c      *Channel
	name   string
	served func(namespace, name string) bool // nil: always
}

// WantsAncestors makes handler a taskertype.AncestorsWanter: the worker
// that starts the step gives it the results of every completed ancestor
// it holds (StepInput.Ancestors); a pull worker receives them, as
// tasker-core's handlers do.
func (h handler) WantsAncestors() bool { return true }

var _ taskertype.AncestorsWanter = handler{}

func (h handler) Handle(ctx context.Context, in *taskertype.StepInput) (any, error) {
	return h.c.handle(ctx, h.name, h.served, in)
}

// Handler returns the taskertype.Handler that dispatches steps through c.
// Its events have an empty Handler field; see HandlerFor.
func (c *Channel) Handler() taskertype.Handler { return handler{c: c} }

// HandlerFor is Handler whose events carry name in their Handler field, so
// a pull worker knows which of its functions to run. Register it in the
// worker under that same name.
func (c *Channel) HandlerFor(name string) taskertype.Handler { return handler{c: c, name: name} }

// HandlerForServed is HandlerFor for steps that go to pull workers only
// while one serves them. Once its event is queued, the handler asks served
// again: if no worker serves the step any more, the event is given back
// (taskertype.ErrHandedBack) unless a worker polled it meanwhile. Whoever
// stops serving does so before calling ReleaseQueued, so an event queued
// while the last worker left is given back by one or the other, and never
// waits out its complete timeout in a queue nobody polls.
func (c *Channel) HandlerForServed(name string, served func(namespace, name string) bool) taskertype.Handler {
	return handler{c: c, name: name, served: served}
}

func (c *Channel) handle(ctx context.Context, name string, served func(namespace, name string) bool, in *taskertype.StepInput) (any, error) {
	if in == nil {
		return nil, taskertype.Permanent(errors.New("dispatch: Handle called without a step input"))
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if c.isClosed.Load() {
		return nil, errClosed
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-c.closed:
		return nil, errClosed
	}
	if c.slotHook != nil {
		c.slotHook(1)
	}
	defer c.release()

	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("dispatch: new event id: %w", err)
	}
	e := &entry{
		ev: Event{
			ID: id, TaskID: in.TaskID, StepID: in.StepID,
			Namespace: in.Namespace, StepName: in.StepName, Handler: name,
			Attempt: in.Attempt, MaxAttempts: in.MaxAttempts, AttemptID: in.AttemptID,
			Context: in.Context, Results: in.Results, Ancestors: in.Ancestors,
			CorrelationID: in.CorrelationID, ParentCorrelationID: in.ParentCorrelationID,
			Config: in.Config, Method: in.Method, Batch: in.Batch,
			DispatchedAt: c.clock.Now(),
		},
		done: make(chan outcome, 1),
	}
	if c.isDraining() {
		return nil, errReleased
	}
	if !c.queue.push(e) {
		return nil, errClosed
	}
	c.signal()
	c.waiters.wake()
	if served != nil && !served(e.ev.Namespace, name) && e.state.CompareAndSwap(stateQueued, stateDone) {
		c.queue.remove(e)
		c.abandoned.Add(1)
		return outcome{r: Result{Error: "no registered pull worker serves the step any more", HandedBack: true}}.value()
	}

	draining := c.draining
wait:
	for {
		select {
		case o := <-e.done:
			return o.value()
		case <-ctx.Done():
			if c.end(e) {
				c.abandoned.Add(1)
				c.log.Debug("step context ended before a pull worker completed it; event abandoned",
					"event_id", e.ev.ID, "task_id", e.ev.TaskID, "step_id", e.ev.StepID, "step", e.ev.StepName, "cause", context.Cause(ctx))
				return nil, context.Cause(ctx)
			}
			break wait
		case <-c.closed:
			if c.end(e) {
				c.abandoned.Add(1)
				return nil, errClosed
			}
			break wait
		case <-draining:
			draining = nil
			// Not polled yet: give it back. Polled: a pull worker has it,
			// wait for its outcome.
			if e.state.CompareAndSwap(stateQueued, stateDone) {
				c.queue.remove(e)
				c.abandoned.Add(1)
				return nil, errReleased
			}
		}
	}
	// A completion or timeout won the race: its outcome is on its way
	// (sent right after the winning swap, without blocking).
	return (<-e.done).value()
}

// release gives a slot back.
func (c *Channel) release() {
	if c.slotHook != nil {
		c.slotHook(-1)
	}
	<-c.sem
}

// signal wakes one PollWait, if none is already due to wake.
func (c *Channel) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// end moves e to done on behalf of its own Handle (ctx ended or Close) and
// takes it out of the queue or the pending map. False: a completion or
// timeout got there first and its outcome is in e.done.
func (c *Channel) end(e *entry) bool {
	for {
		switch s := e.state.Load(); s {
		case stateDone:
			return false
		case stateQueued:
			if e.state.CompareAndSwap(s, stateDone) {
				c.queue.remove(e)
				return true
			}
		case statePending:
			if e.state.CompareAndSwap(s, stateDone) {
				c.pending.remove(e.ev.ID)
				return true
			}
		}
	}
}

// Poll takes the oldest queued event, if any. It never blocks.
func (c *Channel) Poll() (*Event, bool) {
	if c.isClosed.Load() {
		return nil, false
	}
	for {
		e, more := c.queue.pop()
		if e == nil {
			return nil, false
		}
		if more {
			c.signal()
		}
		// Only this goroutine holds e now (unlinked): nobody else reads
		// PolledAt until e is in the pending map.
		e.ev.PolledAt = c.clock.Now()
		if !e.state.CompareAndSwap(stateQueued, statePending) {
			continue // its Handle gave up between pop and here
		}
		c.pending.insert(e.ev.ID, e)
		if e.state.Load() != statePending {
			// Its Handle gave up between the swap and the insert, and its
			// removal came before our insert: undo it.
			c.pending.remove(e.ev.ID)
			continue
		}
		ev := e.ev
		return &ev, true
	}
}

// PollWait takes the oldest queued event, waiting for one until ctx ends
// (its cause is returned) or the channel is closed (taskertype.ErrClosed).
func (c *Channel) PollWait(ctx context.Context) (*Event, error) {
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	for {
		if c.isClosed.Load() {
			return nil, taskertype.ErrClosed
		}
		if ev, ok := c.Poll(); ok {
			return ev, nil
		}
		select {
		case <-c.notify:
			// Poll again; it passes the token on if more remain.
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-c.closed:
			return nil, taskertype.ErrClosed
		}
	}
}

// Complete hands r to the Handle waiting for event id. The pending entry is
// removed before the result is handed on. False, and nothing changes, if id
// is unknown, already completed, timed out or abandoned, or queued and not
// yet polled.
func (c *Channel) Complete(id uuid.UUID, r Result) bool {
	e, ok := c.pending.remove(id)
	if !ok || !e.state.CompareAndSwap(statePending, stateDone) {
		return false
	}
	c.completed.Add(1)
	e.done <- outcome{r: r}
	return true
}

// Release gives pending event id back without a verdict: its Handle
// returns an error wrapping taskertype.ErrHandedBack, and the worker
// dispatches the step again without counting the attempt. why says what
// happened (it goes into the error). Counted as abandoned. False, and
// nothing changes, as for Complete.
func (c *Channel) Release(id uuid.UUID, why string) bool {
	e, ok := c.pending.remove(id)
	if !ok || !e.state.CompareAndSwap(statePending, stateDone) {
		return false
	}
	c.abandoned.Add(1)
	e.done <- outcome{r: Result{Error: why, HandedBack: true}}
	return true
}

// ReleaseQueued gives back, without a verdict, every queued (not yet
// polled) event that match accepts, as Release does for a polled one: for
// the events no pull worker serves any more. match is called under the
// queue's lock for each queued event (at most Capacity): it must be quick
// and must not call c. It returns how many it gave back.
func (c *Channel) ReleaseQueued(match func(*Event) bool, why string) int {
	var taken []*entry
	c.queue.mu.Lock()
	for e := c.queue.head; e != nil; {
		next := e.next
		// A Handle giving up, or Drain, swaps to done first and then
		// unlinks: whoever wins the swap delivers the outcome.
		if match(&e.ev) && e.state.CompareAndSwap(stateQueued, stateDone) {
			c.queue.unlinkLocked(e)
			taken = append(taken, e)
		}
		e = next
	}
	c.queue.mu.Unlock()
	for _, e := range taken {
		c.abandoned.Add(1)
		e.done <- outcome{r: Result{Error: why, HandedBack: true}}
	}
	return len(taken)
}

// PendingCount is the number of events polled and not completed.
func (c *Channel) PendingCount() int { return c.pending.len() }

// walk calls queued for each queued entry, oldest first, then pending for
// each pending one. It holds the queue's lock throughout, so no event can
// be dispatched or polled meanwhile (a poll that popped before keeps going
// and its entry is seen once, as pending): every entry seen was in flight
// when walk began, and none is seen twice, so the counts never exceed
// Capacity. Entries completed meanwhile may or may not be seen. The walk
// is bounded by Capacity and never blocks; the callbacks must not either.
func (c *Channel) walk(queued func(e *entry), pending func(id uuid.UUID, e *entry)) {
	c.queue.mu.Lock()
	defer c.queue.mu.Unlock()
	for e := c.queue.head; e != nil; e = e.next {
		queued(e)
	}
	c.pending.rangeAll(func(id uuid.UUID, e *entry) bool {
		if e.state.Load() == statePending {
			pending(id, e)
		}
		return true
	})
}

// Metrics returns a snapshot. It walks the queue and the pending map,
// holding up dispatches and polls meanwhile: call it at the pace of a
// metrics scrape, not per event.
func (c *Channel) Metrics() Metrics {
	now := c.clock.Now()
	m := Metrics{Capacity: c.cfg.Capacity}
	var oldest, newest time.Time
	c.walk(func(e *entry) {
		m.Queued++
		if now.Sub(e.ev.DispatchedAt) > c.cfg.StarvationThreshold {
			m.Starving++
		}
	}, func(id uuid.UUID, e *entry) {
		m.Pending++
		if now.Sub(e.ev.DispatchedAt) > c.cfg.StarvationThreshold {
			m.Starving++
		}
		if p := e.ev.PolledAt; oldest.IsZero() || p.Before(oldest) {
			oldest, m.OldestID = p, id
		}
		if p := e.ev.PolledAt; p.After(newest) {
			newest = p
		}
	})
	if m.Pending > 0 {
		m.OldestAge, m.NewestAge = max(now.Sub(oldest), 0), max(now.Sub(newest), 0)
	}
	m.InFlight = m.Queued + m.Pending
	m.Completed, m.TimedOut, m.Abandoned = c.completed.Load(), c.timedOut.Load(), c.abandoned.Load()
	return m
}

// CheckStarvation logs (Warn) each event, queued or pending, dispatched
// longer ago than StarvationThreshold, and returns how many there are.
func (c *Channel) CheckStarvation() int {
	now := c.clock.Now()
	type starving struct {
		ev    Event
		state string
	}
	var found []starving
	c.walk(func(e *entry) {
		if now.Sub(e.ev.DispatchedAt) > c.cfg.StarvationThreshold {
			found = append(found, starving{e.ev, "queued"})
		}
	}, func(_ uuid.UUID, e *entry) {
		if now.Sub(e.ev.DispatchedAt) > c.cfg.StarvationThreshold {
			found = append(found, starving{e.ev, "pending"})
		}
	})
	// Logged after the walks: no lock is held while the logger writes.
	for _, s := range found {
		attrs := []any{
			"age", now.Sub(s.ev.DispatchedAt), "threshold", c.cfg.StarvationThreshold, "state", s.state,
			"event_id", s.ev.ID, "task_id", s.ev.TaskID, "step_id", s.ev.StepID,
			"namespace", s.ev.Namespace, "step", s.ev.StepName, "handler", s.ev.Handler,
		}
		if s.state == "pending" {
			attrs = append(attrs, "polled_ago", now.Sub(s.ev.PolledAt))
		}
		c.log.Warn("dispatched step is starving: no pull worker has completed it", attrs...)
	}
	return len(found)
}

// CleanupTimeouts times out each pending event polled longer ago than
// CompleteTimeout: it is removed, and its Handle returns a retryable
// failure (a *taskertype.HandlerError wrapping ErrCompleteTimeout). It
// returns how many.
func (c *Channel) CleanupTimeouts() int {
	now := c.clock.Now()
	var overdue []*entry
	c.pending.rangeAll(func(_ uuid.UUID, e *entry) bool {
		if e.state.Load() == statePending && now.Sub(e.heldSince()) > c.cfg.CompleteTimeout {
			overdue = append(overdue, e)
		}
		return true
	})
	n := 0
	for _, e := range overdue {
		// A heartbeat (Extend) since the walk saved it.
		if c.clock.Now().Sub(e.heldSince()) <= c.cfg.CompleteTimeout {
			continue
		}
		// Same order as Complete: out of the map, then the swap; a
		// completion or abandonment racing us wins one of the two.
		if _, ok := c.pending.remove(e.ev.ID); !ok || !e.state.CompareAndSwap(statePending, stateDone) {
			continue
		}
		n++
		c.timedOut.Add(1)
		held := now.Sub(e.ev.PolledAt)
		e.done <- outcome{err: &taskertype.HandlerError{
			Err: fmt.Errorf("%w (%v): event %s of step %q was polled %v ago", ErrCompleteTimeout, c.cfg.CompleteTimeout, e.ev.ID, e.ev.StepName, held.Round(time.Millisecond)),
		}}
		c.log.Warn("pull worker did not complete a step in time; it will be retried",
			"event_id", e.ev.ID, "task_id", e.ev.TaskID, "step_id", e.ev.StepID, "step", e.ev.StepName,
			"handler", e.ev.Handler, "polled_ago", held, "complete_timeout", c.cfg.CompleteTimeout)
	}
	return n
}

// Run calls CleanupTimeouts and CheckStarvation every
// min(CompleteTimeout, StarvationThreshold)/4 (at least 10ms) until ctx
// ends or the channel is closed.
func (c *Channel) Run(ctx context.Context) {
	every := max(min(c.cfg.CompleteTimeout, c.cfg.StarvationThreshold)/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.closed:
			return
		case <-t.C:
			c.CleanupTimeouts()
			c.CheckStarvation()
		}
	}
}

// errReleased is the error of a step given back by Drain.
var errReleased = fmt.Errorf("dispatch: the engine is stopping and no pull worker had taken the step: %w", taskertype.ErrReleased)

func (c *Channel) isDraining() bool {
	select {
	case <-c.draining:
		return true
	default:
		return false
	}
}

// Drain prepares a shutdown: the steps no pull worker has polled yet are
// given back at once (their Handle returns an error matching
// taskertype.ErrReleased, and the worker releases the step to run again
// later), and so is every step dispatched from now on; the steps already
// polled are still awaited. Counted as abandoned. Idempotent.
func (c *Channel) Drain() {
	c.drainOnce.Do(func() { close(c.draining) })
}

// Close ends everything: waiting Handle calls return a retryable error,
// PollWait returns taskertype.ErrClosed, Poll returns false and Handle
// refuses new steps. Idempotent.
func (c *Channel) Close() {
	c.closeOnce.Do(func() {
		c.queue.close()
		c.isClosed.Store(true)
		close(c.closed)
	})
}
