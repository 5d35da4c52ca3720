package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// The causes of an attempt's context ending before its handler returned,
// besides its timeout and the worker stopping.
var (
	// errClaimLost: the claim of the step's message is gone (it expired
	// and the message was claimed again, or it could not be renewed for
	// two thirds of a lease). Another worker may run the step; this
	// attempt's outcome is still reported, without acknowledging the
	// message, and the fence decides: a failure is retryable.
	errClaimLost = errors.New("the claim on the step was lost: another worker may run it")
	// errSuperseded: the step no longer waits for this attempt: it was
	// cancelled, resolved or completed by hand, or another attempt holds
	// it. The attempt's outcome is dropped.
	errSuperseded = errors.New("the step no longer waits for this attempt (cancelled, resolved or completed by hand, or taken over by another attempt)")
	// errOrphaned: the completion listener found the attempt silent past
	// its expected time; it was failed as retryable. A later outcome is
	// reported, and the fence refuses it.
	errOrphaned = errors.New("the attempt was silent past its expected time and was failed as an orphan")
)

// attempt is a step this worker runs, from its start until its outcome is
// stored, with the claim on its message: the heartbeat renews the claim and
// checks that the step still waits for the attempt.
type attempt struct {
	step   *taskertype.Step // ID, TaskID, Name and AttemptID are read
	cancel context.CancelCauseFunc

	// Guarded by leases.mu.
	m       *queue.Message // the claim held; adopt replaces it
	renewed time.Time      // when the claim was last taken or renewed, by this process's monotonic clock
	lost    bool           // the claim is gone: the outcome is stored without acknowledging the message
	// storing: the outcome is being stored, in a transaction that
	// acknowledges the message; a renewal that finds it gone then is
	// no loss.
	storing bool
	// renewing: a renewal of the claim is under way.
	renewing bool
}

// leases are the attempts this worker runs, by step. There are at most
// twice the worker's slots: an attempt is here while it holds a slot or a
// reporting token (see work).
type leases struct {
	mu     sync.Mutex
	max    int
	byStep map[uuid.UUID]*attempt
}

func newLeases(max int) *leases {
	return &leases{max: max, byStep: make(map[uuid.UUID]*attempt, max)}
}

// add registers a started attempt whose message was claimed at claimedAt.
// It returns false, and a is not registered, when the registry is full,
// which the slots prevent.
func (l *leases) add(a *attempt, m *queue.Message, claimedAt time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	a.m, a.renewed = m, claimedAt
	if len(l.byStep) >= l.max {
		return false
	}
	l.byStep[a.step.ID] = a
	return true
}

func (l *leases) remove(a *attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byStep[a.step.ID] == a {
		delete(l.byStep, a.step.ID)
	}
}

// get returns the attempt running a step, if it is id.
func (l *leases) get(stepID, id uuid.UUID) *attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.byStep[stepID]; a != nil && a.step.AttemptID == id {
		return a
	}
	return nil
}

// runs reports whether this worker runs attempt id of the step and still
// holds a claim for it.
func (l *leases) runs(stepID, id uuid.UUID) bool {
	if id == uuid.Nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.byStep[stepID]
	return a != nil && a.step.AttemptID == id && !a.lost
}

// adopt gives the running attempt id of the step the claim m, taken at
// claimedAt: its heartbeats and acknowledgement use it from now on. It
// reports whether the attempt was still there.
func (l *leases) adopt(stepID, id uuid.UUID, m *queue.Message, claimedAt time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.byStep[stepID]
	if a == nil || a.step.AttemptID != id || a.lost {
		return false
	}
	a.m, a.renewed = m, claimedAt
	return true
}

// claim returns the claim an attempt holds now and when it was last taken
// or renewed.
func (l *leases) claim(a *attempt) (*queue.Message, time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return a.m, a.renewed, a.lost
}

// renewedAt records a renewal of claim m of a made at at, unless a holds
// another claim by now.
func (l *leases) renewedAt(a *attempt, m *queue.Message, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.m == m && at.After(a.renewed) {
		a.renewed = at
	}
}

