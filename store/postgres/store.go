// Package postgres is the PostgreSQL store driver: tasks, steps and
// transitions in a PostgreSQL database shared with the PostgreSQL queue
// (queue/postgres), so that a state change and the message it sends commit
// in one transaction, and any number of processes share the database.
//
// Transactions are pipelined: the writes whose outcome is known are
// buffered and go with the next read or with the COMMIT, in one batch, so a
// transaction costs one round trip per read it makes plus one. See
// docs/postgres.md for the round trips of each operation.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/internal/rowscan"
	queuepg "github.com/tasker-go/tasker/queue/postgres"
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

// Config configures the store. The zero value of each field but URL means
// its default.
type Config struct {
	// URL is the database: postgres://user:password@host:5432/dbname?sslmode=disable,
	// or key=value pairs. "&search_path=schema" puts the tables in another
	// schema than public; "&pool_max_conns=N" sizes the pool.
	URL    string
	Logger *slog.Logger
	// Clock dates a transition or a creation whose At is zero. Nil means
	// the wall clock. It does not decide claims: the queue takes that time
	// from the database (see queuepg.Config.TestClock).
	Clock taskertype.Clock
	// AutoMigrate applies the migrations of the store and of the queue at
	// Open, under an advisory lock (processes starting together migrate
	// once). Without it, Open fails on a database that lacks them with an
	// error that says to run `tasker migrate` (Migrate).
	AutoMigrate bool
	// MaxConns bounds the pool (see pgdb.Options.MaxConns).
	MaxConns int32
	// Timeouts bound what a session may hold (see pgdb.SessionTimeouts);
	// the zero value means the defaults.
	Timeouts pgdb.SessionTimeouts
	// Queue configures the co-located queue; its URL, Logger and
	// AutoMigrate are this Config's.
	Queue queuepg.Config
	// Outbox, when its Queue is set, sends the messages of transactions to
	// that queue (a broker) through the transactional outbox instead of
	// the co-located queue: Tx.MessageClaim, MessageAck and Notify are
	// then unsupported (errors.ErrUnsupported), as the broker's
	// Capabilities().SharesStoreDatabase says.
	Outbox OutboxConfig
}

