package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/internal/rowscan"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

const dlqCols = `id, task_id, original_state, reason, dlq_at, resolution_status, resolved_at,
	resolution_notes, resolved_by, task_snapshot, metadata, created_at, updated_at`

func scanDLQ(row pgx.Row) (*taskertype.DLQEntry, error) {
	var (
		e         taskertype.DLQEntry
		resolved  *time.Time
		notes, by *string
		meta      []byte
	)
	if err := row.Scan(&e.ID, &e.TaskID, &e.OriginalState, &e.Reason, &e.At, &e.ResolutionStatus, &resolved,
		&notes, &by, (*[]byte)(&e.TaskSnapshot), &meta, &e.CreatedAt, &e.UpdatedAt); err != nil {
		return nil, err
	}
	e.At, e.CreatedAt, e.UpdatedAt, e.ResolvedAt = e.At.UTC(), e.CreatedAt.UTC(), e.UpdatedAt.UTC(), timeOf(resolved)
	if notes != nil {
		e.ResolutionNotes = *notes
	}
	if by != nil {
		e.ResolvedBy = *by
	}
	if meta != nil {
		e.Metadata = meta
	}
	return &e, nil
}

func jsonOrEmpty(b json.RawMessage) string {
	if b == nil {
		return "{}"
	}
	return string(b)
}

func textOrNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// DLQEntryCreate implements store.Tx: one round trip, with the writes
// queued before it.
func (x *tx) DLQEntryCreate(ctx context.Context, p *store.DLQEntryCreateParams) (bool, error) {
	const op = "dlq entry create"
	if err := x.check(op); err != nil {
		return false, err
	}
	if err := p.Validate(); err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	e := p.Entry
	var created bool
	err := x.query(ctx, op, readsHeldNone, pgdb.Stmt{
		SQL: `INSERT INTO tasks_dlq (` + dlqCols + `)
			VALUES ($1, $2, $3, $4, $5, 'pending', NULL, NULL, NULL, $6::json, $7::json, $5, $5)
			ON CONFLICT (task_id) WHERE resolution_status = 'pending' DO NOTHING`,
		Args: []any{e.ID, e.TaskID, string(e.OriginalState), string(e.Reason), e.At, jsonOrEmpty(e.TaskSnapshot), jsonOrEmpty(e.Metadata)},
		Exec: func(tag pgconn.CommandTag) error { created = tag.RowsAffected() == 1; return nil },
	})
	return created, err
}

// DLQList implements store.Store: one query.
func (s *Store) DLQList(ctx context.Context, p *store.DLQListParams) ([]*taskertype.DLQEntry, error) {
	const op = "dlq list"
	if err := s.check(op); err != nil {
		return nil, err
	}
	q := store.DLQListParams{}
	if p != nil {
		q = *p
	}
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var (
		where []string
		args  []any
	)
	if q.TaskID != uuid.Nil {
		args = append(args, q.TaskID)
		where = append(where, fmt.Sprintf("task_id = $%d", len(args)))
	}
	if q.Status != "" {
		args = append(args, string(q.Status))
		where = append(where, fmt.Sprintf("resolution_status = $%d", len(args)))
	}
	if q.Reason != "" {
		args = append(args, string(q.Reason))
		where = append(where, fmt.Sprintf("reason = $%d", len(args)))
	}
	sql := `SELECT ` + dlqCols + ` FROM tasks_dlq`
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	order := "DESC"
	if q.Oldest {
		order = "ASC"
	}
	args = append(args, q.Limit, q.Offset)
	sql += fmt.Sprintf(` ORDER BY dlq_at %s, id %s LIMIT $%d OFFSET $%d`, order, order, len(args)-1, len(args))
	rows, err := s.db.Pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	return rowscan.All(op, rows, func(rows rowscan.Rows) (*taskertype.DLQEntry, error) { return scanDLQ(rows) })
}

