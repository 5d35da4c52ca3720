// Package sqlite is the embedded store driver: tasks, steps, edges and
// transitions in one SQLite file, shared with the embedded queue
// (queue/sqlite) so that a state change and the message it sends commit in
// one transaction.
//
// Writes go through the single writer connection of internal/sqlitedb, one
// transaction at a time (BEGIN IMMEDIATE); reads outside a transaction use the
// reader pool and see the last committed state without waiting for the writer.
//
// Inside InTx, do not call methods of the Store or of its Queue that write
// (Queue.MessageSend, MessageClaim, …): on a queue kept in rows they wait
// for the writer connection the transaction holds, forever; on a step
// queue, kept in memory (stepqueues.go), they apply at once, outside the
// transaction, and stay if it rolls back. Use the Tx's methods instead.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/rowscan"
	"github.com/tasker-go/tasker/internal/sqlitedb"
	queuesqlite "github.com/tasker-go/tasker/queue/sqlite"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the store's schema migrations, component "store".
var Migrations = func() fs.FS {
	f, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err)
	}
	return f
}()

// Component is the store's name in schema_migrations.
const Component = "store"

// Config configures the store.
type Config struct {
	// Path is the database file; see sqlitedb.Options.
	Path   string
	Logger *slog.Logger
	// Clock is given to the queue, and dates a transition or a creation
	// whose At is zero. Nil means the wall clock.
	Clock taskertype.Clock
	// PriorityAging is the queue's (queuesqlite.Config.PriorityAging).
	PriorityAging time.Duration
}

// Store implements store.Store on SQLite.
type Store struct {
	db     *sqlitedb.DB
	q      *queuesqlite.Queue
	clock  taskertype.Clock
	closed atomic.Bool
	rows   *rowCache // the committed rows of recently touched tasks; see taskRows

	w     writeStmts    // writer: used in transactions through tx.StmtContext
	r     readStmts     // readers
	tmpl  templateStmts // template.go
	locks locks         // LockTry's, dlq.go

	// Readers only.
	taskByIdentity, taskListAll, taskListState, taskListUnfinished, transitionsOfTask, transitionsOfStep, stepAttempts, stepAncestors *sql.Stmt
}

// readStmts are the statements that read; one set is prepared on each pool.
type readStmts struct {
	taskGet, stepList *sql.Stmt
}

type writeStmts struct {
	readStmts
	taskInsert, taskSetState, taskSetOpen, stepSet, stepTask, lastSeq *sql.Stmt
	stepInsert, edgeInsert, transitionInsert                          batchInsert
}

var _ store.Store = (*Store)(nil)

const (
	taskColumns = `id, namespace, name, version, state, revision, context, created_at, updated_at, finished_at,
		priority, correlation_id, parent_correlation_id, initiator, source_system, reason, tags, identity_hash, idempotency_key`
	stepColumns = `id, task_id, name, handler, position, state, attempts,
		retryable, max_attempts, backoff, backoff_base_us, backoff_cap_us, jitter, timeout_us,
		next_retry_at, result, failure, created_at, updated_at, started_at, finished_at, attempt_id`
)

// transitionSelect reads a task's transition log, one row per transition:
// each row of the table holds the entries of one transaction (migration
// 0004), unpacked here by json_each. The columns are those of
// taskertype.Transition, ID (the transition's number) first.
const transitionSelect = `SELECT l.seq + j.key, l.task_id, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3,
		j.value ->> 4, l.processor
	FROM transitions l, json_each(l.entries) j WHERE l.task_id = ?1`

