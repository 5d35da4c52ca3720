package postgres

import (
	"cmp"
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

const deadLetterCols = `id, queue, msg_id, message, read_ct, enqueued_at, dead_at, reason`

// MessageDeadLetter implements queue.Queue: one statement moves the message
// from its queue's table to the dead letters, if the receipt is that of its
// current claim.
func (q *Queue) MessageDeadLetter(ctx context.Context, p *queue.DeadLetterParams) error {
	if err := q.check("dead letter"); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	sql := fmt.Sprintf(`WITH d AS (DELETE FROM %s WHERE msg_id = $1 AND read_ct = $2
			RETURNING msg_id, read_ct, enqueued_at, message, priority)
		INSERT INTO tasker_dead_letters (queue, msg_id, read_ct, enqueued_at, dead_at, reason, message, priority)
		SELECT $3, msg_id, read_ct, enqueued_at, coalesce($4::timestamptz, clock_timestamp()), $5, message, priority FROM d`, q.stmtsOf(p.Queue).table)
	ct, err := q.db.Pool.Exec(ctx, sql, p.Receipt.ID, int32(p.Receipt.ReadCount), p.Queue, q.now(), p.Reason)
	return updatedOne("dead letter", p.Queue, p.Receipt, ct, err)
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
		rows pgx.Rows
		err  error
	)
	if p.Queue == "" {
		rows, err = q.db.Pool.Query(ctx, `SELECT `+deadLetterCols+` FROM tasker_dead_letters ORDER BY id DESC LIMIT $1`, limit)
	} else {
		rows, err = q.db.Pool.Query(ctx, `SELECT `+deadLetterCols+` FROM tasker_dead_letters WHERE queue = $1 ORDER BY id DESC LIMIT $2`, p.Queue, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: dead letter list: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*queue.DeadLetter, error) {
		var (
			d    queue.DeadLetter
			read int32
		)
		if err := row.Scan(&d.ID, &d.Queue, &d.MessageID, &d.Body, &read, &d.EnqueuedAt, &d.DeadAt, &d.Reason); err != nil {
			return nil, err
		}
		d.ReadCount = int(read)
		d.EnqueuedAt, d.DeadAt = d.EnqueuedAt.UTC(), d.DeadAt.UTC()
		return &d, nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: dead letter list: %w", err)
	}
	return out, nil
}

// DeadLetterRequeue implements queue.Queue: one transaction deletes the
// dead letter and sends its body to its queue (notifying at commit).
func (q *Queue) DeadLetterRequeue(ctx context.Context, p *queue.DeadLetterRequeueParams) (int64, error) {
	if err := q.check("dead letter requeue"); err != nil {
		return 0, err
	}
	if err := p.Validate(); err != nil {
		return 0, err
	}
	var (
		sent queue.SendParams
		id   int64
	)
	err := pgx.BeginFunc(ctx, q.db.Pool, func(tx pgx.Tx) error {
		var prio int32
		err := tx.QueryRow(ctx, `DELETE FROM tasker_dead_letters WHERE id = $1 RETURNING queue, message, priority`, p.ID).Scan(&sent.Queue, &sent.Body, &prio)
		sent.Priority = int(prio)
		if pgdb.IsNoRows(err) {
			return fmt.Errorf("no dead letter has that id (tasker dead-letters list shows them): %w", taskertype.ErrNotFound)
		}
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, q.stmtsOf(sent.Queue).sendNotify, q.sendArgs(&sent, q.channel, sent.Queue)...).Scan(&id)
		if pgdb.IsUndefinedTable(err) {
			return errNoQueue("dead letter requeue", sent.Queue)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("queue: dead letter requeue %d: %w", p.ID, err)
	}
	q.known.Store(sent.Queue, struct{}{})
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
	ct, err := q.db.Pool.Exec(ctx, `DELETE FROM tasker_dead_letters WHERE dead_at < $1 AND ($2 = '' OR queue = $2)`, p.Before, p.Queue)
	if err != nil {
		return 0, fmt.Errorf("queue: dead letter purge: %w", err)
	}
	return ct.RowsAffected(), nil
}
