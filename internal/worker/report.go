package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/correlation"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// reportBudget bounds the time spent storing one outcome, retries included.
const reportBudget = 30 * time.Second

// A group of outcomes stored in one transaction holds at most
// maxReportBatch outcomes and maxReportBytes of results and failures
// (always one outcome, whatever its size: a result is bounded by
// Config.MaxResultBytes). The outcomes waiting are bounded by the worker's
// concurrency; these bound one transaction's size when that is large.
const (
	maxReportBatch = 256
	maxReportBytes = 64 << 20
)

// reportSize is what an outcome adds to its group's transaction, roughly.
func reportSize(r *report) int {
	n := len(r.out.result) + 256
	if f := r.out.failure; f != nil {
		n += len(f.Message) + len(f.Kind)
	}
	return n
}

// report is a finished attempt waiting to be stored.
type report struct {
	m    *queue.Message
	step *taskertype.Step
	out  *outcome
}

// report stores an attempt's outcome and tells orchestration. It returns
// when the outcome is stored, or after it was given up on; it runs even while
// the worker shuts down.
//
// Outcomes are group-committed (package group): many steps finishing
// together cost one transaction, and a lone step pays no hand-off to
// another goroutine. When the queue shares the store's database, the same
// transaction acknowledges their messages and claims and starts the next
// steps of the group's queues with the slots the group freed, so a chain of
// steps costs one transaction per step (a step of a task another
// transaction holds starts in a transaction of its own); a broker's
// messages are acknowledged after the commit.
func (w *Worker) report(r *report) {
	if r.out.released {
		ctx, cancel := context.WithTimeout(context.Background(), reportBudget)
		defer cancel()
		w.storeOne(ctx, r)
		return
	}
	// One task's outcomes always go to the same group, so they are stored
	// in the order they came; groups of different tasks commit at once.
	// Byte 15 of a UUIDv7 is random.
	w.reports[int(r.step.TaskID[15])%len(w.reports)].Do(r)
}

// storeBatch stores a batch of outcomes in one transaction, acknowledges
// their messages and claims the next steps of their queues. The transaction
// takes in the outcomes that arrived while it waited to begin (more, the
// group's Committer.More): on SQLite it waits for the single writer, often
// long enough for several. If the transaction fails in its claims, the
// outcomes are stored again in one that claims nothing; if it fails
// otherwise, or that one fails too, each outcome is stored on its own.
func (w *Worker) storeBatch(batch []*report, more func() []*report) {
	// The next steps are claimed in the transaction only from a queue in
	// the store's database; a broker's are acknowledged after the commit.
	claimsFailed, err := w.storeBatchTx(&batch, more, w.txQueue)
	if claimsFailed {
		// A message that cannot be started is the claim loop's to deal
		// with (consumer.Round); the outcomes need not wait for it.
		w.log.Debug("claiming the next steps with a batch of outcomes failed; storing them without claims", "outcomes", len(batch), "error", err)
		_, err = w.storeBatchTx(&batch, nil, false)
	}
	if err == nil {
		return
	}
	w.log.Debug("storing a batch of outcomes failed; storing them one by one", "outcomes", len(batch), "error", err)
	for _, r := range batch {
		// Each with a budget of its own: one shared by the batch could run
		// out before the last outcome's turn.
		func() {
			ctx, cancel := context.WithTimeout(context.Background(), reportBudget)
			defer cancel()
			w.storeOne(ctx, r)
		}()
	}
}

