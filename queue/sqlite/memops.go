package sqlite

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

// The queue's operations on the queues kept in memory (Config.InMemory).

func (q *Queue) inMemory(name string) bool { return q.inMem != nil && q.inMem(name) }

// openMem finds the queues kept in memory among those ensured, and deletes
// the rows their messages had (an earlier version kept them as rows): the
// owner restores their messages from its records (Restore).
func (q *Queue) openMem(ctx context.Context) error {
	if q.inMem == nil {
		return nil
	}
	rows, err := q.db.W.QueryContext(ctx, `SELECT name FROM queue_queues`)
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		if q.inMem(name) {
			names = append(names, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, name := range names {
		q.mem.ensure(name)
		res, err := q.db.W.ExecContext(ctx, `DELETE FROM queue_messages WHERE queue = ?1`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			q.logger.Info("queue: the messages of a queue now kept in memory were dropped from its rows; its owner restores them", "queue", name, "messages", n)
		}
	}
	return nil
}

func (s *memQueues) ensure(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queues[name] == nil {
		s.queues[name] = newMemQueue()
	}
}

// memTx returns the TxMem of tx, which must be a MemTx.
func memTx(tx Tx, op string) (*TxMem, error) {
	mt, ok := tx.(MemTx)
	if !ok {
		return nil, fmt.Errorf("queue: %s in a transaction: the queue is kept in memory and %T is no MemTx: %w", op, tx, taskertype.ErrInvalid)
	}
	return mt.Mem(), nil
}

// memSend sends p: at once when tm is nil, at tm's commit otherwise. The
// caller wakes the subscribers.
func (q *Queue) memSend(p *queue.SendParams, tm *TxMem) (int64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	now := q.clock.Now()
	s := &q.mem
	s.mu.Lock()
	defer s.mu.Unlock()
	mq := s.queues[p.Queue]
	if mq == nil {
		return 0, errNoQueue(p.Queue)
	}
	c := *p
	c.Body = slices.Clone(bodyOf(p)) // the caller's buffer
	m := s.newMsgLocked(&c, now, q.aging)
	if tm != nil {
		tm.sends = append(tm.sends, m)
	} else {
		mq.add(m, now.UnixMicro())
	}
	return m.id, nil
}

// RestoredMessage is a message Restore puts back in a queue kept in memory.
type RestoredMessage struct {
	// Body is kept as it is: the caller does not change it afterwards.
	Body     []byte
	Priority int
	// EnqueuedAt is when the message was first sent, as near as the
	// owner's records tell.
	EnqueuedAt time.Time
	// Since is the message's queue.SendParams.Since, zero when it had
	// none.
	Since time.Time
	// ReadCount is the claims it had: 1 for a message whose claim a
	// previous run held, which the next claim then sees as a redelivery.
	ReadCount int
}

// Restore gives a queue kept in memory back the messages its owner's
// records say it holds, visible now; the queue is ensured first. It is
// called after New and before anyone claims.
func (q *Queue) Restore(ctx context.Context, name string, msgs []RestoredMessage) error {
	if !q.inMemory(name) {
		return fmt.Errorf("queue: restore: queue %q is not kept in memory: %w", name, taskertype.ErrInvalid)
	}
	if err := q.QueueEnsure(ctx, name); err != nil {
		return err
	}
	q.mem.restore(name, msgs, q.clock.Now(), q.aging)
	if len(msgs) > 0 {
		q.NotifySent(queue.SendParams{Queue: name})
	}
	return nil
}

// restore adds msgs to a queue, which exists (Restore ensured it); the
// queue owns their bodies.
func (s *memQueues) restore(name string, msgs []RestoredMessage, now time.Time, aging time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mq := s.queues[name]
	for _, r := range msgs {
		m := s.newMsgLocked(&queue.SendParams{Queue: name, Body: r.Body, Priority: r.Priority, Since: r.Since}, now, aging)
		m.readCt, m.enqueued = r.ReadCount, r.EnqueuedAt.Truncate(time.Microsecond).UTC()
		mq.add(m, now.UnixMicro())
	}
}

// memClaim claims from a queue kept in memory: in tm's transaction when tm
// is not nil (undone if it rolls back, and seeing its sends).
func (q *Queue) memClaim(p *queue.ClaimParams, tm *TxMem) ([]*queue.Message, error) {
	if err := q.check("claim"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	now := q.clock.Now()
	s := &q.mem
	s.mu.Lock()
	defer s.mu.Unlock()
	mq := s.queues[p.Queue]
	if mq == nil {
		return nil, nil
	}
	got := mq.claim(p.Queue, p.Max, now.UnixMicro(), now.Add(p.VisibilityTimeout).UnixMicro(), tm)
	msgs := make([]*queue.Message, len(got))
	for i, m := range got {
		msgs[i] = m.message()
	}
	return msgs, nil
}

// memAck acknowledges messages of a queue kept in memory: at once, or at
// the commit of tx.
func (q *Queue) memAck(p *queue.AckParams, tx Tx) error {
	if tx != nil {
		tm, err := memTx(tx, "ack")
		if err != nil {
			return err
		}
		tm.acks = append(tm.acks, queue.AckParams{Queue: p.Queue, Receipts: slices.Clone(p.Receipts)})
		return nil
	}
	s := &q.mem
	s.mu.Lock()
	defer s.mu.Unlock()
	if mq := s.queues[p.Queue]; mq != nil {
		mq.ack(p.Receipts)
	}
	return nil
}

// memUpdate moves the claim r names to end at vt: an extension (claimed)
// or a release (not claimed).
func (q *Queue) memUpdate(op, name string, r queue.Receipt, vt time.Time, claimed bool) error {
	s := &q.mem
	s.mu.Lock()
	defer s.mu.Unlock()
	var m *memMsg
	if mq := s.queues[name]; mq != nil {
		m = mq.find(r)
	}
	if m == nil {
		return fmt.Errorf("queue: %s: message %d (read %d times) on %q is gone or was claimed again: %w", op, r.ID, r.ReadCount, name, taskertype.ErrNotFound)
	}
	m.vt = vt.UnixMicro()
	if !claimed {
		m.claimed = false
	}
	s.queues[name].place(m, q.clock.Now().UnixMicro())
	return nil
}

// take removes the messages the receipts name from a queue kept in memory
// and returns them; put gives them back.
func (q *Queue) take(name string, rs []queue.Receipt) []*memMsg {
	s := &q.mem
	s.mu.Lock()
	defer s.mu.Unlock()
	mq := s.queues[name]
	if mq == nil {
		return nil
	}
	var out []*memMsg
	for _, r := range rs {
		if m := mq.find(r); m != nil {
			mq.remove(m)
			out = append(out, m)
		}
	}
	return out
}

func (q *Queue) put(name string, ms []*memMsg) {
	now := q.clock.Now().UnixMicro()
	s := &q.mem
	s.mu.Lock()
	defer s.mu.Unlock()
	if mq := s.queues[name]; mq != nil {
		for _, m := range ms {
			mq.add(m, now)
		}
	}
}

// memArchiveMsgs archives messages of a queue kept in memory: they leave
// the queue, and their archive rows are written; if that fails, they go
// back.
func (q *Queue) memArchiveMsgs(ctx context.Context, p *queue.ArchiveParams) error {
	ms := q.take(p.Queue, p.Receipts)
	if len(ms) == 0 {
		return nil
	}
	now := sqlitedb.Micros(q.clock.Now())
	err := q.inWriteTx(ctx, func(tx Tx) error {
		st := tx.StmtContext(ctx, q.memArchive)
		for _, m := range ms {
			if _, err := st.ExecContext(ctx, p.Queue, m.body, m.readCt, sqlitedb.Micros(m.enqueued), m.vt, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		q.put(p.Queue, ms)
		return fmt.Errorf("queue: archive on %q: %w", p.Queue, err)
	}
	return nil
}

// memDeadLetter sets a message of a queue kept in memory aside, as
// memArchiveMsgs archives.
func (q *Queue) memDeadLetter(ctx context.Context, p *queue.DeadLetterParams) error {
	r := p.Receipt
	ms := q.take(p.Queue, []queue.Receipt{r})
	if len(ms) == 0 {
		return fmt.Errorf("queue: dead letter: message %d (read %d times) on %q is gone or was claimed again: %w", r.ID, r.ReadCount, p.Queue, taskertype.ErrNotFound)
	}
	m := ms[0]
	_, err := q.memDead.ExecContext(ctx, p.Queue, m.id, m.body, m.readCt, sqlitedb.Micros(m.enqueued), sqlitedb.Micros(q.clock.Now()), p.Reason, m.priority)
	if err != nil {
		q.put(p.Queue, ms)
		return fmt.Errorf("queue: dead letter message %d on %q: %w", r.ID, p.Queue, err)
	}
	return nil
}

// inWriteTx runs fn in a transaction of the writer connection of its own
// (outside any store transaction), committed if fn returns nil.
func (q *Queue) inWriteTx(ctx context.Context, fn func(tx Tx) error) error {
	tx, err := q.db.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

func (q *Queue) memStats(ctx context.Context, name string) (*queue.Stats, error) {
	now := q.clock.Now()
	st := &queue.Stats{Queue: name}
	var oldest time.Time
	s := &q.mem
	s.mu.Lock()
	mq := s.queues[name]
	if mq != nil {
		st.Visible, st.Claimed, st.Delayed, oldest = mq.stats(now)
	}
	s.mu.Unlock()
	if mq == nil {
		return nil, fmt.Errorf("queue: stats: queue %q does not exist: %w", name, taskertype.ErrNotFound)
	}
	if !oldest.IsZero() {
		st.OldestAge = max(now.Sub(oldest), 0)
	}
	if err := q.archived.QueryRowContext(ctx, name).Scan(&st.Archived); err != nil {
		return nil, fmt.Errorf("queue: stats of %q: %w", name, err)
	}
	return st, nil
}

func (q *Queue) memDepth(name string) (int64, error) {
	s := &q.mem
	s.mu.Lock()
	defer s.mu.Unlock()
	mq := s.queues[name]
	if mq == nil {
		return 0, fmt.Errorf("queue: depth: queue %q does not exist: %w", name, taskertype.ErrNotFound)
	}
	mq.promote(q.clock.Now().UnixMicro())
	return int64(mq.ready.Len()), nil
}

// memNextDue returns the visibility of the next delayed message of a queue
// kept in memory after now, if any.
func (q *Queue) memNextDue(name string, now time.Time) (time.Time, bool) {
	s := &q.mem
	s.mu.Lock()
	defer s.mu.Unlock()
	mq := s.queues[name]
	if mq == nil {
		return time.Time{}, false
	}
	mq.promote(now.UnixMicro())
	if m := mq.delayed.top(); m != nil {
		return time.UnixMicro(m.vt), true
	}
	return time.Time{}, false
}

// releaseClaims makes every claimed message of the queues kept in memory
// visible at now, and returns the queue of each.
func (s *memQueues) releaseClaims(now time.Time) []string {
	us := now.UnixMicro()
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for name, mq := range s.queues {
		for mq.held.Len() > 0 {
			m := mq.held.top()
			m.vt, m.claimed = us, false
			mq.place(m, us)
			names = append(names, name)
		}
	}
	return names
}
