package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/rowscan"
	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

const dlqColumns = `id, task_id, original_state, reason, dlq_at, resolution_status, resolved_at,
	resolution_notes, resolved_by, task_snapshot, metadata, created_at, updated_at`

func scanDLQ(r scanner) (*taskertype.DLQEntry, error) {
	var (
		e                   taskertype.DLQEntry
		at, created, update int64
		resolved            sql.NullInt64
		notes, by           sql.NullString
		meta                []byte
	)
	if err := r.Scan(&e.ID, &e.TaskID, &e.OriginalState, &e.Reason, &at, &e.ResolutionStatus, &resolved,
		&notes, &by, (*[]byte)(&e.TaskSnapshot), &meta, &created, &update); err != nil {
		return nil, err
	}
	e.At, e.ResolvedAt = sqlitedb.Time(at), sqlitedb.NullTime(resolved)
	e.CreatedAt, e.UpdatedAt = sqlitedb.Time(created), sqlitedb.Time(update)
	e.ResolutionNotes, e.ResolvedBy = notes.String, by.String
	if meta != nil {
		e.Metadata = meta
	}
	return &e, nil
}

func orEmptyObject(b json.RawMessage) []byte {
	if b == nil {
		return []byte("{}")
	}
	return b
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// DLQEntryCreate implements store.Tx.
func (t *tx) DLQEntryCreate(_ context.Context, p *store.DLQEntryCreateParams) (bool, error) {
	const op = "dlq entry create"
	if err := t.check(op); err != nil {
		return false, err
	}
	if err := p.Validate(); err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	e := p.Entry
	res, err := t.tx.ExecContext(t.ctx, `INSERT INTO tasks_dlq (`+dlqColumns+`)
		VALUES (?1, ?2, ?3, ?4, ?5, 'pending', NULL, NULL, NULL, ?6, ?7, ?5, ?5)
		ON CONFLICT (task_id) WHERE resolution_status = 'pending' DO NOTHING`,
		e.ID.String(), e.TaskID.String(), string(e.OriginalState), string(e.Reason), micros(e.At),
		orEmptyObject(e.TaskSnapshot), orEmptyObject(e.Metadata))
	if err != nil {
		return false, fmt.Errorf("store: %s: task %s: %w", op, e.TaskID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: %s: task %s: %w", op, e.TaskID, err)
	}
	return n == 1, nil
}

// DLQList implements store.Store.
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
		args = append(args, q.TaskID.String())
		where = append(where, fmt.Sprintf("task_id = ?%d", len(args)))
	}
	if q.Status != "" {
		args = append(args, string(q.Status))
		where = append(where, fmt.Sprintf("resolution_status = ?%d", len(args)))
	}
	if q.Reason != "" {
		args = append(args, string(q.Reason))
		where = append(where, fmt.Sprintf("reason = ?%d", len(args)))
	}
	sqlText := `SELECT ` + dlqColumns + ` FROM tasks_dlq`
	if len(where) > 0 {
		sqlText += ` WHERE ` + strings.Join(where, " AND ")
	}
	order := "DESC"
	if q.Oldest {
		order = "ASC"
	}
	args = append(args, q.Limit, q.Offset)
	sqlText += fmt.Sprintf(` ORDER BY dlq_at %s, id %s LIMIT ?%d OFFSET ?%d`, order, order, len(args)-1, len(args))
	rows, err := s.db.R.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	return rowscan.All(op, rows, func(rows rowscan.Rows) (*taskertype.DLQEntry, error) { return scanDLQ(rows) })
}

