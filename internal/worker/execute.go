package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/consumer"
	"github.com/tasker-go/tasker/internal/correlation"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/internal/wire"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

var (
	// errSkip: the message is a duplicate or its step moved on; acknowledge it.
	errSkip = errors.New("step is not waiting for this message")
	// errPoison: the message can never be processed; archive it.
	errPoison = consumer.ErrPoison
	// errStepTimeout is the cause of a handler context that hit its timeout.
	errStepTimeout = errors.New("step timeout")
	// errNoHandler: no handler serves the message's step (yet); the step is
	// not started and the message comes back after waitDelay.
	errNoHandler = errors.New("no handler serves the step yet")
)

// A step no handler serves waits: its message is given back with a delay
// that doubles with each delivery, from waitDelayMin up to waitDelayMax.
const (
	waitDelayMin = 100 * time.Millisecond
	waitDelayMax = 10 * time.Second
)

// waitDelay is how long the message of a step no handler serves stays
// hidden after its readCount-th delivery.
func waitDelay(readCount int) time.Duration {
	d := waitDelayMin
	for i := 1; i < readCount && d < waitDelayMax; i++ {
		d *= 2
	}
	return min(d, waitDelayMax)
}

// handlerFor returns the handler of a step of namespace whose handler name
// is name: a Go handler, else the fallback's; nil if none serves it now.
func (w *Worker) handlerFor(namespace, name string) taskertype.Handler {
	if h, ok := w.handlers[name]; ok {
		return h
	}
	if w.cfg.Fallback != nil {
		return w.cfg.Fallback(namespace, name)
	}
	return nil
}

// outcome is what one attempt produced.
type outcome struct {
	result   json.RawMessage
	failure  *taskertype.StepFailure
	released bool // the worker is shutting down; give the step back
	// delay, with released: the step's message stays hidden this long
	// (a step whose handler no one serves waits for one).
	delay time.Duration
	// checkpoint, with released: a batch worker yielded this checkpoint;
	// it is stored and the step runs again from it.
	checkpoint *taskertype.Checkpoint
	// dropped: the step no longer waits for the attempt (errSuperseded);
	// nothing is reported.
	dropped bool
	// abandoned: the handler ignored its context and still runs; it gives
	// its slot back when it returns.
	abandoned bool
}

// job is a started step: its message, the step and the handler's input.
type job struct {
	m    *queue.Message
	step *taskertype.Step
	in   *taskertype.StepInput
	// claimedAt is when the claim on m was asked for, by this process's
	// monotonic clock: the lease runs from no earlier.
	claimedAt time.Time
	// adopted: m is a redelivery of a step whose attempt runs here; that
	// attempt takes the claim once the transaction commits. Nothing else
	// is set.
	adopted bool
	// parked: m is a redelivery of a step whose running attempt (in
	// another process) still holds its store lease for this long; m is
	// released to come back once that lease can have ended (park).
	// Nothing else is set.
	parked time.Duration
	// template and version name the task's template, as m does ("" when
	// it does not).
	template, version string
}

// round claims up to max messages of a step queue, starts their steps and
// hands each started step to a goroutine. When the queue shares the store's
// database, the claim and every start commit in one transaction; if that
// fails, the messages go one by one (consumer.Round).
func (w *Worker) round(ctx context.Context, name string, max int) (int, error) {
	return consumer.Round(ctx, w.log, name, w.txQueue,
		func() (int, error) { return w.roundInTx(ctx, name, max) },
		func() (int, error) {
			at := time.Now()
			msgs, err := w.queue.MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: max, VisibilityTimeout: w.cfg.VisibilityTimeout})
			if err != nil {
				return 0, err
			}
			if !w.txQueue && len(msgs) > 0 && w.startBatch(ctx, name, msgs, at) {
				return len(msgs), nil
			}
			w.steps.Add(len(msgs))
			for _, m := range msgs {
				go func() {
					defer w.steps.Done()
					w.execute(ctx, m, at)
				}()
			}
			return len(msgs), nil
		})
}

// Errors of startInTx. errStartStopped: the transaction was rolled back
// because the worker stops; nothing of it was committed. errCommitBudget:
// its commit outlasted commitBudget and was cut off; whether it committed
// is unknown.
var (
	errStartStopped = errors.New("the worker stops: the start of its steps was rolled back")
	errCommitBudget = errors.New("the commit of a start of steps outlasted its budget; whether it committed is unknown")
)

