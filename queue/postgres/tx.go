package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/queue"
)

// The in-transaction forms. SendTx, ClaimTx and AckTx run on any pgx.Tx on
// the queue's database, one statement each. The store does not use them: it
// pipelines the statements of its transactions, and builds them with the
// *Stmt methods below, which put them in a pgdb.Tx.

// SendTx sends a message in the caller's transaction: it becomes visible,
// and the other processes are notified, when tx commits. After the commit,
// pass the same params to NotifySent to wake this process's subscribers.
// Sending to a queue that was never ensured is an error wrapping
// taskertype.ErrNotFound, and leaves tx usable.
func (q *Queue) SendTx(ctx context.Context, tx pgx.Tx, p *queue.SendParams) (int64, error) {
	if err := q.check("send"); err != nil {
		return 0, err
	}
	if err := p.Validate(); err != nil {
		return 0, err
	}
	if ok, err := q.lookupTx(ctx, tx, p.Queue); err != nil {
		return 0, err
	} else if !ok {
		return 0, errNoQueue("send", p.Queue)
	}
	s := q.stmtsOf(p.Queue)
	var row pgx.Row
	if p.Delay == 0 {
		row = tx.QueryRow(ctx, s.sendNotify, q.sendArgs(p, q.channel, p.Queue)...)
	} else {
		row = tx.QueryRow(ctx, s.sendID, q.sendArgs(p)...)
	}
	var id int64
	if err := row.Scan(&id); err != nil {
		return 0, fmt.Errorf("queue: send to %q: %w", p.Queue, err)
	}
	return id, nil
}

// ClaimTx claims messages in the caller's transaction: the claim holds only
// if tx commits. Claiming from a queue that was never ensured returns no
// message.
func (q *Queue) ClaimTx(ctx context.Context, tx pgx.Tx, p *queue.ClaimParams) ([]*queue.Message, error) {
	if err := q.check("claim"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if ok, err := q.lookupTx(ctx, tx, p.Queue); err != nil || !ok {
		return nil, err
	}
	sql, args, scan := q.claimQuery(p)
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("queue: claim from %q: %w", p.Queue, err)
	}
	msgs, err := scan(rows)
	if err != nil {
		return nil, fmt.Errorf("queue: claim from %q: %w", p.Queue, err)
	}
	return msgs, nil
}

// AckTx acknowledges messages in the caller's transaction: they leave the
// queue only if tx commits.
func (q *Queue) AckTx(ctx context.Context, tx pgx.Tx, p *queue.AckParams) error {
	if err := q.check("ack"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if len(p.Receipts) == 0 {
		return nil
	}
	if ok, err := q.lookupTx(ctx, tx, p.Queue); err != nil || !ok {
		return err
	}
	sql, args := q.ackQuery(p.Queue, p.Receipts)
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("queue: ack on %q: %w", p.Queue, err)
	}
	return nil
}

// lookupTx tells whether a queue exists, asking tx only when this process
// has not seen the queue yet: a statement on a missing table would abort tx.
func (q *Queue) lookupTx(ctx context.Context, tx pgx.Tx, name string) (bool, error) {
	if q.Known(name) {
		return true, nil
	}
	var found bool
	s := q.LookupStmt(name, &found)
	if err := tx.QueryRow(ctx, s.SQL, s.Args...).Scan(&found); err != nil {
		return false, fmt.Errorf("queue: look up queue %q: %w", name, err)
	}
	if found {
		q.known.Store(name, struct{}{})
	}
	return found, nil
}

// LookupStmt is a statement that sets *found to whether queue name exists;
// a queue found becomes Known.
func (q *Queue) LookupStmt(name string, found *bool) pgdb.Stmt {
	return pgdb.Stmt{
		SQL:  `SELECT to_regclass($1) IS NOT NULL`,
		Args: []any{q.stmtsOf(name).table},
		Row: func(row pgx.Row) error {
			if err := row.Scan(found); err != nil {
				return fmt.Errorf("queue: look up queue %q: %w", name, err)
			}
			if *found {
				q.known.Store(name, struct{}{})
			}
			return nil
		},
	}
}