// storeBatchTx is one try of storeBatch: one transaction, claiming the next
// steps if claim is set and the worker's claims are open (Stop closes them:
// checked as the transaction starts and again before its claims). If more
// is set, each run of the transaction first adds to *batch what it returns.
// claimsFailed: the transaction failed in its claims, having recorded the
// outcomes, before its time ran out. It holds the claim gate and the slots
// of its claims only until their steps are launched or given back: Stop's
// wait for the gate never includes a fallback (its wait for the steps,
// which store their outcomes, does, bounded by its context).
func (w *Worker) storeBatchTx(batch *[]*report, more func() []*report, claim bool) (claimsFailed bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), reportBudget)
	defer cancel()
	room := 0
	if claim && w.claims.enter() {
		defer w.claims.leave()
		room = w.tryAcquire(w.cfg.ClaimBatch)
	}
	held := room // the slots not yet handed to launched steps
	defer func() { w.release(held) }()
	type claimedFrom struct {
		queue string
		c     claimed
	}
	var next []claimedFrom
	var queues []string
	acks := map[string][]queue.Receipt{}
	err = transition.InTx(ctx, w.store, w.cfg.Bus, w.cfg.Processor, func(tx store.Tx, rec *transition.Recorder) error {
		next, claimsFailed = next[:0], false
		if more != nil {
			*batch = append(*batch, more()...)
		}
		queues = queues[:0]
		clear(acks)
		for _, r := range *batch {
			if _, ok := acks[r.m.Queue]; !ok {
				queues = append(queues, r.m.Queue)
			}
			acks[r.m.Queue] = append(acks[r.m.Queue], r.m.Receipt())
		}
		// The acknowledgements go first, with the prefetch's round trip:
		// one waiting for a message another worker claimed again (its
		// claim had expired) then waits before this transaction holds
		// any task that worker may be waiting for.
		for _, q := range queues {
			if !w.txQueue {
				break
			}
			if err := tx.MessageAck(ctx, &queue.AckParams{Queue: q, Receipts: acks[q]}); err != nil {
				return err
			}
		}
		// Every task of the batch and its steps in one round trip, with
		// the contexts: the next steps claimed below are mostly of these
		// tasks, and then start without another round trip.
		ids := make([]uuid.UUID, len(*batch))
		for i, r := range *batch {
			ids[i] = r.step.TaskID
		}
		if _, err := tx.Prefetch(ctx, &store.PrefetchParams{ContextsOf: ids}); err != nil {
			return err
		}
		for _, r := range *batch {
			if err := w.recordTx(ctx, tx, rec, r); err != nil && !errors.Is(err, errSkip) {
				return err
			}
		}
		// The next steps are claimed after the outcomes are recorded, so
		// that a step they made ready is among them. This transaction holds
		// tasks now: a step of a task another one holds is left for later.
		left := room
		if w.claims.closed() {
			left = 0 // Stop began meanwhile: start nothing new
		}
		for _, q := range queues {
			if left == 0 {
				break
			}
			next = append(next, claimedFrom{queue: q})
			c := &next[len(next)-1].c
			if err := w.claimTx(ctx, tx, rec, q, left, true, c); err != nil {
				claimsFailed = ctx.Err() == nil
				return err
			}
			left -= c.n
		}
		return nil
	})
	if err != nil {
		return claimsFailed, err
	}
	if !w.txQueue {
		for _, q := range queues {
			w.finish(q, func(ctx context.Context) error {
				return w.queue.MessageAck(ctx, &queue.AckParams{Queue: q, Receipts: acks[q]})
			})
		}
	}
	for i := range next {
		held -= next[i].c.n // launch owns the slots of what it claimed
		w.launch(w.stepCtx, next[i].queue, &next[i].c)
	}
	return false, nil
}

// recordTx records one outcome in tx and, when orchestration runs in this
// process, processes it there. errSkip: the step no longer waits for this
// attempt (cancelled, resolved by hand, or reported lost); nothing was
// written and the message only needs acknowledging.
func (w *Worker) recordTx(ctx context.Context, tx store.Tx, rec *transition.Recorder, r *report) error {
	inline := w.cfg.Results != nil && !r.out.released
	record := func(cur *taskertype.Step) error {
		// The attempt ID names the attempt; the store checks it again
		// (the fence) as it writes the outcome. The attempt number and
		// start time are compared too: a worker of a version before
		// attempt IDs starts a step without changing its ID.
		if cur.State != taskertype.StepInProgress || cur.AttemptID != r.step.AttemptID ||
			cur.Attempts != r.step.Attempts || cur.StartedAt.UnixMicro() != r.step.StartedAt.UnixMicro() {
			return errSkip
		}
		return w.recordOutcome(ctx, tx, rec, cur, r.step.AttemptID, r.out, w.clock.Now(), !inline, r.m.Priority)
	}
	if inline {
		// Orchestration locks the task, then hands the step to record.
		return w.cfg.Results.ProcessResultTx(ctx, tx, rec, r.step.TaskID, r.step.ID, record)
	}
	cur, err := tx.StepGet(ctx, r.step.ID)
	if err != nil {
		return err
	}
	return record(cur)
}