// Open opens the database at cfg.Path (process lock, pragmas), applies the
// migrations of the store and of the queue, and builds the co-located queue.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	db, err := sqlitedb.Open(ctx, sqlitedb.Options{Path: cfg.Path, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s, err := newStore(ctx, db, cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func newStore(ctx context.Context, db *sqlitedb.DB, cfg Config) (*Store, error) {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	q, err := queuesqlite.New(ctx, db, queuesqlite.Config{Logger: cfg.Logger, Clock: cfg.Clock, PriorityAging: cfg.PriorityAging,
		InMemory: isStepQueue})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{db: db, q: q, clock: cfg.Clock, rows: newRowCache()}
	if s.clock == nil {
		s.clock = taskertype.SystemClock{}
	}
	p := db.Preparer(ctx)
	prepareReads(&s.r, p.R)
	prepareReads(&s.w.readStmts, p.W)
	w := &s.w
	w.taskInsert = p.W(`INSERT INTO tasks (` + taskColumns + `) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?7, NULL,
		?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)`)
	w.stepInsert = prepareBatchInsert(p.W, "steps", `id, task_id, name, handler, position, state, attempts,
		retryable, max_attempts, backoff, backoff_base_us, backoff_cap_us, jitter, timeout_us, created_at, updated_at`)
	w.edgeInsert = prepareBatchInsert(p.W, "step_edges", "task_id, from_step_id, to_step_id")
	w.stepTask = p.W(`SELECT task_id FROM steps WHERE id = ?1`)
	w.taskSetState = p.W(`UPDATE tasks SET state = ?2, updated_at = ?3, finished_at = ?4, revision = ?5 WHERE id = ?1`)
	// A task unfinished before and after: finished_at stays NULL, and
	// is left out (taskRows.finished).
	w.taskSetOpen = p.W(`UPDATE tasks SET state = ?2, updated_at = ?3, revision = ?4 WHERE id = ?1`)
	w.stepSet = p.W(`UPDATE steps SET state = ?2, attempts = ?3, next_retry_at = ?4, result = ?5, failure = ?6,
			started_at = ?7, finished_at = ?8, updated_at = ?9, attempt_id = ?10 WHERE id = ?1`)
	w.transitionInsert = prepareBatchInsert(p.W, "transitions", "task_id, seq, processor, entries")
	w.lastSeq = p.W(`SELECT COALESCE((SELECT seq + json_array_length(entries) - 1 FROM transitions
		WHERE task_id = ?1 ORDER BY seq DESC LIMIT 1), 0)`)
	s.taskByIdentity = p.R(`SELECT ` + taskColumns + ` FROM tasks WHERE identity_hash = ?1`)
	s.taskListAll = p.R(`SELECT ` + taskColumns + ` FROM tasks ORDER BY id DESC LIMIT ?1`)
	// ?1 is a JSON array of states. Unfinished states go through the
	// partial index of unfinished tasks; the others walk all tasks from the
	// newest.
	s.taskListState = p.R(`SELECT ` + taskColumns + ` FROM tasks
		WHERE state IN (SELECT value FROM json_each(?1)) ORDER BY id DESC LIMIT ?2`)
	s.taskListUnfinished = p.R(`SELECT ` + taskColumns + ` FROM tasks
		WHERE finished_at IS NULL AND state IN (SELECT value FROM json_each(?1)) ORDER BY id DESC LIMIT ?2`)
	// ?3 is the cursor (TransitionListParams.After): a packed row holds
	// transitions seq to seq + its entries - 1, so the rows that may hold
	// later ones are those whose seq is past the cursor, or the one row
	// that holds it; the entries are then filtered one by one.
	s.transitionsOfTask = p.R(transitionSelect + ` AND l.seq >= (SELECT coalesce(max(seq), 0) FROM transitions WHERE task_id = ?1 AND seq <= ?3)
		AND l.seq + j.key > ?3 ORDER BY l.seq, j.key`)
	s.transitionsOfStep = p.R(transitionSelect + ` AND l.seq >= (SELECT coalesce(max(seq), 0) FROM transitions WHERE task_id = ?1 AND seq <= ?3)
		AND l.seq + j.key > ?3 AND j.value ->> 0 = ?2 ORDER BY l.seq, j.key`)
	// The completed ancestors of step ?2 of task ?1, through the edges.
	// CROSS JOIN keeps the ancestors the outer loop: every other read is
	// by primary key, whatever the task's size.
	s.stepAncestors = p.R(`WITH RECURSIVE anc(id) AS (
			SELECT from_step_id FROM step_edges WHERE to_step_id = ?2 AND task_id = ?1
			UNION
			SELECT e.from_step_id FROM anc CROSS JOIN step_edges e ON e.to_step_id = anc.id
		)
		SELECT s.name, s.result FROM anc CROSS JOIN steps s ON s.id = anc.id
		WHERE s.state = ?3 AND s.result IS NOT NULL`)
	s.prepareTemplates(p)
	// ?1 is a JSON array of step IDs.
	s.stepAttempts = p.R(`SELECT id, state, attempt_id FROM steps WHERE id IN (SELECT value FROM json_each(?1))`)
	if err := p.Err(); err != nil {
		q.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := s.restoreStepQueues(ctx); err != nil {
		q.Close()
		return nil, err
	}
	return s, nil
}