// startInTx runs fn, which starts steps, in a transaction that the steps'
// context ctx (which Stop's end cancels) rolls back until fn returned, and
// no longer once fn returned: what follows, the commit (which on
// PostgreSQL carries the writes fn buffered) and a store's retries of the
// transaction after a failed commit, is bounded by w.commitBudget instead,
// from the first commit on, since a commit cut off leaves its outcome
// unknown (steps started with no handler running them). Stop's end cuts
// off the wait for a connection; on PostgreSQL fn's statements run under
// ctx; on SQLite they take none, and the transaction checks ctx as fn
// returns (its commit takes no context either: the budget does not apply
// there).
func (w *Worker) startInTx(ctx context.Context, fn func(tx store.Tx, rec *transition.Recorder) error) error {
	if err := ctx.Err(); err != nil {
		return errors.Join(errStartStopped, err)
	}
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var (
		mu         sync.Mutex
		committing bool        // the last try of fn returned: its commit is on its way
		budget     *time.Timer // the commit's, from the first try that reached it
		overrun    bool        // the budget ran out
	)
	defer context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !committing {
			cancel() // a wait for a connection ends now
		}
	})()
	defer func() {
		if budget != nil {
			budget.Stop()
		}
	}()
	err := transition.InTx(tctx, w.store, w.cfg.Bus, w.cfg.Processor, func(tx store.Tx, rec *transition.Recorder) error {
		mu.Lock()
		committing = false
		if err := ctx.Err(); err != nil {
			// A retry after Stop's end: none after this one.
			mu.Unlock()
			cancel()
			return err
		}
		mu.Unlock()
		err := fn(tx, rec)
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return err
		}
		committing = true
		if budget == nil {
			budget = time.AfterFunc(w.commitBudget, func() {
				mu.Lock()
				overrun = true
				mu.Unlock()
				cancel()
			})
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	switch {
	case err != nil && !committing && ctx.Err() != nil:
		// The last try ended before its commit: rolled back.
		return errors.Join(err, errStartStopped)
	case err != nil && overrun:
		return errors.Join(err, errCommitBudget)
	}
	return err
}

func (w *Worker) roundInTx(ctx context.Context, name string, max int) (int, error) {
	var c claimed
	err := w.startInTx(ctx, func(tx store.Tx, rec *transition.Recorder) error {
		return w.claimTx(ctx, tx, rec, name, max, false, &c)
	})
	if err != nil {
		return c.n, err // rolled back; c.n says whether it had claimed any
	}
	w.launch(ctx, name, &c)
	return c.n, nil
}

// claimed is what claimTx took: n messages, of which jobs are started
// steps, later are left to start in their own transactions, poison are
// malformed, waiting have no handler yet, settled were acknowledged as
// duplicates and adopted went to
// attempts this worker runs already. at is when the claim was asked for.
type claimed struct {
	n       int
	jobs    []*job
	later   []*queue.Message
	poison  []queue.Receipt
	waiting []*queue.Message // steps no handler serves yet: given back with a delay
	settled int
	adopted int
	parked  []*job
	at      time.Time
}

// claimTx claims up to max messages of a step queue in tx and starts their
// steps. It fills c, which it resets first (the transaction may run again).
// A transaction that holds tasks already sets skipBusy: a step whose task
// another transaction holds is then left for later instead of waited for,
// since waiting while holding could close a cycle.
func (w *Worker) claimTx(ctx context.Context, tx store.Tx, rec *transition.Recorder, name string, max int, skipBusy bool, c *claimed) error {
	*c = claimed{at: time.Now()}
	msgs, err := tx.MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: max, VisibilityTimeout: w.cfg.VisibilityTimeout})
	if err != nil {
		return err
	}
	ack, err := w.startMsgsTx(ctx, tx, rec, msgs, skipBusy, c)
	if err != nil || len(ack) == 0 {
		return err
	}
	return tx.MessageAck(ctx, &queue.AckParams{Queue: name, Receipts: ack})
}

// startBatch starts the steps of messages claimed from a queue that does
// not share the store's database (a broker) in one transaction, as
// roundInTx does, acknowledges those that start no step after its commit,
// and runs the started ones. It reports false if the transaction failed
// (rolled back, unless its commit's outcome is unknown): the caller then
// takes the messages one by one; but while the worker stops, a failure
// whose outcome is unknown leaves the messages to their claims (true).
func (w *Worker) startBatch(ctx context.Context, name string, msgs []*queue.Message, at time.Time) bool {
	var (
		c   claimed
		ack []queue.Receipt
	)
	err := w.startInTx(ctx, func(tx store.Tx, rec *transition.Recorder) error {
		c = claimed{at: at}
		var err error
		ack, err = w.startMsgsTx(ctx, tx, rec, msgs, false, &c)
		return err
	})
	switch {
	case err != nil && ctx.Err() != nil && !errors.Is(err, errStartStopped):
		// Stopping, and whether the batch committed is unknown: the
		// messages are left to come back after their claims (one by one,
		// each would be given back at once, its step maybe started).
		w.log.Warn("starting a batch of steps failed as the worker stops; their messages come back after their claims", "queue", name, "error", err)
		w.release(len(msgs))
		return true
	case err != nil:
		w.log.Debug("a batch of step messages failed; taking them one by one", "queue", name, "error", err)
		return false
	}
	// The started steps first: the acknowledgement is a call of the
	// broker, which may be slow.
	w.launch(ctx, name, &c)
	if len(ack) > 0 {
		w.finish(name, func(ctx context.Context) error {
			return w.queue.MessageAck(ctx, &queue.AckParams{Queue: name, Receipts: ack})
		})
	}
	return true
}