// storeOne stores one outcome in its own transaction, retrying on passing
// store errors until ctx ends.
func (w *Worker) storeOne(ctx context.Context, r *report) {
	m, step := r.m, r.step
	// A checkpoint yield on a queue in the store's database dispatches the
	// step again with a fresh message in the transaction that stores the
	// checkpoint (and acknowledges the old one): one commit, no release.
	yieldInTx := w.txQueue && r.out.released && r.out.checkpoint != nil
	ackInTx := w.txQueue && (!r.out.released || yieldInTx)
	var err error
	for attempt, delay := 1, 20*time.Millisecond; ; attempt, delay = attempt+1, min(2*delay, 2*time.Second) {
		err = transition.InTx(ctx, w.store, w.cfg.Bus, w.cfg.Processor, func(tx store.Tx, rec *transition.Recorder) error {
			if err := w.recordTx(ctx, tx, rec, r); err != nil || !ackInTx {
				return err
			}
			if yieldInTx {
				// The fresh message waits from now, not from its task's
				// creation (queue.SendParams.Since): a step that yields
				// lets the steps waiting behind it run first.
				if err := tx.MessageSend(ctx, &queue.SendParams{Queue: m.Queue, Body: m.Body, Priority: m.Priority}); err != nil {
					return err
				}
			}
			return tx.MessageAck(ctx, &queue.AckParams{Queue: m.Queue, Receipts: []queue.Receipt{m.Receipt()}})
		})
		// A stale state may come from orchestration's cached view of the
		// task (dropped by then): try again once or twice before giving up.
		retry := passing(err) || (errors.Is(err, taskertype.ErrStaleState) && attempt < 3)
		if err == nil || !retry || ctx.Err() != nil {
			break
		}
		w.log.Warn("could not store a step's result; retrying", "step", step.Name, "attempt", attempt, "retry_in", delay, "error", err)
		time.Sleep(delay)
	}
	switch {
	case err != nil && !errors.Is(err, errSkip) && !errors.Is(err, taskertype.ErrStaleState):
		w.log.Error("giving up storing a step's result; the claim will expire and the attempt be recorded as lost",
			"task_id", step.TaskID, "step", step.Name, "error", err)
	case r.out.released && err == nil && !yieldInTx:
		w.finish(m.Queue, func(ctx context.Context) error {
			return w.queue.MessageNack(ctx, &queue.NackParams{Queue: m.Queue, Receipt: m.Receipt(), Delay: r.out.delay})
		})
	case ackInTx && err == nil:
	default:
		w.ack(m)
	}
}

// passing reports whether a store error may go away if the transaction is
// tried again: not a skip or a stale state (the step moved on), not a closed
// store, not bad data.
func passing(err error) bool {
	for _, final := range []error{errSkip, errPoison, taskertype.ErrStaleState, taskertype.ErrClosed,
		taskertype.ErrInvalid, taskertype.ErrNotFound, taskertype.ErrIllegalTransition, context.Canceled} {
		if errors.Is(err, final) {
			return false
		}
	}
	return true
}

// failOrphans fails, as retryable, the attempts the completion listener
// found silent past their expected time (the correlation id is the attempt
// ID): a timeout failure is stored through the fenced report path and then
// the handler is cancelled, so the attempt's own outcome, if it ever comes,
// changes nothing. It runs on the tracker's goroutine: orphans are
// rare, and their sweep may wait.
func (w *Worker) failOrphans(ps []correlation.Pending) {
	for _, p := range ps {
		a := w.leases.get(p.StepID, p.ID)
		if a == nil {
			continue // reported meanwhile
		}
		m, _, lost := w.leases.claim(a)
		if lost {
			continue
		}
		f := &taskertype.StepFailure{Kind: taskertype.FailureTimeout, Retryable: true, Attempt: p.Attempt,
			Message: fmt.Sprintf("attempt %d was silent for %v, past the time it may take (its timeout, the grace and the time to store its outcome): failed as an orphan",
				p.Attempt, w.clock.Now().Sub(p.Since).Round(time.Millisecond))}
		ctx, cancel := context.WithTimeout(context.Background(), reportBudget)
		w.storeOne(ctx, &report{m: m, step: a.step, out: &outcome{failure: f}})
		cancel()
		// Stored first: the handler's own outcome then changes nothing.
		a.cancel(errOrphaned)
	}
}