// lose marks a's claim m as gone, unless a holds another claim by now, and
// cancels its handler. It reports whether it did.
func (l *leases) lose(a *attempt, m *queue.Message) bool {
	l.mu.Lock()
	if a.m != m || a.lost {
		l.mu.Unlock()
		return false
	}
	a.lost = true
	l.mu.Unlock()
	a.cancel(errClaimLost)
	return true
}

// store marks a's outcome as being stored and returns the claim to
// acknowledge, or lost when the claim is gone (the outcome is stored, and
// the message not acknowledged).
func (l *leases) store(a *attempt) (m *queue.Message, lost bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a.storing = true
	return a.m, a.lost
}

// startRenewal marks a renewal of a's claim as under way, unless one is
// already; it reports whether it did.
func (l *leases) startRenewal(a *attempt) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.renewing {
		return false
	}
	a.renewing = true
	return true
}

func (l *leases) endRenewal(a *attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a.renewing = false
}

func (l *leases) isStoring(a *attempt) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return a.storing
}

// snapshot returns the attempts registered now.
func (l *leases) snapshot(into []*attempt) []*attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	into = into[:0]
	for _, a := range l.byStep {
		into = append(into, a)
	}
	return into
}

func (l *leases) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byStep)
}

// heartbeat runs until ctx ends. Every twelfth of the lease it renews, through
// the queue without its circuit breaker (a breaker open during a blip must
// not stop renewals), the claims renewed a third of a lease ago or more, and
// cancels the handlers of the claims it could not renew for two thirds of a
// lease (see renew). Every CancelCheck it reads, in one query, whether the
// steps still wait for their attempts, and cancels the handlers of those
// that do not; and it checks at once the steps this process cancels or
// resolves (events on the bus).
//
// Its subscriptions are taken by subscribeStops before the first step can
// start. An event about a step whose start committed but whose attempt is
// not registered yet (work registers it just after) finds no attempt and is
// dropped: the next CancelCheck read finds that step.
func (w *Worker) heartbeat(ctx context.Context, s stopSubscriptions) {
	defer s.close()
	moved, stopped := s.moved, s.stopped
	var renewals sync.WaitGroup
	defer renewals.Wait()
	renew := time.NewTicker(w.cfg.VisibilityTimeout / heartbeatTicks)
	defer renew.Stop()
	check := time.NewTicker(w.cfg.CancelCheck)
	defer check.Stop()
	// Renewals run at once, up to maxRenewals of them.
	sem := make(chan struct{}, maxRenewals)
	var buf []*attempt
	for {
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			buf = w.leases.snapshot(buf)
			w.renew(ctx, buf, sem, &renewals)
		case <-check.C:
			buf = w.leases.snapshot(buf)
			w.check(ctx, buf)
		case <-stopped:
			buf = w.leases.snapshot(buf)
			w.check(ctx, buf)
		case e := <-moved:
			// The event names the step and the attempt's number, not its
			// ID (a release or a reset lowers the number): the store,
			// read by check, says whether the attempt running here is
			// the one that left in_progress.
			if e.From != string(taskertype.StepInProgress) {
				continue
			}
			w.leases.mu.Lock()
			a := w.leases.byStep[e.StepID]
			w.leases.mu.Unlock()
			if a != nil && a.step.Attempts == e.Attempt {
				w.check(ctx, []*attempt{a})
			}
		}
	}
}

// stopSubscriptions are the heartbeat's wake-ups about running steps taken
// out of progress.
type stopSubscriptions struct {
	moved   <-chan events.Event // cancelled or resolved in this process (the bus); nil without a bus
	stopped <-chan struct{}     // notified by any process (queue.StepsStoppedChannel)
	close   func()
}

// subscribeStops subscribes to the heartbeat's wake-ups.
func (w *Worker) subscribeStops() stopSubscriptions {
	var s stopSubscriptions
	var closeMoved func()
	if w.cfg.Bus != nil {
		sub, err := w.cfg.Bus.Subscribe(events.Filter{Kinds: []string{events.KindStepTransition},
			To: []string{string(taskertype.StepCancelled), string(taskertype.StepResolvedManually)}}, 256)
		if err == nil {
			s.moved, closeMoved = sub.C(), func() { sub.Close() }
		}
	}
	// Operators in any process notify this name when they take running
	// steps out of progress (store.Tx.Notify): check at once rather than
	// at the next tick. Signals coalesce; a spurious one costs one read.
	stopped, unsubscribe := w.queue.Subscribe(queue.StepsStoppedChannel)
	s.stopped = stopped
	s.close = func() {
		unsubscribe()
		if closeMoved != nil {
			closeMoved()
		}
	}
	return s
}

