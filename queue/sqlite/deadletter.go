package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

// deadLetterStmts are the statements of the dead letters.
type deadLetterStmts struct {
	copy, list, listQueue *sql.Stmt
	take, purge           *sql.Stmt // requeue, purge
}

func (q *Queue) prepareDeadLetters(p *sqlitedb.Preparer) {
	// The copy matches the receipt of the current claim: a message claimed
	// again since is left alone. MessageDeadLetter then deletes what it
	// copied, in the same transaction.
	q.dead.copy = p.W(`INSERT INTO queue_dead_letters (queue, msg_id, body, read_ct, enqueued_at, dead_at, reason, priority)
		SELECT queue, id, body, read_ct, enqueued_at, ?4, ?5, priority FROM queue_messages
		WHERE id = ?2 AND read_ct = ?3 AND +queue = ?1`)
	const cols = `id, queue, msg_id, body, read_ct, enqueued_at, dead_at, reason`
	q.dead.list = p.R(`SELECT ` + cols + ` FROM queue_dead_letters ORDER BY id DESC LIMIT ?1`)
	q.dead.listQueue = p.R(`SELECT ` + cols + ` FROM queue_dead_letters WHERE queue = ?1 ORDER BY id DESC LIMIT ?2`)
	q.dead.take = p.W(`DELETE FROM queue_dead_letters WHERE id = ?1 RETURNING queue, body, priority`)
	q.dead.purge = p.W(`DELETE FROM queue_dead_letters WHERE dead_at < ?1 AND (?2 = '' OR queue = ?2)`)
}

// DeadLetterRequeue implements queue.Queue: the delete of the dead letter
// and the send commit together.
func (q *Queue) DeadLetterRequeue(ctx context.Context, p *queue.DeadLetterRequeueParams) (int64, error) {
	if err := q.check("dead letter requeue"); err != nil {
		return 0, err
	}
	if err := p.Validate(); err != nil {
		return 0, err
	}
	var sent queue.SendParams
	id, err := func() (int64, error) {
		tx, err := q.db.W.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		defer tx.Rollback()
		if err := tx.StmtContext(ctx, q.dead.take).QueryRowContext(ctx, p.ID).Scan(&sent.Queue, &sent.Body, &sent.Priority); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return 0, fmt.Errorf("no dead letter has that id (tasker dead-letters list shows them): %w", taskertype.ErrNotFound)
			}
			return 0, err
		}
		if q.inMemory(sent.Queue) {
			// Kept in memory: the message enters its queue once the
			// dead letter's delete committed. A crash in between loses
			// it, which the queue's owner restores from its records.
			if q.mem.get(sent.Queue) == nil {
				return 0, errNoQueue(sent.Queue)
			}
			if err := tx.Commit(); err != nil {
				return 0, err
			}
			return q.memSend(&sent, nil)
		}
		id, err := q.sendWith(ctx, tx.StmtContext(ctx, q.send), &sent)
		if err != nil {
			return 0, err
		}
		return id, tx.Commit()
	}()
	if err != nil {
		return 0, fmt.Errorf("queue: dead letter requeue %d: %w", p.ID, err)
	}
	q.NotifySent(sent)
	return id, nil
}

// DeadLetterPurge implements queue.Queue: one statement.
func (q *Queue) DeadLetterPurge(ctx context.Context, p *queue.DeadLetterPurgeParams) (int64, error) {
	if err := q.check("dead letter purge"); err != nil {
		return 0, err
	}
	if err := p.Validate(); err != nil {
		return 0, err
	}
	res, err := q.dead.purge.ExecContext(ctx, sqlitedb.Micros(p.Before), p.Queue)
	if err != nil {
		return 0, fmt.Errorf("queue: dead letter purge: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("queue: dead letter purge: %w", err)
	}
	return n, nil
}

// MessageDeadLetter implements queue.Queue: the copy to the dead letters and
// the delete commit together.
func (q *Queue) MessageDeadLetter(ctx context.Context, p *queue.DeadLetterParams) error {
	if err := q.check("dead letter"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if q.inMemory(p.Queue) {
		return q.memDeadLetter(ctx, p)
	}
	r := p.Receipt
	var moved int64
	err := func() error {
		tx, err := q.db.W.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		res, err := tx.StmtContext(ctx, q.dead.copy).ExecContext(ctx, p.Queue, r.ID, r.ReadCount, sqlitedb.Micros(q.clock.Now()), p.Reason)
		if err != nil {
			return err
		}
		if moved, err = res.RowsAffected(); err != nil || moved == 0 {
			return err
		}
		if _, err := tx.StmtContext(ctx, q.ackOne).ExecContext(ctx, p.Queue, r.ID, r.ReadCount); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil {
		return fmt.Errorf("queue: dead letter message %d on %q: %w", r.ID, p.Queue, err)
	}
	if moved == 0 {
		return fmt.Errorf("queue: dead letter: message %d (read %d times) on %q is gone or was claimed again: %w", r.ID, r.ReadCount, p.Queue, taskertype.ErrNotFound)
	}
	return nil
}

// DeadLetterList implements queue.Queue.
func (q *Queue) DeadLetterList(ctx context.Context, p *queue.DeadLetterListParams) ([]*queue.DeadLetter, error) {
	if err := q.check("dead letter list"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	limit := cmp.Or(p.Limit, queue.DefaultDeadLetterLimit)
	var (
		rows *sql.Rows
		err  error
	)
	if p.Queue == "" {
		rows, err = q.dead.list.QueryContext(ctx, limit)
	} else {
		rows, err = q.dead.listQueue.QueryContext(ctx, p.Queue, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: dead letter list: %w", err)
	}
	defer rows.Close()
	var out []*queue.DeadLetter
	for rows.Next() {
		var (
			d              queue.DeadLetter
			enqueued, dead int64
		)
		if err := rows.Scan(&d.ID, &d.Queue, &d.MessageID, &d.Body, &d.ReadCount, &enqueued, &dead, &d.Reason); err != nil {
			return nil, fmt.Errorf("queue: dead letter list: %w", err)
		}
		d.EnqueuedAt, d.DeadAt = sqlitedb.Time(enqueued), sqlitedb.Time(dead)
		out = append(out, &d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("queue: dead letter list: %w", err)
	}
	return out, nil
}
