package worker

import (
	"cmp"
	"context"
	"sync"
	"time"
)

// A queue in the store's database has two ways to claim its steps: its
// claim loop, in a transaction of its own, and every transaction that
// stores outcomes of its steps, which claims the next ones with the slots
// those steps gave back (storeBatch). At saturation both want the same
// slots, and the loop, blocked on them, took each one as it came free:
// nearly half of the claims of a PostgreSQL drain went that way, each in
// a transaction of its own (docs/benchmarks.md, "Claims ride on the
// outcomes' transactions"). So
// while outcomes of the queue are being stored, its loop leaves the slots
// to their transactions, up to reportsFirst; it claims once none is under
// way, or when the wait runs out (a transaction stuck on a lock or a slow
// store does not hold the queue's claims back for longer).

// reportsFirst bounds how long a claim loop waits for the outcomes of its
// queue being stored before it claims anyway: a report transaction takes a
// few milliseconds at saturation.
const reportsFirst = 100 * time.Millisecond

// pendingReports counts the outcomes of one step queue being stored.
// Its methods do nothing on a nil receiver (a queue not in the store's
// database: its claims never ride on the reports).
type pendingReports struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n falls to 0; a new one when it rises from 0
}

func newPendingReports() *pendingReports {
	idle := make(chan struct{})
	close(idle)
	return &pendingReports{idle: idle}
}

// add counts an outcome whose storing begins. It is called before the
// step's slot is given back, so that a loop that gets that slot sees it.
func (p *pendingReports) add() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.n == 0 {
		p.idle = make(chan struct{})
	}
	p.n++
	p.mu.Unlock()
}

// done counts an outcome stored (or given up): its transaction, and the
// claims it made, are over.
func (p *pendingReports) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.n--
	if p.n == 0 {
		close(p.idle)
	}
	p.mu.Unlock()
}

// busy reports whether outcomes are being stored, and if so a channel
// closed once none is.
func (p *pendingReports) busy() (bool, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n > 0, p.idle
}

// acquireAfterReports is the claim loop's acquire for a queue in the store's
// database (see above): it takes slots as acquire does, once no outcome of
// the queue is being stored, or after waiting reportsFirst for that.
func (w *Worker) acquireAfterReports(ctx context.Context, p *pendingReports, max int) (int, error) {
	var timer *time.Timer
	expired := false
	for {
		n, err := w.acquire(ctx, max)
		if err != nil {
			return 0, err
		}
		busy, idle := p.busy()
		if !busy || expired {
			return n, nil
		}
		if timer == nil {
			timer = time.NewTimer(cmp.Or(w.reportsFirst, reportsFirst))
			defer timer.Stop()
		}
		w.release(n)
		select {
		case <-idle:
		case <-timer.C:
			expired = true
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