// startMsgsTx starts the steps of claimed messages in tx, filling c; it
// returns the receipts to acknowledge with the commit (messages that start
// no step: duplicates, skipped).
func (w *Worker) startMsgsTx(ctx context.Context, tx store.Tx, rec *transition.Recorder, msgs []*queue.Message, skipBusy bool, c *claimed) ([]queue.Receipt, error) {
	c.n = len(msgs)
	// The claimed steps, their tasks' contexts and their dependencies'
	// results in one round trip: starting each costs none.
	missed, err := tx.Prefetch(ctx, &store.PrefetchParams{ContextsOf: wire.Tasks(msgs), SkipLocked: skipBusy})
	if err != nil {
		return nil, err
	}
	var ack []queue.Receipt
	for _, m := range msgs {
		if skipBusy && len(missed) > 0 {
			if id, ok := wire.TaskOf(m.Body); ok && slices.Contains(missed, id) {
				c.later = append(c.later, m)
				continue
			}
		}
		j, err := w.startTx(ctx, tx, rec, m, c.at)
		switch {
		case errors.Is(err, errPoison):
			c.poison = append(c.poison, m.Receipt())
		case errors.Is(err, errNoHandler):
			c.waiting = append(c.waiting, m)
		case j != nil && j.adopted:
			c.adopted++
		case j != nil && j.parked > 0:
			c.parked = append(c.parked, j)
		case errors.Is(err, errSkip), err == nil && j == nil:
			ack = append(ack, m.Receipt())
		case err != nil:
			return nil, consumer.Failed(m, err)
		default:
			c.jobs = append(c.jobs, j)
		}
	}
	c.settled = len(ack)
	return ack, nil
}

// launch acts on a committed claim: it gives back the slots of the
// messages that start no step, runs the started steps, and archives the
// poison and gives back the parked and waiting messages in the background.
func (w *Worker) launch(ctx context.Context, name string, c *claimed) {
	w.release(len(c.poison) + len(c.waiting) + c.settled + c.adopted + len(c.parked))
	w.steps.Add(len(c.jobs) + len(c.later))
	for _, j := range c.jobs {
		go func() {
			defer w.steps.Done()
			w.work(ctx, j, w.releaseOnce())
		}()
	}
	for _, m := range c.later {
		go func() {
			defer w.steps.Done()
			w.execute(ctx, m, c.at)
		}()
	}
	// The archive, parks and waits go after the started steps, on a
	// goroutine of their own: each is a call of the queue, which may be
	// slow (on a broker, just when messages come back), and neither these
	// steps nor those a caller launches next (another queue's) must wait
	// for it.
	if len(c.poison)+len(c.parked)+len(c.waiting) > 0 {
		w.steps.Add(1)
		go func() {
			defer w.steps.Done()
			if len(c.poison) > 0 {
				w.log.Error("archiving malformed step messages", "queue", name, "ids", c.poison)
				w.finish(name, func(ctx context.Context) error {
					return w.queue.MessageArchive(ctx, &queue.ArchiveParams{Queue: name, Receipts: c.poison})
				})
			}
			for _, j := range c.parked {
				w.park(j)
			}
			for _, m := range c.waiting {
				w.wait(m)
			}
		}()
	}
}