// Outgoing is a message checked for sending in a transaction, waiting to go
// out with others to the same queue in one statement (SendManyStmt). Its
// times are the database's when the statement runs, or the test clock's
// when it was sent.
type Outgoing struct {
	At       *time.Time // the test clock's time when sent; nil: the database's
	Delay    time.Duration
	Body     []byte
	Priority int32
	Offset   int64      // queue.PriorityOffset of Priority, in microseconds
	Since    *time.Time // queue.SendParams.Since; nil: not set
}

// Outgoing checks p and returns the message to buffer for SendManyStmt.
func (q *Queue) Outgoing(p *queue.SendParams) (Outgoing, error) {
	if err := q.check("send"); err != nil {
		return Outgoing{}, err
	}
	if err := p.Validate(); err != nil {
		return Outgoing{}, err
	}
	return Outgoing{At: q.now(), Delay: p.Delay, Body: bodyOf(p), Priority: int32(p.Priority), Offset: queue.PriorityOffset(p.Priority, q.aging), Since: SinceArg(p)}, nil
}

// SendManyStmt is the statement that inserts msgs into queue name in one
// go, in their order, without a notification: the caller adds NotifyStmt
// before its commit and calls NotifySent after it. The queue must be Known
// (LookupStmt first otherwise).
func (q *Queue) SendManyStmt(name string, msgs []Outgoing) pgdb.Stmt {
	errf := func(err error) error { return fmt.Errorf("queue: send to %q: %w", name, err) }
	if len(msgs) == 1 {
		m := msgs[0]
		return pgdb.Stmt{SQL: q.stmtsOf(name).send, Args: []any{m.At, m.Delay.Microseconds(), m.Body, m.Priority, m.Offset, m.Since}, Err: errf}
	}
	n := len(msgs)
	at, delays, bodies := make([]*time.Time, n), make([]int64, n), make([][]byte, n)
	prios, offsets, sinces := make([]int32, n), make([]int64, n), make([]*time.Time, n)
	for i, m := range msgs {
		at[i], delays[i], bodies[i], prios[i], offsets[i], sinces[i] = m.At, m.Delay.Microseconds(), m.Body, m.Priority, m.Offset, m.Since
	}
	return pgdb.Stmt{SQL: q.stmtsOf(name).sendMany, Args: []any{q.now(), at, delays, bodies, prios, offsets, sinces}, Err: errf}
}

// ClaimStmt is the statement that claims messages as p asks, in a
// transaction; the messages claimed are appended to *out. The queue must be
// Known.
func (q *Queue) ClaimStmt(p *queue.ClaimParams, out *[]*queue.Message) (pgdb.Stmt, error) {
	if err := q.check("claim"); err != nil {
		return pgdb.Stmt{}, err
	}
	if err := p.Validate(); err != nil {
		return pgdb.Stmt{}, err
	}
	sql, args, scan := q.claimQuery(p)
	name := p.Queue
	return pgdb.Stmt{
		SQL: sql, Args: args,
		Query: func(rows pgx.Rows) error {
			msgs, err := scan(rows)
			*out = append(*out, msgs...)
			return err
		},
		Err: func(err error) error { return fmt.Errorf("queue: claim from %q: %w", name, err) },
	}, nil
}

// AckStmt is the statement that acknowledges p's receipts in a transaction;
// ok is false when there is nothing to acknowledge. The queue must be Known.
func (q *Queue) AckStmt(p *queue.AckParams) (s pgdb.Stmt, ok bool, err error) {
	if err := q.check("ack"); err != nil {
		return pgdb.Stmt{}, false, err
	}
	if err := p.Validate(); err != nil {
		return pgdb.Stmt{}, false, err
	}
	if len(p.Receipts) == 0 {
		return pgdb.Stmt{}, false, nil
	}
	sql, args := q.ackQuery(p.Queue, p.Receipts)
	name := p.Queue
	return pgdb.Stmt{SQL: sql, Args: args,
		Err: func(err error) error { return fmt.Errorf("queue: ack on %q: %w", name, err) }}, true, nil
}

// NotifyStmt is the statement that notifies the other processes that
// messages became visible on the named queues; in a transaction,
// PostgreSQL delivers the notifications when it commits.
func (q *Queue) NotifyStmt(names []string) pgdb.Stmt {
	return pgdb.Stmt{SQL: `SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n`, Args: []any{q.channel, names}}
}