// maxRenewals bounds the claims renewed at once.
const maxRenewals = 16

// heartbeatTicks is the heartbeat's ticks per lease: a renewal starts at
// most a twelfth of the lease after renewAfter, so it has a quarter of the
// lease or more before lostAfter.
const heartbeatTicks = 12

// The lease's timing, as fractions of it. The database lets another worker
// claim a message once a whole lease passed since its claim or last
// renewal; the worker decides before that, by its own clock, measured from
// before the call that took or renewed the claim (so never later than the
// database's):
//   - renewAfter: a claim this old is renewed;
//   - lostAfter: a claim this old that could not be renewed is lost, and its
//     handler cancelled; a renewal's deadline is this point. The margin up to
//     the whole lease covers the heartbeat's tick (a twelfth of the lease) and
//     the time the cancellation takes to reach the handler.
func renewAfter(lease time.Duration) time.Duration { return lease / 3 }
func lostAfter(lease time.Duration) time.Duration  { return 2 * lease / 3 }

// renew starts the renewals of the claims renewed renewAfter ago or more,
// each in a goroutine (one per attempt; at most cap(sem) of them call the
// queue at once, the others wait their turn until lostAfter), and
// declares lost the claims not renewed for lostAfter. ErrNotFound means the
// claim is gone; any other error is tried again at the next tick, until
// lostAfter passed without a renewal.
func (w *Worker) renew(ctx context.Context, as []*attempt, sem chan struct{}, renewals *sync.WaitGroup) {
	lease := w.cfg.VisibilityTimeout
	for _, a := range as {
		m, renewed, lost := w.leases.claim(a)
		age := time.Since(renewed)
		switch {
		case lost || age < renewAfter(lease):
			continue
		case age >= lostAfter(lease):
			w.lapsed(a, m, nil)
			continue
		}
		if !w.leases.startRenewal(a) {
			continue // a renewal of a is under way
		}
		// Every claim due gets a goroutine that waits for one of the
		// cap(sem) renewals allowed at once, until its claim would be
		// lost: skipping the claims beyond cap(sem) until the next tick
		// renewed at most 4 × cap(sem) claims per window, and a worker
		// running more attempts than that lost healthy claims. The
		// goroutines are bounded by the attempts (startRenewal: one per
		// attempt).
		renewals.Go(func() {
			defer w.leases.endRenewal(a)
			wait, cancel := context.WithDeadline(ctx, renewed.Add(lostAfter(lease)))
			select {
			case sem <- struct{}{}:
				cancel()
			case <-wait.Done():
				cancel()
				if ctx.Err() == nil {
					w.lapsed(a, m, errors.New("no renewal could start before the deadline: the database is slow to answer the renewals under way"))
				}
				return
			}
			defer func() { <-sem }()
			err := w.extendClaim(ctx, a, m, renewed)
			switch {
			case err == nil:
			case errors.Is(err, errStoreLeaseGone):
				// check cancelled the attempt if the step moved on.
			case errors.Is(err, taskertype.ErrNotFound) && w.leases.isStoring(a):
				// The outcome's transaction acknowledged the message.
			case errors.Is(err, taskertype.ErrNotFound):
				if w.leases.lose(a, m) {
					w.log.Warn("the claim on a running step was lost; cancelling its handler", "task_id", a.step.TaskID, "step", a.step.Name)
				}
			case ctx.Err() != nil:
			case time.Since(renewed) >= lostAfter(lease):
				w.lapsed(a, m, err)
			default:
				w.log.Warn("could not renew the claim on a running step; trying again", "task_id", a.step.TaskID, "step", a.step.Name, "error", err)
			}
		})
	}
}

// lapsed declares lost a's claim m, not renewed for lostAfter (err is the
// last renewal's failure, if any).
func (w *Worker) lapsed(a *attempt, m *queue.Message, err error) {
	if w.leases.lose(a, m) {
		w.log.Warn("could not renew the claim on a running step in time; cancelling its handler before another worker may take the step",
			"task_id", a.step.TaskID, "step", a.step.Name, "lease", w.cfg.VisibilityTimeout, "error", err)
	}
}