// execute takes one message, claimed at claimedAt, through start, handler
// and report, each in its own transaction. It owns one slot.
func (w *Worker) execute(ctx context.Context, m *queue.Message, claimedAt time.Time) {
	release := w.releaseOnce()
	var j *job
	err := w.startInTx(ctx, func(tx store.Tx, rec *transition.Recorder) error {
		var err error
		j, err = w.startTx(ctx, tx, rec, m, claimedAt)
		return err
	})
	switch {
	case err == nil && j != nil && j.adopted:
		// The running attempt holds the message now.
	case err == nil && j != nil && j.parked > 0:
		w.park(j)
	case errors.Is(err, errPoison):
		w.log.Error("archiving a malformed step message", "queue", m.Queue, "message_id", m.ID, "error", err)
		w.finish(m.Queue, func(ctx context.Context) error {
			return w.queue.MessageArchive(ctx, &queue.ArchiveParams{Queue: m.Queue, Receipts: []queue.Receipt{m.Receipt()}})
		})
	case errors.Is(err, errSkip), err == nil && j == nil:
		w.ack(m)
	case errors.Is(err, errNoHandler):
		w.wait(m)
	case errors.Is(err, errStartStopped):
		// Stopping before the step started: give the message back now
		// rather than leave it hidden for a whole claim timeout.
		w.finish(m.Queue, func(ctx context.Context) error {
			return w.queue.MessageNack(ctx, &queue.NackParams{Queue: m.Queue, Receipt: m.Receipt()})
		})
	case err != nil:
		// Leave the claim: it expires and the step is tried again.
		w.log.Warn("could not start a step; it will be delivered again", "queue", m.Queue, "message_id", m.ID, "error", err)
	default:
		w.work(ctx, j, release)
		return
	}
	release()
}

// wait gives back the message of a step no handler serves yet, hidden for
// waitDelay: the step stays enqueued, no attempt spent, until a handler
// serves it.
func (w *Worker) wait(m *queue.Message) {
	d := waitDelay(m.ReadCount)
	if m.ReadCount <= 1 {
		// Once per step, where an operator sees it: a handler missing
		// from every process leaves its steps waiting (the staleness
		// detector files them as worker_unavailable in the end).
		w.log.Warn("no handler serves a step yet; it waits for a process or pull worker that does (register the handler, or start a worker serving it)",
			"queue", m.Queue, "message_id", m.ID)
	} else {
		w.log.Debug("no handler serves a step yet; it waits", "queue", m.Queue, "message_id", m.ID, "retry_in", d)
		if w.taskEnded(m) {
			// The task ended meanwhile (an operator cancelled or
			// resolved it): nothing waits for the step.
			w.log.Info("the task of a step no handler served has ended; its message is dropped", "queue", m.Queue, "message_id", m.ID)
			w.ack(m)
			return
		}
	}
	w.finish(m.Queue, func(ctx context.Context) error {
		return w.queue.MessageNack(ctx, &queue.NackParams{Queue: m.Queue, Receipt: m.Receipt(), Delay: d})
	})
}

// taskEnded reports whether the task of a step message ended for good:
// complete, cancelled or resolved by hand. A task in error is not: an
// operator may reset it, and its enqueued steps must still have their
// messages then. False when the task cannot be read (the message waits
// again).
func (w *Worker) taskEnded(m *queue.Message) bool {
	msg, err := wire.DecodeStepMessage(m.Body)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t, err := w.cfg.Store.TaskGet(ctx, msg.TaskID)
	return err == nil && t.State.Terminal() && t.State != taskertype.TaskError
}

// releaseOnce returns a function that gives one slot back, once.
func (w *Worker) releaseOnce() func() {
	var once sync.Once
	return func() { once.Do(func() { w.release(1) }) }
}

