package pgdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-go/tasker/taskertype"
)

// MaxTxAttempts bounds the runs of a transaction that keeps failing with a
// serialization failure or a deadlock.
const MaxTxAttempts = 5

// Stmt is one statement of a pipelined transaction, with what to do with its
// result once it arrives. At most one of Exec, Query and Row is set; with
// none, the result is discarded. Err, if set, translates the statement's
// error (a PostgreSQL error, or one returned by the callback).
type Stmt struct {
	SQL   string
	Args  []any
	Exec  func(pgconn.CommandTag) error
	Query func(pgx.Rows) error
	Row   func(pgx.Row) error
	Err   func(error) error
}

// Tx is a transaction on one pooled connection whose statements are
// buffered and sent together: Add queues a statement, Send sends every
// queued one in one batch (one round trip), Commit sends the rest with the
// COMMIT. BEGIN goes with the first batch, so a transaction costs no round
// trip of its own. The first error of a batch aborts the transaction: later
// calls return it (Err), and InTx rolls back.
//
// A Tx is not safe for concurrent use.
type Tx struct {
	db      *DB
	conn    *pgxpool.Conn
	began   bool // BEGIN was sent
	pending []Stmt
	failed  error
	ended   bool
}

// Add queues a statement, sent with the next Send or Commit.
func (t *Tx) Add(s Stmt) { t.pending = append(t.pending, s) }

// Err returns the error that aborted the transaction, or nil.
func (t *Tx) Err() error { return t.failed }

// Send sends the queued statements, BEGIN first if not sent yet, in one
// batch and runs their callbacks in order. It returns the first error, which
// also aborts the transaction.
func (t *Tx) Send(ctx context.Context) error {
	if t.failed != nil {
		return t.failed
	}
	if t.ended {
		return fmt.Errorf("the transaction has ended: %w", taskertype.ErrClosed)
	}
	if len(t.pending) == 0 {
		return nil
	}
	err := t.send(ctx, false)
	if err != nil {
		t.failed = err
	}
	return err
}

// Commit sends the queued statements and COMMIT in one batch. With nothing
// sent or queued, it sends nothing.
func (t *Tx) Commit(ctx context.Context) error {
	if t.failed != nil {
		return t.failed
	}
	if t.ended {
		return fmt.Errorf("the transaction has ended: %w", taskertype.ErrClosed)
	}
	if !t.began && len(t.pending) == 0 {
		t.ended = true
		return nil
	}
	err := t.send(ctx, true)
	if err != nil {
		t.failed = err
		return err
	}
	t.ended = true
	return nil
}

func (t *Tx) send(ctx context.Context, commit bool) error {
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(t.pending)+2)}
	if !t.began {
		b.Queue("begin")
		t.began = true
	}
	for _, s := range t.pending {
		qq := b.Queue(s.SQL, s.Args...)
		qq.Fn = s.run
	}
	t.pending = t.pending[:0]
	if commit {
		b.Queue("commit")
	}
	return t.conn.SendBatch(ctx, b).Close()
}

// run reads the statement's result from br as pgx's QueuedQuery callbacks do.
func (s Stmt) run(br pgx.BatchResults) error {
	var err error
	switch {
	case s.Query != nil:
		rows, _ := br.Query()
		err = s.Query(rows)
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	case s.Row != nil:
		err = s.Row(br.QueryRow())
	default:
		var ct pgconn.CommandTag
		ct, err = br.Exec()
		if err == nil && s.Exec != nil {
			err = s.Exec(ct)
		}
	}
	if err != nil && s.Err != nil {
		err = s.Err(err)
	}
	return err
}

// Query sends the queued statements and then one that returns rows, in one
// batch. fn reads the rows.
func (t *Tx) Query(ctx context.Context, sql string, args []any, fn func(pgx.Rows) error) error {
	t.Add(Stmt{SQL: sql, Args: args, Query: fn})
	return t.Send(ctx)
}

// ExecScript sends the queued statements, then runs sql, which may hold
// several statements (a migration), through the simple protocol: two round
// trips at most.
func (t *Tx) ExecScript(ctx context.Context, sql string) error {
	if !t.began {
		t.Add(Stmt{SQL: "select 1"}) // sends BEGIN
	}
	if err := t.Send(ctx); err != nil {
		return err
	}
	if _, err := t.conn.Exec(ctx, sql); err != nil {
		t.failed = err
		return err
	}
	return nil
}

// end rolls back if the transaction did not commit, and releases the
// connection. It does not use ctx's cancellation: a connection must not go
// back to the pool inside a transaction.
func (t *Tx) end(ctx context.Context) {
	if t.conn == nil {
		return
	}
	t.ended = true
	t.pending = nil
	conn := t.conn
	t.conn = nil
	if conn.Conn().PgConn().TxStatus() != 'I' && !conn.Conn().IsClosed() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if _, err := conn.Exec(rctx, "rollback"); err != nil {
			// The pool destroys a connection left in a transaction.
			t.db.Logger.Warn("postgres: rollback failed", "err", err)
		}
		cancel()
	}
	conn.Release()
}

// InTx runs fn in a transaction on one connection and commits what fn
// queued. When the transaction fails with an error after which it surely
// did not commit (Retryable: a serialization failure, a deadlock, a session
// timeout, a session the server ended), fn runs again in a new transaction, up to
// MaxTxAttempts times; fn must therefore have no effect outside the
// transaction. fn's error is returned as it is, unless the transaction
// itself had failed with a retryable error. A panic in fn rolls back and
// goes on.
func (db *DB) InTx(ctx context.Context, fn func(*Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := db.inTxOnce(ctx, fn)
		if err == nil || !Retryable(err) || attempt >= MaxTxAttempts || ctx.Err() != nil {
			return err
		}
		db.Logger.Debug("postgres: transaction retried", "attempt", attempt, "err", err)
		// Spread the retries of transactions that collided.
		d := time.Duration(attempt) * (time.Millisecond + rand.N(4*time.Millisecond))
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(d):
		}
	}
}

func (db *DB) inTxOnce(ctx context.Context, fn func(*Tx) error) error {
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin: acquire a connection: %w", err)
	}
	t := &Tx{db: db, conn: conn}
	defer t.end(ctx)
	if err := fn(t); err != nil {
		if t.failed != nil && Retryable(t.failed) {
			return t.failed
		}
		return err
	}
	if err := t.Commit(ctx); err != nil {
		return err
	}
	return nil
}