// DLQGet implements store.Store: one query.
func (s *Store) DLQGet(ctx context.Context, id uuid.UUID) (*taskertype.DLQEntry, error) {
	const op = "dlq get"
	if err := s.check(op); err != nil {
		return nil, err
	}
	e, err := scanDLQ(s.db.Pool.QueryRow(ctx, `SELECT `+dlqCols+` FROM tasks_dlq WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(op, "dlq entry", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return e, nil
}

// DLQUpdate implements store.Store: one transaction, the entry held.
func (s *Store) DLQUpdate(ctx context.Context, p *store.DLQUpdateParams) (*taskertype.DLQEntry, error) {
	const op = "dlq update"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var e *taskertype.DLQEntry
	err := pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		var err error
		e, err = scanDLQ(tx.QueryRow(ctx, `SELECT `+dlqCols+` FROM tasks_dlq WHERE id = $1 FOR UPDATE`, p.ID))
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound(op, "dlq entry", p.ID)
		}
		if err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
		if err := store.ApplyDLQUpdate(e, p); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		var meta *string
		if e.Metadata != nil {
			m := string(e.Metadata)
			meta = &m
		}
		if _, err := tx.Exec(ctx, `UPDATE tasks_dlq SET resolution_status = $2, resolved_at = $3, resolution_notes = $4,
			resolved_by = $5, metadata = $6::json, updated_at = $7 WHERE id = $1`,
			e.ID, string(e.ResolutionStatus), nullTime(e.ResolvedAt), textOrNull(e.ResolutionNotes),
			textOrNull(e.ResolvedBy), meta, e.UpdatedAt); err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// DLQStats implements store.Store: one query.
func (s *Store) DLQStats(ctx context.Context, p *store.DLQStatsParams) ([]*store.DLQStats, error) {
	const op = "dlq stats"
	if err := s.check(op); err != nil {
		return nil, err
	}
	at := s.clock.Now()
	if p != nil && !p.At.IsZero() {
		at = p.At
	}
	rows, err := s.db.Pool.Query(ctx, `SELECT reason, count(*),
			count(*) FILTER (WHERE resolution_status = 'pending'),
			count(*) FILTER (WHERE resolution_status = 'manually_resolved'),
			count(*) FILTER (WHERE resolution_status = 'permanently_failed'),
			count(*) FILTER (WHERE resolution_status = 'cancelled'),
			min(dlq_at), max(dlq_at),
			avg(extract(epoch FROM (coalesce(resolved_at, $1) - dlq_at)))::float8 / 60
		FROM tasks_dlq GROUP BY reason`, at)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	by := map[taskertype.DLQReason]*store.DLQStats{}
	for rows.Next() {
		var st store.DLQStats
		if err := rows.Scan(&st.Reason, &st.Total, &st.Pending, &st.ManuallyResolved, &st.PermanentlyFailed, &st.Cancelled,
			&st.Oldest, &st.Newest, &st.AvgResolutionMinutes); err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, err)
		}
		st.Oldest, st.Newest = st.Oldest.UTC(), st.Newest.UTC()
		by[st.Reason] = &st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	var out []*store.DLQStats
	for _, r := range taskertype.DLQReasons {
		if st := by[r]; st != nil {
			out = append(out, st)
		}
	}
	return out, nil
}

func stateStrings(states []taskertype.TaskState) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

// TaskStaleTemplates implements store.Store: one query over the partial
// index of unfinished tasks.
func (s *Store) TaskStaleTemplates(ctx context.Context, p *store.TaskStaleTemplatesParams) ([]store.TemplateKey, error) {
	const op = "task stale templates"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	rows, err := s.db.Pool.Query(ctx, `SELECT DISTINCT namespace, name, version FROM tasks
		WHERE finished_at IS NULL AND state = ANY($1) AND (updated_at <= $2 OR created_at <= $3) LIMIT $4`,
		stateStrings(p.States), p.EnteredBefore, p.CreatedBefore, p.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	return rowscan.All(op, rows, func(rows rowscan.Rows) (store.TemplateKey, error) {
		var k store.TemplateKey
		err := rows.Scan(&k.Namespace, &k.Name, &k.Version)
		return k, err
	})
}

// TaskStaleList implements store.Store: one query.
func (s *Store) TaskStaleList(ctx context.Context, p *store.TaskStaleListParams) ([]*taskertype.Task, error) {
	const op = "task stale list"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	states := p.StaleStates()
	args := []any{p.Template.Namespace, p.Template.Name, p.Template.Version, stateStrings(states)}
	var or []string
	for _, st := range states {
		args = append(args, string(st), p.EnteredBefore[st])
		or = append(or, fmt.Sprintf("(state = $%d AND updated_at <= $%d)", len(args)-1, len(args)))
	}
	if !p.CreatedBefore.IsZero() {
		args = append(args, p.CreatedBefore)
		or = append(or, fmt.Sprintf("created_at <= $%d", len(args)))
	}
	args = append(args, p.Limit)
	rows, err := s.db.Pool.Query(ctx, `SELECT `+taskCols+` FROM tasks
		WHERE finished_at IS NULL AND namespace = $1 AND name = $2 AND version = $3
		  AND state = ANY($4) AND (`+strings.Join(or, " OR ")+`)
		ORDER BY updated_at, id LIMIT $`+fmt.Sprint(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	var (
		out []*taskertype.Task
		sc  taskScanner
	)
	for rows.Next() {
		t := new(taskertype.Task)
		if err := sc.scan(rows, t); err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return out, nil
}

// LockTry implements store.Store: a session advisory lock on a connection
// taken from the pool for as long as the lock is held. The key is the name
// in the store's schema, so stores in other schemas of the database do not
// share it. A process that dies closes the connection, which lets go of
// the lock.
func (s *Store) LockTry(ctx context.Context, name string) (func(), bool, error) {
	const op = "lock try"
	if err := s.check(op); err != nil {
		return nil, false, err
	}
	conn, err := s.db.Pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("store: %s %s: %w", op, name, err)
	}
	const key = `hashtextextended('tasker.lock/' || current_schema() || '/' || $1, 0)`
	var held bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+key+`)`, name).Scan(&held); err != nil {
		conn.Release()
		return nil, false, fmt.Errorf("store: %s %s: %w", op, name, err)
	}
	if !held {
		conn.Release()
		return nil, false, nil
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var ok bool
			if err := conn.QueryRow(ctx, `SELECT pg_advisory_unlock(`+key+`)`, name).Scan(&ok); err != nil || !ok {
				// The session may still hold it: close the connection,
				// which lets go of every lock it has.
				_ = conn.Hijack().Close(ctx)
				return
			}
			conn.Release()
		})
	}, true, nil
}