// work runs a started step's handler and reports the outcome. It holds a
// slot (release gives it back) while the handler runs, and a reporting
// token while the outcome is stored; the slot goes back only once the token
// is held, so the steps between claim and stored outcome never exceed twice
// the slots, however slow the store is. A handler that ignores its timeout
// keeps its slot until it returns. From start to stored outcome the attempt
// is registered with the heartbeat, which renews its claim and cancels its
// handler when the claim is lost or the step no longer waits for it.
func (w *Worker) work(ctx context.Context, j *job, release func()) {
	reporting := false
	defer func() {
		if r := recover(); r != nil {
			// A bug in the worker itself; the claim expires and the
			// attempt is recorded as lost by the next claimant.
			w.log.Error("worker crashed on a step", "step", j.step.Name, "panic", r, "stack", string(debug.Stack()))
			release()
			if reporting {
				<-w.reporting
			}
		}
	}()
	s := j.step
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a := &attempt{step: s, cancel: cancel}
	if !w.leases.add(a, j.m, j.claimedAt) {
		// The slots bound the attempts; this is a bug.
		w.log.Error("too many running steps to renew their claims; this one runs without renewals", "step", s.Name)
	}
	registered := true
	defer func() {
		if registered { // a panic
			w.leases.remove(a)
		}
	}()
	// Removed while the attempt still holds its slot or its reporting
	// token: that keeps the registry within twice the slots.
	unregister := func() {
		w.leases.remove(a)
		registered = false
	}
	if w.beforeClaimCheck != nil {
		w.beforeClaimCheck(s)
	}
	// Not under ctx: a step whose start committed just as Stop ended is
	// given back below, which needs its claim (extendClaim has a deadline
	// of its own).
	if !w.holdsClaim(context.WithoutCancel(ctx), a) {
		// Another worker may have the step by now: the handler does not
		// start, and nothing is reported (the fence would refuse it).
		w.log.Warn("the claim on a step was lost before its handler started; leaving it to its new holder",
			"task_id", s.TaskID, "step", s.Name, "claimed", time.Since(j.claimedAt).Round(time.Millisecond))
		unregister()
		release()
		return
	}
	// The completion listener tracks the attempt from dispatch to stored
	// outcome, by its attempt ID.
	id := s.AttemptID
	// An attempt silent past its timeout, the grace and the time a report
	// may take to be stored is an orphan.
	expect := s.Timeout + w.cfg.TimeoutGrace + reportBudget
	if err := w.corr.Track(correlation.Pending{ID: id, TaskID: s.TaskID, StepID: s.ID, StepName: s.Name, Attempt: s.Attempts, Expect: expect}); err != nil {
		w.log.Warn("the completion listener refused to track a step; it runs untracked", "step", s.Name, "error", err)
	}
	var out *outcome
	if ctx.Err() == nil {
		out = w.settings(actx, j)
	}
	if ctx.Err() != nil {
		// Stop's end cancelled the steps before the handler was called (a
		// step whose claim committed as it came, or whose settings could
		// not be read because of it): given back, the attempt not
		// counted.
		out = &outcome{released: true}
	}
	if out == nil {
		out = w.run(ctx, actx, s, j.in, release)
	}
	w.reporting <- struct{}{}
	reporting = true
	if !out.abandoned {
		release()
	}
	// An outcome is reported even when the claim was lost: the fence
	// (the attempt ID) decides whether it still counts. The message is
	// acknowledged with this attempt's receipt either way: if another
	// worker claimed it again since, the receipt matches nothing and the
	// acknowledgement does nothing; if not, a message left behind would
	// come back and have a later attempt recorded as lost.
	switch m, _ := w.leases.store(a); {
	case out.dropped:
		w.log.Info("dropping the outcome of an attempt the step no longer waits for", "task_id", s.TaskID, "step", s.Name)
		w.ack(m)
	default:
		w.report(&report{m: m, step: s, out: out})
	}
	w.corr.Complete(id)
	unregister()
	<-w.reporting
	reporting = false
}

