package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/queue"
)

// Subscribe implements queue.Queue. The channel has a buffer of one and
// signals coalesce: a consumer claims until a claim comes back empty after
// each signal.
func (q *Queue) Subscribe(name string) (<-chan struct{}, func()) {
	s := &subscriber{ch: make(chan struct{}, 1)}
	q.mu.Lock()
	set := q.subs[name]
	if set == nil {
		set = make(map[*subscriber]struct{})
		q.subs[name] = set
	}
	set[s] = struct{}{}
	q.mu.Unlock()
	cancel := func() {
		q.mu.Lock()
		if set := q.subs[name]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(q.subs, name)
			}
		}
		q.mu.Unlock()
	}
	return s.ch, cancel
}

// NotifySent wakes the subscribers of the queues of sent after the messages
// were committed: at once for a message without delay, when its delay runs
// out otherwise. The store calls it after the commit of a transaction that
// sent messages with SendTx; the queue's own methods call it themselves. Only
// Queue and Delay of each SendParams are read.
func (q *Queue) NotifySent(sent ...queue.SendParams) {
	if len(sent) == 0 {
		return
	}
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range sent {
		if sent[i].Delay <= 0 {
			q.signalLocked(sent[i].Queue)
		} else {
			q.armLocked(sent[i].Queue, now, sent[i].Delay)
		}
	}
}

// signalLocked wakes every subscriber of a queue without blocking: a full
// channel already holds a signal the subscriber has not taken yet.
func (q *Queue) signalLocked(name string) {
	for s := range q.subs[name] {
		select {
		case s.ch <- struct{}{}:
			q.signals++
		default:
			q.coalesced++
		}
	}
}

// WakeupStats implements queue.WakeupReporter: wake-ups here are in-process
// only, so there are no notifications, reconnects or polls.
func (q *Queue) WakeupStats() queue.WakeupStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := queue.WakeupStats{Queues: len(q.subs), Signals: q.signals, Coalesced: q.coalesced}
	for _, set := range q.subs {
		s.Subscribers += len(set)
	}
	return s
}

// armLocked makes sure the queue's timer fires no later than delay from now.
// There is one timer per queue, armed for the earliest due delay; a later
// delay is found again in the database when the timer fires.
func (q *Queue) armLocked(name string, now time.Time, delay time.Duration) {
	if q.done {
		return
	}
	due := now.Add(delay)
	if t := q.timers[name]; t != nil {
		if !t.due.After(due) {
			return
		}
		t.timer.Stop()
	}
	t := &delayTimer{due: due}
	t.timer = time.AfterFunc(delay, func() { q.fire(name, t) })
	q.timers[name] = t
}

// fire runs when a queue's timer goes off: it wakes the subscribers, then
// arms the timer again for the next delayed message of the queue, if any.
func (q *Queue) fire(name string, t *delayTimer) {
	// Read the clock before waking anyone: every message due by now is
	// visible to the claims the signal causes, and the next timer covers
	// exactly the messages due after now. Read after the signal, a message
	// falling due in between would be missed by both.
	now := q.clock.Now()
	q.mu.Lock()
	if q.done {
		q.mu.Unlock()
		return
	}
	if q.timers[name] == t {
		delete(q.timers, name)
	}
	q.signalLocked(name)
	q.fires.Add(1)
	q.mu.Unlock()
	defer q.fires.Done()

	if q.inMemory(name) {
		if next, ok := q.memNextDue(name, now); ok {
			q.mu.Lock()
			q.armLocked(name, time.Now(), next.Sub(now))
			q.mu.Unlock()
		}
		return
	}
	var next sql.NullInt64
	err := q.nextDue.QueryRowContext(context.Background(), name, sqlitedb.Micros(now)).Scan(&next)
	if err != nil {
		if !q.closed.Load() {
			q.logger.Warn("queue: find the next delayed message", "queue", name, "err", err)
		}
		return
	}
	if next.Valid {
		q.mu.Lock()
		q.armLocked(name, time.Now(), sqlitedb.Time(next.Int64).Sub(now))
		q.mu.Unlock()
	}
}

// armPending arms the timers of the messages delayed before this queue was
// opened (by a previous run).
func (q *Queue) armPending(ctx context.Context) error {
	now := q.clock.Now()
	rows, err := q.db.R.QueryContext(ctx,
		`SELECT queue, MIN(vt) FROM queue_messages WHERE vt > ?1 AND claimed = 0 GROUP BY queue`,
		sqlitedb.Micros(now))
	if err != nil {
		return err
	}
	defer rows.Close()
	type pending struct {
		name string
		vt   int64
	}
	var ps []pending
	for rows.Next() {
		var p pending
		if err := rows.Scan(&p.name, &p.vt); err != nil {
			return err
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	wall := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, p := range ps {
		q.armLocked(p.name, wall, sqlitedb.Time(p.vt).Sub(now))
	}
	return nil
}