func prepareReads(rs *readStmts, prepare func(string) *sql.Stmt) {
	rs.taskGet = prepare(`SELECT ` + taskColumns + ` FROM tasks WHERE id = ?1`)
	// No ORDER BY: listSteps sorts the few rows itself. Sorting them here
	// copied every row, its result included, through a sorter.
	rs.stepList = prepare(`SELECT ` + stepColumns + `,
			(SELECT group_concat(e.from_step_id) FROM step_edges e WHERE e.to_step_id = steps.id)
		FROM steps WHERE task_id = ?1`)
}

// Queue returns the queue that shares the store's database: messages sent
// with Tx.MessageSend are consumed from it.
func (s *Store) Queue() *queuesqlite.Queue { return s.q }

// DB returns the store's database.
func (s *Store) DB() *sqlitedb.DB { return s.db }

// Close closes the queue and the database. It may be called more than once.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	return errors.Join(s.q.Close(), s.db.Close())
}

func (s *Store) check(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("store: %s: %w", op, taskertype.ErrClosed)
	}
	return nil
}

func invalid(op, format string, args ...any) error {
	return fmt.Errorf("store: %s: %s: %w", op, fmt.Sprintf(format, args...), taskertype.ErrInvalid)
}

func notFound(op, kind string, id uuid.UUID) error {
	return fmt.Errorf("store: %s: %s %s: %w", op, kind, id, taskertype.ErrNotFound)
}

// TaskGet implements store.Store.
func (s *Store) TaskGet(ctx context.Context, id uuid.UUID) (*taskertype.Task, error) {
	if err := s.check("task get"); err != nil {
		return nil, err
	}
	return getTask(ctx, s.r.taskGet, "task get", id)
}