// startTx moves the step of m, claimed at claimedAt, from enqueued to
// in_progress with a new attempt ID and loads its inputs (and, with
// storeLease, gives the attempt its store lease). If the step is already in
// progress and m is a redelivery, the worker that had it is gone: the
// attempt is reported as lost and the job is nil; unless this worker runs
// that attempt itself (its claim lapsed during a blip): the attempt then
// takes the new claim once tx commits (the job is adopted, and nothing is
// written); or, with storeLease, unless the attempt's store lease still
// runs (its worker lost its connection to the broker, not its life): the
// job is parked, and nothing is written. errSkip: m is a duplicate;
// errPoison: m is malformed.
func (w *Worker) startTx(ctx context.Context, tx store.Tx, rec *transition.Recorder, m *queue.Message, claimedAt time.Time) (*job, error) {
	msg, err := wire.DecodeStepMessage(m.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errPoison, err)
	}
	stepID := msg.StepID
	s, err := tx.StepGet(ctx, stepID)
	if errors.Is(err, taskertype.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", errPoison, err)
	}
	if err != nil {
		return nil, err
	}
	now := w.clock.Now()
	var h taskertype.Handler
	if s.State == taskertype.StepEnqueued {
		h = w.handlerFor(namespaceOf(m.Queue), s.Handler)
	}
	switch {
	case s.State == taskertype.StepEnqueued && h == nil:
		// Not started, nothing written: the attempt is not spent on a
		// step nobody can run.
		return nil, fmt.Errorf("%w: step %q, handler %q, namespace %q", errNoHandler, s.Name, s.Handler, namespaceOf(m.Queue))
	case s.State == taskertype.StepEnqueued:
		attemptID, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		if err := rec.Step(ctx, tx, s, taskertype.StepEventStart, now, func(s *taskertype.Step) {
			s.Attempts++
			s.AttemptID = attemptID
			s.StartedAt, s.FinishedAt = now, time.Time{}
		}); err != nil {
			return nil, err
		}
		if w.storeLease {
			// With the commit: no round trip of its own.
			if err := tx.StepLeaseHold(ctx, &store.StepLeaseParams{StepID: s.ID, AttemptID: attemptID, Lease: w.cfg.VisibilityTimeout}); err != nil {
				return nil, err
			}
		}
		inputs, err := tx.StepInputs(ctx, stepID)
		if err != nil {
			return nil, err
		}
		var ancestors map[string]json.RawMessage
		if a, ok := h.(taskertype.AncestorsWanter); ok && a.WantsAncestors() {
			ancestors = tx.StepAncestorsHeld(stepID)
		}
		return &job{m: m, step: s, in: &taskertype.StepInput{
			TaskID: s.TaskID, StepID: s.ID, StepName: s.Name, Namespace: namespaceOf(m.Queue),
			Attempt: s.Attempts, MaxAttempts: s.Retry.MaxAttempts, AttemptID: s.AttemptID, Context: inputs.Context, Results: inputs.Results,
			Ancestors: ancestors, CorrelationID: inputs.CorrelationID, ParentCorrelationID: inputs.ParentCorrelationID,
		}, claimedAt: claimedAt, template: msg.Template, version: msg.Version}, nil
	case s.State == taskertype.StepInProgress && m.ReadCount > 1 && w.leases.runs(s.ID, s.AttemptID):
		adopted := *s
		rec.AfterCommit(func() {
			if !w.leases.adopt(adopted.ID, adopted.AttemptID, m, claimedAt) {
				// It ended meanwhile: the message comes back after the
				// lease and is acknowledged as done then.
				w.log.Debug("a redelivered step's attempt ended before it could take the new claim", "step_id", adopted.ID)
				return
			}
			w.adopted.Add(1)
			w.log.Info("a running step's message was delivered again (its claim lapsed); the running attempt keeps it",
				"task_id", adopted.TaskID, "step", adopted.Name)
			if w.afterAdopt != nil {
				w.afterAdopt(&adopted)
			}
		})
		return &job{m: m, adopted: true}, nil
	case s.State == taskertype.StepInProgress && m.ReadCount > 1:
		if w.storeLease {
			// The message came back while the attempt may still run
			// elsewhere (its holder's connection dropped): the store
			// lease, in database time, says whether it does.
			left, err := tx.StepLeaseLeft(ctx, s.ID, s.AttemptID)
			if err != nil {
				return nil, err
			}
			if left > 0 {
				return &job{m: m, parked: left}, nil
			}
		}
		f := &taskertype.StepFailure{
			Kind: taskertype.FailureLost, Retryable: true, Attempt: s.Attempts,
			Message: fmt.Sprintf("attempt %d started at %s never reported: its worker stopped or was killed", s.Attempts, s.StartedAt.Format(time.RFC3339Nano)),
		}
		return nil, w.recordOutcome(ctx, tx, rec, s, s.AttemptID, &outcome{failure: f}, now, true, m.Priority)
	}
	return nil, errSkip
}

// parkMargin is how long past the end of a running attempt's store lease a
// parked message comes back: the attempt renews its lease a third of a
// lease before it ends, so by then it has renewed it or lost it.
const parkMargin = 100 * time.Millisecond

// park releases j's message to come back once the store lease of the
// attempt running its step elsewhere can have ended: if the attempt
// renewed it by then, the message is parked again; if it lapsed, the
// attempt is recorded as lost then; if the attempt's outcome was stored,
// the message finds the step moved on and is acknowledged.
func (w *Worker) park(j *job) {
	m := j.m
	w.log.Info("a running step's message was delivered again while its attempt still holds its store lease elsewhere; releasing it until the lease can have ended",
		"queue", m.Queue, "message_id", m.ID, "lease_left", j.parked)
	w.finish(m.Queue, func(ctx context.Context) error {
		return w.queue.MessageNack(ctx, &queue.NackParams{Queue: m.Queue, Receipt: m.Receipt(), Delay: j.parked + parkMargin})
	})
}

func namespaceOf(queueName string) string {
	const prefix = "worker_"
	if len(queueName) > len(prefix) {
		return queueName[len(prefix):]
	}
	return queueName
}

// settings fills the handler input's configuration and method from the
// step's template (Config.StepSettings); on failure it returns the failed
// attempt's outcome, else nil.
func (w *Worker) settings(ctx context.Context, j *job) *outcome {
	if w.cfg.StepSettings == nil {
		return nil
	}
	in := j.in
	st, err := w.cfg.StepSettings(ctx, StepRef{TaskID: in.TaskID, Namespace: in.Namespace,
		Template: j.template, Version: j.version, Step: in.StepName})
	if err != nil {
		return &outcome{failure: &taskertype.StepFailure{Kind: taskertype.FailureHandler, Retryable: true, Attempt: j.step.Attempts,
			Message: fmt.Sprintf("read the configuration of step %q from its template: %v", in.StepName, err)}}
	}
	in.Config, in.Method = st.Config, st.Method
	if st.Batch != nil {
		b, err := batchInput(st.Batch, in, j.step)
		if err != nil {
			return &outcome{failure: &taskertype.StepFailure{Kind: taskertype.FailureHandler, Retryable: false, Attempt: j.step.Attempts,
				Message: fmt.Sprintf("read the batch inputs of worker %q: %v", in.StepName, err)}}
		}
		in.Batch = b
	}
	return nil
}