// extendClaim renews a's claim m, last taken or renewed at renewed, for a
// whole lease and records it. The call may take until the claim would be
// declared lost (lostAfter), no longer.
//
// With a store lease (storeLease), the store lease is renewed too, and it
// decides: a queue claim that is gone (the connection that held the
// delivery dropped, and the broker gave it back) is no loss while the
// store lease renews, since another process that takes the message parks
// it; a store that says the step no longer runs this attempt has the
// attempt checked (check cancels it as superseded).
func (w *Worker) extendClaim(ctx context.Context, a *attempt, m *queue.Message, renewed time.Time) error {
	lease := w.cfg.VisibilityTimeout
	at := time.Now() // before the call: the lease runs from no earlier
	ctx, cancel := context.WithDeadline(ctx, renewed.Add(lostAfter(lease)))
	defer cancel()
	err := w.leaseQueue.MessageExtend(ctx, &queue.ExtendParams{Queue: m.Queue, Receipt: m.Receipt(), VisibilityTimeout: lease})
	if w.storeLease && (err == nil || errors.Is(err, taskertype.ErrNotFound)) {
		err = w.leaseStore.StepLeaseExtend(ctx, &store.StepLeaseParams{StepID: a.step.ID, AttemptID: a.step.AttemptID, Lease: lease})
		if errors.Is(err, taskertype.ErrNotFound) {
			w.check(ctx, []*attempt{a})
			return errStoreLeaseGone
		}
	}
	if err == nil {
		w.leases.renewedAt(a, m, at)
	}
	return err
}

// errStoreLeaseGone: the store says the step no longer runs the attempt
// whose store lease was renewed. Not a loss of the claim: check decides.
var errStoreLeaseGone = errors.New("the step no longer runs this attempt: its store lease cannot be renewed")

// check cancels the handlers of the attempts whose step moved on: not in
// progress any more, or in progress with another attempt. A failed read is
// only logged; the next tick reads again.
func (w *Worker) check(ctx context.Context, as []*attempt) {
	if len(as) == 0 {
		return
	}
	ids := make([]uuid.UUID, len(as))
	for i, a := range as {
		ids[i] = a.step.ID
	}
	// Within two ticks of the renewals: the heartbeat waits for the read.
	ctx, cancel := context.WithTimeout(ctx, min(w.cfg.CancelCheck, w.cfg.VisibilityTimeout/6))
	defer cancel()
	got, err := w.store.StepAttempts(ctx, ids)
	if err != nil {
		w.log.Debug("could not check the running steps", "steps", len(ids), "error", err)
		return
	}
	now := make(map[uuid.UUID]uuid.UUID, len(got)) // step → attempt, for the steps in progress
	for _, s := range got {
		if s.State == taskertype.StepInProgress {
			now[s.ID] = s.AttemptID
		}
	}
	for _, a := range as {
		if id, ok := now[a.step.ID]; !ok || (id != a.step.AttemptID && a.step.AttemptID != uuid.Nil) {
			a.cancel(errSuperseded)
		}
	}
}

// holdsClaim reports whether the claim on a started step is still this
// worker's before its handler starts. A claim younger than renewAfter
// starts without a renewal: that assumes this process's monotonic clock
// ran since the claim (a process suspended with its clock stopped, as a
// frozen virtual machine may be, sees less time passed than the database
// did; the heartbeat then finds the claim gone at its next renewal). An
// older claim (the process was paused, or the step waited to start in a
// transaction of its own) is renewed first, and a renewal that fails for
// any reason means the handler does not start: the message comes back
// after its lease.
func (w *Worker) holdsClaim(ctx context.Context, a *attempt) bool {
	m, renewed, lost := w.leases.claim(a)
	if lost {
		return false
	}
	age := time.Since(renewed)
	if age < renewAfter(w.cfg.VisibilityTimeout) {
		return true
	}
	if age < lostAfter(w.cfg.VisibilityTimeout) && w.extendClaim(ctx, a, m, renewed) == nil {
		return true
	}
	w.leases.lose(a, m)
	return false
}