func getTask(ctx context.Context, st *sql.Stmt, op string, id uuid.UUID) (*taskertype.Task, error) {
	t, err := scanTask(st.QueryRowContext(ctx, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(op, "task", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: task %s: %w", op, id, err)
	}
	return t, nil
}

// TaskList implements store.Store.
func (s *Store) TaskList(ctx context.Context, p *store.TaskListParams) ([]*taskertype.Task, error) {
	if err := s.check("task list"); err != nil {
		return nil, err
	}
	if p == nil {
		p = &store.TaskListParams{}
	}
	limit := p.Limit
	switch {
	case limit == 0:
		limit = 100
	case limit < 0:
		return nil, invalid("task list", "negative limit %d", p.Limit)
	}
	if p.IdentityHash != "" {
		return s.taskList(ctx, s.taskByIdentity, p.IdentityHash)
	}
	if p.Offset < 0 {
		return nil, invalid("task list", "negative offset %d", p.Offset)
	}
	if p.Offset > 0 || p.Namespace != "" {
		where, args, err := taskWhere(p)
		if err != nil {
			return nil, err
		}
		return s.taskListQuery(ctx, `SELECT `+taskColumns+` FROM tasks`+where+` ORDER BY id DESC LIMIT ? OFFSET ?`,
			append(args, limit, p.Offset)...)
	}
	if len(p.States) == 0 {
		return s.taskList(ctx, s.taskListAll, limit)
	}
	states := make([]string, 0, len(p.States))
	for _, st := range p.States {
		if !st.Valid() {
			return nil, invalid("task list", "unknown task state %q", st)
		}
		if !slices.Contains(states, string(st)) {
			states = append(states, string(st))
		}
	}
	list, err := json.Marshal(states)
	if err != nil {
		return nil, fmt.Errorf("store: task list: %w", err)
	}
	st := s.taskListUnfinished
	for _, state := range p.States {
		if state.Terminal() {
			st = s.taskListState
		}
	}
	return s.taskList(ctx, st, string(list), limit)
}

// taskWhere is the WHERE clause of a page of tasks (or "") and its
// arguments.
func taskWhere(p *store.TaskListParams) (string, []any, error) {
	var conds []string
	var args []any
	if len(p.States) > 0 {
		states := make([]string, 0, len(p.States))
		for _, st := range p.States {
			if !st.Valid() {
				return "", nil, invalid("task list", "unknown task state %q", st)
			}
			states = append(states, string(st))
		}
		list, err := json.Marshal(states)
		if err != nil {
			return "", nil, fmt.Errorf("store: task list: %w", err)
		}
		conds = append(conds, `state IN (SELECT value FROM json_each(?))`)
		args = append(args, string(list))
	}
	if p.Namespace != "" {
		conds = append(conds, `namespace = ?`)
		args = append(args, p.Namespace)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// TaskCount implements store.Store: a count over the readers.
func (s *Store) TaskCount(ctx context.Context, p *store.TaskListParams) (int64, error) {
	if err := s.check("task count"); err != nil {
		return 0, err
	}
	if p == nil {
		p = &store.TaskListParams{}
	}
	where, args, err := taskWhere(p)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := s.db.R.QueryRowContext(ctx, `SELECT count(*) FROM tasks`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: task count: %w", err)
	}
	return n, nil
}

func (s *Store) taskListQuery(ctx context.Context, query string, args ...any) ([]*taskertype.Task, error) {
	rows, err := s.db.R.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: task list: %w", err)
	}
	return scanTasks(rows)
}

func (s *Store) taskList(ctx context.Context, st *sql.Stmt, args ...any) ([]*taskertype.Task, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("store: task list: %w", err)
	}
	return scanTasks(rows)
}

func scanTasks(rows *sql.Rows) ([]*taskertype.Task, error) {
	defer rows.Close()
	var tasks []*taskertype.Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, fmt.Errorf("store: task list: %w", err)
		}
		tasks = append(tasks, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: task list: %w", err)
	}
	return tasks, nil
}

// StepList implements store.Store: the steps of a task in template order
// (position, then name), each with DependsOn sorted. A task without steps,
// or no such task, gives an empty list.
func (s *Store) StepList(ctx context.Context, taskID uuid.UUID) ([]*taskertype.Step, error) {
	if err := s.check("step list"); err != nil {
		return nil, err
	}
	return listSteps(ctx, s.r.stepList, taskID)
}

// listSteps reads the steps of a task and their dependencies with one
// query: the edges come along as a comma-separated list per step.
func listSteps(ctx context.Context, stepList *sql.Stmt, taskID uuid.UUID) ([]*taskertype.Step, error) {
	rows, err := stepList.QueryContext(ctx, taskID.String())
	if err != nil {
		return nil, fmt.Errorf("store: step list: task %s: %w", taskID, err)
	}
	defer rows.Close()
	var steps []*taskertype.Step
	for rows.Next() {
		var deps sql.NullString
		st, err := scanStep(rows, &deps)
		if err != nil {
			return nil, fmt.Errorf("store: step list: task %s: %w", taskID, err)
		}
		for d := range strings.SplitSeq(deps.String, ",") {
			if d == "" {
				continue
			}
			id, err := uuid.Parse(d)
			if err != nil {
				return nil, fmt.Errorf("store: step list: task %s: step %s: dependency %q: %w", taskID, st.ID, d, err)
			}
			st.DependsOn = append(st.DependsOn, id)
		}
		sortIDs(st.DependsOn)
		steps = append(steps, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: step list: task %s: %w", taskID, err)
	}
	slices.SortFunc(steps, func(a, b *taskertype.Step) int {
		return cmp.Or(cmp.Compare(a.Position, b.Position), strings.Compare(a.Name, b.Name))
	})
	return steps, nil
}

// TransitionList implements store.Store. The transitions of a task that does
// not exist are an empty list.
func (s *Store) TransitionList(ctx context.Context, p *store.TransitionListParams) ([]*taskertype.Transition, error) {
	if err := s.check("transition list"); err != nil {
		return nil, err
	}
	if p == nil || p.TaskID == uuid.Nil {
		return nil, invalid("transition list", "no task ID")
	}
	var (
		rows *sql.Rows
		err  error
	)
	if p.StepID == uuid.Nil {
		rows, err = s.transitionsOfTask.QueryContext(ctx, p.TaskID.String(), nil, p.After)
	} else {
		rows, err = s.transitionsOfStep.QueryContext(ctx, p.TaskID.String(), p.StepID.String(), p.After)
	}
	if err != nil {
		return nil, fmt.Errorf("store: transition list: task %s: %w", p.TaskID, err)
	}
	defer rows.Close()
	var ts []*taskertype.Transition
	for rows.Next() {
		var (
			tr     taskertype.Transition
			stepID sql.Null[uuid.UUID]
			at     int64
		)
		if err := rows.Scan(&tr.ID, &tr.TaskID, &stepID, &tr.From, &tr.To, &tr.Event, &at, &tr.Processor); err != nil {
			return nil, fmt.Errorf("store: transition list: task %s: %w", p.TaskID, err)
		}
		tr.StepID = stepID.V
		tr.At = sqlitedb.Time(at)
		ts = append(ts, &tr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: transition list: task %s: %w", p.TaskID, err)
	}
	return ts, nil
}

// StepAncestorResults implements store.Store: one recursive query over the
// edges, reading the ancestors only.
func (s *Store) StepAncestorResults(ctx context.Context, taskID, stepID uuid.UUID) (map[string]json.RawMessage, error) {
	const op = "step ancestor results"
	if err := s.check(op); err != nil {
		return nil, err
	}
	rows, err := s.stepAncestors.QueryContext(ctx, taskID.String(), stepID.String(), string(taskertype.StepComplete))
	if err != nil {
		return nil, fmt.Errorf("store: %s: step %s: %w", op, stepID, err)
	}
	defer rows.Close()
	out, err := rowscan.NamedJSON(op, rows)
	if err != nil {
		return nil, fmt.Errorf("%w (step %s)", err, stepID)
	}
	return out, nil
}

// StepAttempts implements store.Store: one query on a reader.
func (s *Store) StepAttempts(ctx context.Context, ids []uuid.UUID) ([]store.StepAttempt, error) {
	if err := s.check("step attempts"); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("store: step attempts: %w", err)
	}
	rows, err := s.stepAttempts.QueryContext(ctx, string(b))
	if err != nil {
		return nil, fmt.Errorf("store: step attempts: %w", err)
	}
	defer rows.Close()
	out := make([]store.StepAttempt, 0, len(ids))
	for rows.Next() {
		var a store.StepAttempt
		if err := rows.Scan(&a.ID, &a.State, &a.AttemptID); err != nil {
			return nil, fmt.Errorf("store: step attempts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: step attempts: %w", err)
	}
	return out, nil
}