// Store implements store.Store on PostgreSQL.
type Store struct {
	db     *pgdb.DB
	q      *queuepg.Queue
	relay  *relay   // nil without an outbox
	known  sync.Map // queue names the outbox's queue said exist
	clock  taskertype.Clock
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open opens the pool, applies or checks the migrations of the store and
// of the queue, and builds the co-located queue, which shares the pool.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	db, err := pgdb.Open(ctx, pgdb.Options{URL: cfg.URL, Logger: cfg.Logger, MaxConns: cfg.MaxConns, Timeouts: cfg.Timeouts})
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

func newStore(ctx context.Context, db *pgdb.DB, cfg Config) (*Store, error) {
	if cfg.AutoMigrate {
		if err := db.Migrate(ctx, Component, Migrations); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	} else if err := db.CheckSchema(ctx, Component, Migrations); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	qcfg := cfg.Queue
	// The engine's clock dates transitions; it never decides claims: the
	// queue takes that time from the database unless cfg.Queue.TestClock.
	qcfg.URL, qcfg.Logger, qcfg.AutoMigrate = "", cfg.Logger, cfg.AutoMigrate
	q, err := queuepg.New(ctx, db, qcfg)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{db: db, q: q, clock: cfg.Clock}
	if s.clock == nil {
		s.clock = taskertype.SystemClock{}
	}
	if cfg.Outbox.Queue != nil {
		log := cfg.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		s.relay = newRelay(db, log, cfg.Outbox)
		s.relay.start()
	}
	return s, nil
}

// Migrate opens the database of cfg, applies the migrations of the store
// and of the queue, and closes it: what `tasker migrate` does. It is
// idempotent, and safe to run from several processes at once.
func Migrate(ctx context.Context, cfg Config) error {
	db, err := pgdb.Open(ctx, pgdb.Options{URL: cfg.URL, Logger: cfg.Logger, MaxConns: cfg.MaxConns})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer db.Close()
	return migrate(ctx, db)
}

// Migrate applies the migrations of the store and of the queue that the
// database lacks (an open store has them all unless another binary changed
// the database since).
func (s *Store) Migrate(ctx context.Context) error { return migrate(ctx, s.db) }

func migrate(ctx context.Context, db *pgdb.DB) error {
	if err := db.Migrate(ctx, Component, Migrations); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := db.Migrate(ctx, queuepg.Component, queuepg.Migrations); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Queue returns the queue that shares the store's database: messages sent
// with Tx.MessageSend are consumed from it.
func (s *Store) Queue() *queuepg.Queue { return s.q }

// DB returns the store's pool.
func (s *Store) DB() *pgdb.DB { return s.db }

// RoundTrips counts the exchanges with the server made through the store's
// pool (its queue's included) since it opened; see pgdb.DB.RoundTrips.
func (s *Store) RoundTrips() uint64 { return s.db.RoundTrips() }

// Close closes the queue and the pool. It may be called more than once.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if s.relay != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = s.relay.stop(ctx) // rows not published stay for the next relay
		cancel()
	}
	err := s.q.Close()
	s.db.Close()
	return err
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

// TaskGet implements store.Store: one query.
func (s *Store) TaskGet(ctx context.Context, id uuid.UUID) (*taskertype.Task, error) {
	const op = "task get"
	if err := s.check(op); err != nil {
		return nil, err
	}
	t, err := scanTaskRequest(s.db.Pool.QueryRow(ctx, `SELECT `+taskCols+`, context, `+requestCols+` FROM tasks WHERE id = $1`, id))
	if pgdb.IsNoRows(err) {
		return nil, notFound(op, "task", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: task %s: %w", op, id, err)
	}
	return t, nil
}

// TaskList implements store.Store: one query, newest first (creation time,
// then ID).
func (s *Store) TaskList(ctx context.Context, p *store.TaskListParams) ([]*taskertype.Task, error) {
	const op = "task list"
	if err := s.check(op); err != nil {
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
		return nil, invalid(op, "negative limit %d", p.Limit)
	}
	if p.Offset < 0 {
		return nil, invalid(op, "negative offset %d", p.Offset)
	}
	var rows pgx.Rows
	var err error
	switch {
	case p.IdentityHash == "" && (p.Offset > 0 || p.Namespace != ""):
		where, args, werr := taskWhere(op, p)
		if werr != nil {
			return nil, werr
		}
		n := len(args)
		rows, err = s.db.Pool.Query(ctx, `SELECT `+taskCols+`, context, `+requestCols+` FROM tasks`+where+
			fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d OFFSET $%d`, n+1, n+2), append(args, limit, p.Offset)...)
	case p.IdentityHash != "":
		rows, err = s.db.Pool.Query(ctx, `SELECT `+taskCols+`, context, `+requestCols+` FROM tasks WHERE identity_hash = $1`, p.IdentityHash)
	case len(p.States) == 0:
		rows, err = s.db.Pool.Query(ctx, `SELECT `+taskCols+`, context, `+requestCols+` FROM tasks ORDER BY created_at DESC, id DESC LIMIT $1`, limit)
	default:
		states := make([]string, 0, len(p.States))
		unfinished := true
		for _, st := range p.States {
			if !st.Valid() {
				return nil, invalid(op, "unknown task state %q", st)
			}
			states = append(states, string(st))
			unfinished = unfinished && !st.Terminal()
		}
		// Unfinished states only: the partial index of unfinished tasks.
		where := `state = ANY($1)`
		if unfinished {
			where += ` AND finished_at IS NULL`
		}
		rows, err = s.db.Pool.Query(ctx, `SELECT `+taskCols+`, context, `+requestCols+` FROM tasks WHERE `+where+
			` ORDER BY created_at DESC, id DESC LIMIT $2`, states, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	return rowscan.All(op, rows, func(rows rowscan.Rows) (*taskertype.Task, error) { return scanTaskRequest(rows) })
}

// taskWhere is the WHERE clause of a page of tasks (or "") and its
// arguments, $1 on.
func taskWhere(op string, p *store.TaskListParams) (string, []any, error) {
	var conds []string
	var args []any
	if len(p.States) > 0 {
		states := make([]string, 0, len(p.States))
		unfinished := true
		for _, st := range p.States {
			if !st.Valid() {
				return "", nil, invalid(op, "unknown task state %q", st)
			}
			states = append(states, string(st))
			unfinished = unfinished && !st.Terminal()
		}
		args = append(args, states)
		conds = append(conds, fmt.Sprintf("state = ANY($%d)", len(args)))
		if unfinished {
			conds = append(conds, "finished_at IS NULL")
		}
	}
	if p.Namespace != "" {
		args = append(args, p.Namespace)
		conds = append(conds, fmt.Sprintf("namespace = $%d", len(args)))
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// TaskCount implements store.Store.
func (s *Store) TaskCount(ctx context.Context, p *store.TaskListParams) (int64, error) {
	const op = "task count"
	if err := s.check(op); err != nil {
		return 0, err
	}
	if p == nil {
		p = &store.TaskListParams{}
	}
	where, args, err := taskWhere(op, p)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := s.db.Pool.QueryRow(ctx, `SELECT count(*) FROM tasks`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: %s: %w", op, err)
	}
	return n, nil
}

// The steps of a task in template order, DependsOn filled: one query, the
// dependencies being a column of the step.
const stepListSQL = `SELECT ` + stepCols + ` FROM steps WHERE task_id = $1 ORDER BY position, name`

// StepList implements store.Store: one query. A task without steps, or no
// such task, gives an empty list.
func (s *Store) StepList(ctx context.Context, taskID uuid.UUID) ([]*taskertype.Step, error) {
	if err := s.check("step list"); err != nil {
		return nil, err
	}
	rows, err := s.db.Pool.Query(ctx, stepListSQL, taskID)
	if err != nil {
		return nil, fmt.Errorf("store: step list: task %s: %w", taskID, err)
	}
	return readSteps(rows, taskID)
}

func readSteps(rows pgx.Rows, taskID uuid.UUID) ([]*taskertype.Step, error) {
	defer rows.Close()
	var (
		steps []*taskertype.Step
		sc    stepScanner
	)
	for rows.Next() {
		st := new(taskertype.Step)
		if err := sc.scan(rows, st); err != nil {
			return nil, fmt.Errorf("store: step list: task %s: %w", taskID, err)
		}
		steps = append(steps, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: step list: task %s: %w", taskID, err)
	}
	return steps, nil
}

// TransitionList implements store.Store: one query. The transitions of a
// task that does not exist are an empty list.
func (s *Store) TransitionList(ctx context.Context, p *store.TransitionListParams) ([]*taskertype.Transition, error) {
	const op = "transition list"
	if err := s.check(op); err != nil {
		return nil, err
	}
	if p == nil || p.TaskID == uuid.Nil {
		return nil, invalid(op, "no task ID")
	}
	// A row's transitions are numbered from its id up to id + 1023: a row
	// whose id is that far below After may still hold later ones. A step's
	// transitions are in the rows that start with one of them, or in the
	// more of others.
	from := max(p.After, 0) - (maxPackedTransitions - 1)
	q, args := `SELECT `+transitionCols+`, more FROM transitions WHERE task_id = $1 AND id > $2 ORDER BY id`, []any{p.TaskID, from}
	if p.StepID != uuid.Nil {
		q, args = `SELECT `+transitionCols+`, more FROM transitions WHERE task_id = $1 AND id > $2 AND (step_id = $3 OR more IS NOT NULL) ORDER BY id`,
			[]any{p.TaskID, from, p.StepID}
	}
	rows, err := s.db.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: task %s: %w", op, p.TaskID, err)
	}
	ts := []*taskertype.Transition{}
	keep := func(tr *taskertype.Transition) {
		if tr.ID > p.After && (p.StepID == uuid.Nil || tr.StepID == p.StepID) {
			ts = append(ts, tr)
		}
	}
	defer rows.Close()
	for rows.Next() {
		var (
			tr   taskertype.Transition
			more []byte
		)
		if err := rows.Scan(&tr.ID, &tr.TaskID, &tr.StepID, &tr.From, &tr.To, &tr.Event, &tr.At, &tr.Processor, &more); err != nil {
			return nil, fmt.Errorf("store: %s: task %s: %w", op, p.TaskID, err)
		}
		tr.At = tr.At.UTC()
		keep(&tr)
		if more == nil {
			continue
		}
		var packed []packedTransition
		if err := json.Unmarshal(more, &packed); err != nil {
			return nil, fmt.Errorf("store: %s: task %s: transitions after %d: %w", op, p.TaskID, tr.ID, err)
		}
		if len(packed) >= maxPackedTransitions {
			return nil, fmt.Errorf("store: %s: task %s: the row of transition %d holds %d more, over %d: its numbers would reach the next row's",
				op, p.TaskID, tr.ID, len(packed), maxPackedTransitions-1)
		}
		for i, e := range packed {
			next := &taskertype.Transition{ID: tr.ID + 1 + int64(i), TaskID: tr.TaskID, From: e.From, To: e.To, Event: e.Event,
				At: time.UnixMicro(e.At).UTC(), Processor: tr.Processor}
			next.StepID = e.Step
			keep(next)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: task %s: %w", op, p.TaskID, err)
	}
	return ts, nil
}

// errStale builds the error of a compare-and-set that found another state.
func errStale(op, kind string, id uuid.UUID, expected, actual string) error {
	return fmt.Errorf("store: %s: %w", op, &taskertype.StaleStateError{Kind: kind, ID: id.String(), Expected: expected, Actual: actual})
}

var errEnded = errors.New("the transaction has ended")

// dedupe returns the distinct strings of s in their first order.
func dedupe(s []string) []string {
	out := s[:0:0]
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// StepAncestorResults implements store.Store: one recursive query over
// the steps' depends_on, reading the ancestors only. Each ancestor's row is
// read by its primary key (a LATERAL subquery, kept from being flattened
// into a join by OFFSET 0): a plain join lets the generic plan misjudge the
// recursive CTE's size and hash a scan of the whole steps table (5 ms at
// 40,000 steps, growing with the table) or, bounded by task_id, of every
// step of the task (6.1 ms for a step with 4 ancestors in a task of 20,000
// steps, against 0.34 ms with the lookups; EXPLAIN ANALYZE under
// plan_cache_mode = force_generic_plan).
func (s *Store) StepAncestorResults(ctx context.Context, taskID, stepID uuid.UUID) (map[string]json.RawMessage, error) {
	const op = "step ancestor results"
	if err := s.check(op); err != nil {
		return nil, err
	}
	rows, err := s.db.Pool.Query(ctx, `WITH RECURSIVE anc(id) AS (
			SELECT d FROM steps s, unnest(s.depends_on) d WHERE s.id = $2 AND s.task_id = $1
			UNION
			SELECT d FROM anc JOIN steps s ON s.id = anc.id, unnest(s.depends_on) d
		)
		SELECT s.name, s.result FROM anc CROSS JOIN LATERAL (
			SELECT name, result FROM steps
			WHERE id = anc.id AND task_id = $1 AND state = $3 AND result IS NOT NULL OFFSET 0) s`, taskID, stepID, string(taskertype.StepComplete))
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

// StepAttempts implements store.Store: one query.
func (s *Store) StepAttempts(ctx context.Context, ids []uuid.UUID) ([]store.StepAttempt, error) {
	if err := s.check("step attempts"); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.db.Pool.Query(ctx, `SELECT id, state, attempt_id FROM steps WHERE id = ANY($1)`, ids)
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