// run calls the handler under the step's timeout and classifies what it did.
// The handler's context is actx (the attempt's, which the heartbeat cancels
// when the claim is lost or the step moved on) under stop (the worker's,
// cancelled when it stops). The caller gives the slot back (release) after
// run returns, unless the outcome is abandoned: then the handler's goroutine
// gives it back when the handler finally returns. The outcome is known only
// once the handler returned or was given up on after the grace: a step's
// retry never starts beside a handler still within its grace.
func (w *Worker) run(stop, actx context.Context, step *taskertype.Step, in *taskertype.StepInput, release func()) *outcome {
	h := w.handlerFor(in.Namespace, step.Handler)
	if h == nil {
		// Its handler was there when the step started and is gone now
		// (its pull workers left): the step waits for one, uncounted.
		return &outcome{released: true, delay: waitDelayMin}
	}
	hctx, cancel := context.WithTimeoutCause(actx, step.Timeout, errStepTimeout)
	defer cancel()
	done := make(chan *outcome, 1)
	// Who gives the slot back: the caller once the handler returned
	// (running → returned), or this goroutine if run gave up on the
	// handler first (running → abandoned).
	const running, returned, abandoned = 0, 1, 2
	var state atomic.Int32
	go func() {
		defer func() {
			if !state.CompareAndSwap(running, returned) {
				release()
			}
		}()
		defer func() {
			// The handler, or its error's Error or its result's MarshalJSON.
			if r := recover(); r != nil {
				done <- failed(step, taskertype.FailurePanic, false, fmt.Sprintf("handler panicked: %v\n%s", r, debug.Stack()))
			}
		}()
		v, err := h.Handle(hctx, in)
		// Judged as the handler returns: a result that came after the
		// deadline is a timeout, whatever it says.
		cause := context.Cause(hctx)
		timedOut := errors.Is(cause, errStepTimeout)
		// Only a stopping worker gives a step back without counting the
		// attempt: a handler cut short by the stop, or one that gives its
		// step back (ErrReleased) once the stop began. Before, ErrReleased
		// is a failure like any other.
		switch {
		case stop.Err() != nil && (err != nil || timedOut),
			errors.Is(err, taskertype.ErrReleased) && w.stopping.Load():
			done <- &outcome{released: true}
		case errors.Is(cause, errSuperseded):
			done <- &outcome{dropped: true}
		case err != nil && (errors.Is(cause, errClaimLost) || errors.Is(cause, errOrphaned)):
			done <- endedBy(step, cause, err.Error())
		case !timedOut && errors.Is(err, taskertype.ErrHandedBack):
			// Given back without a verdict (a pull worker released it):
			// dispatched again at once, the attempt not counted.
			w.log.Debug("a step was handed back without a verdict; it is queued again", "task_id", step.TaskID, "step", step.Name, "why", err)
			done <- &outcome{released: true}
		case timedOut && err != nil:
			done <- pastTimeout(step, ": "+err.Error())
		case timedOut:
			done <- pastTimeout(step, " (it returned a result after the deadline)")
		case err != nil:
			done <- &outcome{failure: taskertype.FailureFromError(err, step.Attempts)}
		case isCheckpoint(v):
			done <- w.yield(step, in, v)
		default:
			result, err := encodeResult(v)
			if limit := w.cfg.MaxResultBytes; err == nil && limit > 0 && len(result) > limit {
				err = fmt.Errorf("handler result is %d bytes of JSON, more than the limit of %d: return less (large data belongs elsewhere, returned by reference), or raise the limit (Config.MaxResultBytes, or --max-result-bytes)", len(result), limit)
			}
			if err != nil {
				done <- failed(step, taskertype.FailureHandler, false, err.Error())
				return
			}
			if cp := wireCheckpoint(in, result); cp != nil {
				done <- w.yield(step, in, cp)
				return
			}
			done <- &outcome{result: result}
		}
	}()
	select {
	case out := <-done:
		return out
	case <-hctx.Done():
	}
	grace := time.NewTimer(w.cfg.TimeoutGrace)
	defer grace.Stop()
	select {
	case out := <-done:
		return out
	case <-grace.C:
	}
	if !state.CompareAndSwap(running, abandoned) {
		return <-done // it returned just now
	}
	w.abandoned.Add(1)
	w.log.Warn("abandoning a handler that ignores its context; its slot stays taken until it returns", "step", step.Name, "handler", step.Handler)
	// Abandoned during a stop too: the attempt fails and counts, since
	// the handler still runs; only a handler that returned gives its step
	// back uncounted.
	var out *outcome
	detail := fmt.Sprintf("the handler did not return within %v after its context ended", w.cfg.TimeoutGrace)
	switch cause := context.Cause(actx); {
	case errors.Is(cause, errSuperseded):
		out = &outcome{dropped: true}
	case errors.Is(cause, errClaimLost), errors.Is(cause, errOrphaned):
		out = endedBy(step, cause, detail)
	default:
		out = pastTimeout(step, ": "+detail)
	}
	out.abandoned = true
	return out
}