// DLQGet implements store.Store.
func (s *Store) DLQGet(ctx context.Context, id uuid.UUID) (*taskertype.DLQEntry, error) {
	const op = "dlq get"
	if err := s.check(op); err != nil {
		return nil, err
	}
	e, err := scanDLQ(s.db.R.QueryRowContext(ctx, `SELECT `+dlqColumns+` FROM tasks_dlq WHERE id = ?1`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(op, "dlq entry", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return e, nil
}

// DLQUpdate implements store.Store: one write transaction.
func (s *Store) DLQUpdate(ctx context.Context, p *store.DLQUpdateParams) (*taskertype.DLQEntry, error) {
	const op = "dlq update"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	conn, err := s.db.W.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: %s: waiting for the writer: %w", op, err)
	}
	defer conn.Close()
	sctx := context.WithoutCancel(ctx)
	tx, err := conn.BeginTx(sctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: %s: begin: %w", op, err)
	}
	defer tx.Rollback()
	e, err := scanDLQ(tx.QueryRowContext(sctx, `SELECT `+dlqColumns+` FROM tasks_dlq WHERE id = ?1`, p.ID.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(op, "dlq entry", p.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	if err := store.ApplyDLQUpdate(e, p); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if _, err := tx.ExecContext(sctx, `UPDATE tasks_dlq SET resolution_status = ?2, resolved_at = ?3, resolution_notes = ?4,
		resolved_by = ?5, metadata = ?6, updated_at = ?7 WHERE id = ?1`,
		e.ID.String(), string(e.ResolutionStatus), sqlitedb.NullMicros(e.ResolvedAt), nullString(e.ResolutionNotes),
		nullString(e.ResolvedBy), []byte(e.Metadata), micros(e.UpdatedAt)); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: %s: commit: %w", op, err)
	}
	return e, nil
}

// DLQStats implements store.Store.
func (s *Store) DLQStats(ctx context.Context, p *store.DLQStatsParams) ([]*store.DLQStats, error) {
	const op = "dlq stats"
	if err := s.check(op); err != nil {
		return nil, err
	}
	at := s.clock.Now()
	if p != nil && !p.At.IsZero() {
		at = p.At
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT reason, COUNT(*),
			SUM(resolution_status = 'pending'), SUM(resolution_status = 'manually_resolved'),
			SUM(resolution_status = 'permanently_failed'), SUM(resolution_status = 'cancelled'),
			MIN(dlq_at), MAX(dlq_at), AVG(COALESCE(resolved_at, ?1) - dlq_at)
		FROM tasks_dlq GROUP BY reason`, micros(at))
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	by := map[taskertype.DLQReason]*store.DLQStats{}
	for rows.Next() {
		var (
			st             store.DLQStats
			oldest, newest int64
			avg            float64
		)
		if err := rows.Scan(&st.Reason, &st.Total, &st.Pending, &st.ManuallyResolved, &st.PermanentlyFailed, &st.Cancelled,
			&oldest, &newest, &avg); err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, err)
		}
		st.Oldest, st.Newest = sqlitedb.Time(oldest), sqlitedb.Time(newest)
		st.AvgResolutionMinutes = avg / 60e6
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

func statesJSON(states []taskertype.TaskState) string {
	b, _ := json.Marshal(states) // strings: cannot fail
	return string(b)
}

// TaskStaleTemplates implements store.Store: one scan of the unfinished
// tasks.
func (s *Store) TaskStaleTemplates(ctx context.Context, p *store.TaskStaleTemplatesParams) ([]store.TemplateKey, error) {
	const op = "task stale templates"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	rows, err := s.db.R.QueryContext(ctx, `SELECT DISTINCT namespace, name, version FROM tasks
		WHERE finished_at IS NULL AND state IN (SELECT value FROM json_each(?1))
		  AND (updated_at <= ?2 OR created_at <= ?3) LIMIT ?4`,
		statesJSON(p.States), micros(p.EnteredBefore), micros(p.CreatedBefore), p.Limit)
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

// TaskStaleList implements store.Store.
func (s *Store) TaskStaleList(ctx context.Context, p *store.TaskStaleListParams) ([]*taskertype.Task, error) {
	const op = "task stale list"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	states := p.StaleStates()
	args := []any{p.Template.Namespace, p.Template.Name, p.Template.Version, statesJSON(states)}
	var or []string
	for _, st := range states {
		args = append(args, string(st), micros(p.EnteredBefore[st]))
		or = append(or, fmt.Sprintf("(state = ?%d AND updated_at <= ?%d)", len(args)-1, len(args)))
	}
	if !p.CreatedBefore.IsZero() {
		args = append(args, micros(p.CreatedBefore))
		or = append(or, fmt.Sprintf("created_at <= ?%d", len(args)))
	}
	args = append(args, p.Limit)
	rows, err := s.db.R.QueryContext(ctx, `SELECT `+taskColumns+` FROM tasks
		WHERE finished_at IS NULL AND namespace = ?1 AND name = ?2 AND version = ?3
		  AND state IN (SELECT value FROM json_each(?4)) AND (`+strings.Join(or, " OR ")+`)
		ORDER BY updated_at, id LIMIT ?`+fmt.Sprint(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	var out []*taskertype.Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, err)
		}
		t.Context = nil
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return out, nil
}

// locks are the names held by LockTry: the database has one process (the
// file's process lock), so a lock in it is the database's.
type locks struct {
	mu   sync.Mutex
	held map[string]bool
}

// LockTry implements store.Store: a lock in this process, which is the
// database's only one.
func (s *Store) LockTry(_ context.Context, name string) (func(), bool, error) {
	if err := s.check("lock try"); err != nil {
		return nil, false, err
	}
	l := &s.locks
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = map[string]bool{}
	}
	if l.held[name] {
		return nil, false, nil
	}
	l.held[name] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.held, name)
			l.mu.Unlock()
		})
	}, true, nil
}