// failed is a failed attempt's outcome. (failed, pastTimeout and endedBy are
// functions, not closures of run: a closure its handler's goroutine calls
// is allocated per step.)
func failed(step *taskertype.Step, kind taskertype.FailureKind, retryable bool, msg string) *outcome {
	return &outcome{failure: &taskertype.StepFailure{Kind: kind, Retryable: retryable, Attempt: step.Attempts, Message: msg}}
}

// pastTimeout is the outcome of an attempt past the step's timeout.
func pastTimeout(step *taskertype.Step, detail string) *outcome {
	return failed(step, taskertype.FailureTimeout, true, fmt.Sprintf("step exceeded its timeout of %v%s", step.Timeout, detail))
}

// endedBy is the failure of a handler cut short because its claim was lost
// or it was failed as an orphan: retryable and counted, never a permanent
// failure (a cancellation is no verdict on the step). The fence refuses it
// if another attempt holds the step by now.
func endedBy(step *taskertype.Step, cause error, detail string) *outcome {
	kind := taskertype.FailureTimeout
	if errors.Is(cause, errClaimLost) {
		kind = taskertype.FailureLost
	}
	return failed(step, kind, true, fmt.Sprintf("attempt ended: %v: %s", cause, detail))
}

func encodeResult(v any) (json.RawMessage, error) {
	var b []byte
	switch v := v.(type) {
	case json.RawMessage:
		b = v
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("handler result cannot be encoded as JSON: %w", err)
		}
	}
	if len(b) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("handler returned bytes that are not valid JSON (%d bytes)", len(b))
	}
	return b, nil
}

// recordOutcome applies an attempt's outcome to a step in progress and, if
// send, tells orchestration with a result message of priority prio (the
// step message's).
// The write is fenced by attempt, the attempt's ID: it fails as stale if
// the store's step runs another attempt.
func (w *Worker) recordOutcome(ctx context.Context, tx store.Tx, rec *transition.Recorder, s *taskertype.Step, attempt uuid.UUID, out *outcome, now time.Time, send bool, prio int) error {
	if out.released && out.checkpoint != nil {
		cp, err := checkpointResult(s.Result, out.checkpoint, now)
		if err != nil {
			return err
		}
		// Not counted as an attempt: the step runs on from the checkpoint.
		return rec.StepOfAttempt(ctx, tx, s, attempt, taskertype.StepEventCheckpointYield, now, func(s *taskertype.Step) {
			s.Result, s.Attempts = cp, max(s.Attempts-1, 0)
		})
	}
	if out.released {
		return rec.StepOfAttempt(ctx, tx, s, attempt, taskertype.StepEventRelease, now, func(s *taskertype.Step) {
			s.Attempts = max(s.Attempts-1, 0)
		})
	}
	ev, update := taskertype.StepEventSucceed, func(s *taskertype.Step) {
		// A success leaves no failure of an earlier attempt behind.
		s.Result, s.Failure, s.FinishedAt = out.result, nil, now
	}
	if out.failure != nil {
		ev, update = taskertype.StepEventFail, func(s *taskertype.Step) {
			s.Failure, s.FinishedAt = out.failure, now
		}
	}
	if err := rec.StepOfAttempt(ctx, tx, s, attempt, ev, now, update); err != nil || !send {
		return err
	}
	return tx.MessageSend(ctx, &queue.SendParams{
		Queue:    queue.ResultsQueue,
		Body:     wire.Encode(wire.ResultMessage{TaskID: s.TaskID, StepID: s.ID}),
		Priority: prio,
	})
}

func (w *Worker) ack(m *queue.Message) {
	w.finish(m.Queue, func(ctx context.Context) error {
		return w.queue.MessageAck(ctx, &queue.AckParams{Queue: m.Queue, Receipts: []queue.Receipt{m.Receipt()}})
	})
}

// finish acknowledges, releases or archives messages; a failure is only
// logged, because a message comes back after its claim expires and is then
// recognised as done.
func (w *Worker) finish(queueName string, fn func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fn(ctx); err != nil {
		w.log.Warn("could not finish a message; it will be delivered again and skipped", "queue", queueName, "error", err)
	}
}
