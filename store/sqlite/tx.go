package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// tx is a write transaction: a BEGIN IMMEDIATE on the writer connection.
// Transitions are buffered and written with multi-row inserts just before the
// commit, in the order they were made; messages are written at once and their
// wake-ups fire after the commit.
type tx struct {
	s *Store
	// ctx runs the statements: the caller's context without its
	// cancellation, because the driver watches a cancellable context with a
	// goroutine per statement (a third of a short transaction's cost here).
	// The caller's context is checked before the transaction begins; the
	// statements inside are short.
	ctx   context.Context
	tx    *sql.Tx
	trans []transitionRow
	moved map[uuid.UUID]*movedTask  // tasks read or moved in this transaction
	steps map[uuid.UUID]*cachedStep // steps read or moved in this transaction
	lists map[uuid.UUID][]uuid.UUID // the step IDs of tasks listed in this transaction, in order
	sent  []queue.SendParams        // Queue and Delay only, for the wake-ups
	done  bool
}

type transitionRow struct {
	taskID    string
	stepID    any // string, or nil for a task transition
	from, to  string
	event     string
	at        int64
	processor string
}

var _ store.Tx = (*tx)(nil)

// InTx implements store.Store. fn runs once: with a single writer, SQLite
// never fails a transaction for serialization. A panic in fn rolls the
// transaction back and goes on. The error of fn is returned as it is.
func (s *Store) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	if err := s.check("transaction"); err != nil {
		return err
	}
	// The wait for the single writer connection honours ctx; the statements
	// then run without its cancellation (see tx.ctx).
	conn, err := s.db.W.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: begin: waiting for the writer: %w", err)
	}
	defer conn.Close()
	sctx := context.WithoutCancel(ctx)
	sqlTx, err := conn.BeginTx(sctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	t := &tx{s: s, ctx: sctx, tx: sqlTx}
	committed := false
	defer func() {
		t.done = true
		if !committed {
			// Also on a panic in fn, which goes on after this.
			_ = sqlTx.Rollback()
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	if err := t.flushSteps(); err != nil {
		return err
	}
	if err := t.flushTasks(); err != nil {
		return err
	}
	if err := t.flushTransitions(sctx); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	committed = true
	s.q.NotifySent(t.sent...)
	return nil
}

func (t *tx) check(op string) error {
	if t.done {
		return fmt.Errorf("store: %s: the transaction has ended: %w", op, taskertype.ErrClosed)
	}
	return nil
}

func (t *tx) stmt(st *sql.Stmt) *sql.Stmt { return t.tx.StmtContext(t.ctx, st) }

func (t *tx) flushTransitions(ctx context.Context) error {
	rows := make([][]any, len(t.trans))
	for i, r := range t.trans {
		rows[i] = []any{r.taskID, r.stepID, r.from, r.to, r.event, r.at, r.processor}
	}
	t.trans = nil
	if err := t.s.w.transitionInsert.exec(t.ctx, t.tx, rows); err != nil {
		return fmt.Errorf("store: record transitions: %w", err)
	}
	return nil
}

func (t *tx) at(at time.Time) time.Time {
	if at.IsZero() {
		return t.s.clock.Now()
	}
	return at
}

// TaskCreate implements store.Tx. It sets the task's and the steps' State to
// pending, their CreatedAt and UpdatedAt to p.At and each step's TaskID; the
// other mutable fields of the steps are stored as for a step never run.
func (t *tx) TaskCreate(ctx context.Context, p *store.TaskCreateParams) error {
	const op = "task create"
	if err := t.check(op); err != nil {
		return err
	}
	if err := validateCreate(p); err != nil {
		return err
	}
	at := t.at(p.At)
	atUS := sqlitedb.Micros(at)
	task := p.Task
	taskID := task.ID.String()
	taskCtx := []byte(task.Context)
	if len(taskCtx) == 0 {
		taskCtx = []byte("{}")
	}
	_, err := t.stmt(t.s.w.taskInsert).ExecContext(t.ctx,
		taskID, task.Namespace, task.Name, task.Version, string(taskertype.TaskPending), taskCtx, atUS)
	if sqlitedb.IsUniqueViolation(err) {
		return invalid(op, "task %s already exists", task.ID)
	}
	if err != nil {
		return fmt.Errorf("store: %s: task %s: %w", op, task.ID, err)
	}
	task.State = taskertype.TaskPending
	task.CreatedAt, task.UpdatedAt, task.FinishedAt = at, at, time.Time{}
	t.trans = append(t.trans, transitionRow{taskID: taskID, stepID: nil,
		to: string(taskertype.TaskPending), event: string(taskertype.TaskEventCreate), at: atUS, processor: p.Processor})

	steps := make([][]any, len(p.Steps))
	var edges [][]any
	for i, st := range p.Steps {
		stepID := st.ID.String()
		r := st.Retry
		steps[i] = []any{stepID, taskID, st.Name, st.Handler, st.Position, string(taskertype.StepPending), 0,
			r.Retryable, r.MaxAttempts, string(r.Backoff), r.Base.Microseconds(), r.Cap.Microseconds(), r.Jitter,
			st.Timeout.Microseconds(), atUS, atUS}
		for _, dep := range st.DependsOn {
			edges = append(edges, []any{taskID, dep.String(), stepID})
		}
	}
	err = t.s.w.stepInsert.exec(t.ctx, t.tx, steps)
	if sqlitedb.IsUniqueViolation(err) {
		return invalid(op, "a step of task %s already exists", task.ID)
	}
	if err != nil {
		return fmt.Errorf("store: %s: steps of task %s: %w", op, task.ID, err)
	}
	if err := t.s.w.edgeInsert.exec(t.ctx, t.tx, edges); err != nil {
		return fmt.Errorf("store: %s: edges of task %s: %w", op, task.ID, err)
	}
	for _, st := range p.Steps {
		st.TaskID = task.ID
		st.State = taskertype.StepPending
		st.CreatedAt, st.UpdatedAt = at, at
		t.trans = append(t.trans, transitionRow{taskID: taskID, stepID: st.ID.String(),
			to: string(taskertype.StepPending), event: string(taskertype.StepEventCreate), at: atUS, processor: p.Processor})
	}
	return nil
}

// validateCreate checks what the database cannot: the fields a task and its
// steps need, and that the dependencies name steps of this task and form no
// cycle.
func validateCreate(p *store.TaskCreateParams) error {
	const op = "task create"
	if p == nil || p.Task == nil {
		return invalid(op, "no task")
	}
	task := p.Task
	switch {
	case task.ID == uuid.Nil:
		return invalid(op, "the task has no ID")
	case task.Namespace == "":
		return invalid(op, "task %s has no namespace", task.ID)
	case task.Name == "":
		return invalid(op, "task %s has no template name", task.ID)
	case len(task.Context) > 0 && !json.Valid(task.Context):
		return invalid(op, "task %s: the context is not valid JSON", task.ID)
	}
	index := make(map[uuid.UUID]int, len(p.Steps))
	names := make(map[string]bool, len(p.Steps))
	for i, st := range p.Steps {
		switch {
		case st == nil:
			return invalid(op, "task %s: step %d is nil", task.ID, i)
		case st.ID == uuid.Nil:
			return invalid(op, "task %s: step %q has no ID", task.ID, st.Name)
		case st.Name == "":
			return invalid(op, "task %s: step %s has no name", task.ID, st.ID)
		case names[st.Name]:
			return invalid(op, "task %s: two steps are named %q", task.ID, st.Name)
		}
		if _, dup := index[st.ID]; dup {
			return invalid(op, "task %s: two steps have the ID %s", task.ID, st.ID)
		}
		index[st.ID] = i
		names[st.Name] = true
	}
	// Every dependency is a step of the list, named once; then a depth-first
	// walk finds any cycle.
	for _, st := range p.Steps {
		seen := make(map[uuid.UUID]bool, len(st.DependsOn))
		for _, dep := range st.DependsOn {
			if _, ok := index[dep]; !ok {
				return invalid(op, "task %s: step %q depends on %s, which is not a step of this task", task.ID, st.Name, dep)
			}
			if dep == st.ID {
				return invalid(op, "task %s: step %q depends on itself", task.ID, st.Name)
			}
			if seen[dep] {
				return invalid(op, "task %s: step %q depends on %s twice", task.ID, st.Name, dep)
			}
			seen[dep] = true
		}
	}
	const (
		unvisited = iota
		visiting
		visited
	)
	mark := make([]int, len(p.Steps))
	var visit func(i int) error
	visit = func(i int) error {
		switch mark[i] {
		case visiting:
			return invalid(op, "task %s: the dependencies of step %q form a cycle", task.ID, p.Steps[i].Name)
		case visited:
			return nil
		}
		mark[i] = visiting
		for _, dep := range p.Steps[i].DependsOn {
			if err := visit(index[dep]); err != nil {
				return err
			}
		}
		mark[i] = visited
		return nil
	}
	for i := range p.Steps {
		if err := visit(i); err != nil {
			return err
		}
	}
	return nil
}

// TaskGetForUpdate implements store.Tx. The transaction already holds
// SQLite's write lock, so a plain read holds the task too; the state read is
// remembered, and later transitions of the task in this transaction are
// checked against it and written once, at commit.
func (t *tx) TaskGetForUpdate(ctx context.Context, id uuid.UUID) (*taskertype.Task, error) {
	if err := t.check("task get"); err != nil {
		return nil, err
	}
	task, err := getTask(t.ctx, t.stmt(t.s.w.taskLock), "task get", id)
	if err != nil {
		return nil, err
	}
	return t.overlay(task), nil
}

// TaskTransition implements store.Tx.
func (t *tx) TaskTransition(ctx context.Context, p *store.TaskTransitionParams) error {
	const op = "task transition"
	if err := t.check(op); err != nil {
		return err
	}
	if p == nil || p.ID == uuid.Nil {
		return invalid(op, "no task ID")
	}
	next, err := taskertype.NextTaskState(p.From, p.Event)
	if err != nil {
		return fmt.Errorf("store: %s: task %s: %w", op, p.ID, err)
	}
	if next != p.To {
		return fmt.Errorf("store: %s: task %s: event %q in state %q leads to %q, not %q: %w",
			op, p.ID, p.Event, p.From, next, p.To, taskertype.ErrIllegalTransition)
	}
	at := t.at(p.At)
	var finished any
	if p.To.Terminal() {
		finished = sqlitedb.Micros(at)
	}
	id := p.ID.String()
	row := transitionRow{taskID: id, stepID: nil, from: string(p.From), to: string(p.To),
		event: string(p.Event), at: sqlitedb.Micros(at), processor: p.Processor}
	if moved := t.moved[p.ID]; moved != nil {
		// A task this transaction already read or moved: SQLite's write
		// lock, held since BEGIN IMMEDIATE, keeps everyone else out, so the
		// compare-and-set is made here and the row written once, at commit
		// (a task often takes three hops in one transaction).
		if moved.state != p.From {
			return fmt.Errorf("store: %s: %w", op, &taskertype.StaleStateError{Kind: "task", ID: id, Expected: string(p.From), Actual: string(moved.state)})
		}
		moved.state, moved.updated, moved.dirty = p.To, row.at, true
		moved.finished = sql.NullInt64{Int64: row.at, Valid: p.To.Terminal()}
		t.trans = append(t.trans, row)
		return nil
	}
	res, err := t.stmt(t.s.w.taskTransition).ExecContext(t.ctx, id, string(p.From), string(p.To), sqlitedb.Micros(at), finished)
	if err != nil {
		return fmt.Errorf("store: %s: task %s: %w", op, p.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: %s: task %s: %w", op, p.ID, err)
	}
	if n == 0 {
		return t.stale(t.ctx, op, "task", t.s.w.taskState, p.ID, string(p.From))
	}
	t.remember(p.ID, &movedTask{state: p.To, updated: row.at, finished: sql.NullInt64{Int64: row.at, Valid: p.To.Terminal()}})
	t.trans = append(t.trans, row)
	return nil
}

func (t *tx) remember(id uuid.UUID, m *movedTask) {
	if t.moved == nil {
		t.moved = make(map[uuid.UUID]*movedTask)
	}
	t.moved[id] = m
}

// movedTask is a task as this transaction last read or moved it.
type movedTask struct {
	state    taskertype.TaskState
	updated  int64
	finished sql.NullInt64
	dirty    bool // moved here and not written yet
}

// flushTasks writes the final state of the tasks that took more than one hop.
func (t *tx) flushTasks() error {
	for id, m := range t.moved {
		if !m.dirty {
			continue
		}
		if _, err := t.stmt(t.s.w.taskSetState).ExecContext(t.ctx, id.String(), string(m.state), m.updated, m.finished); err != nil {
			return fmt.Errorf("store: task transition: task %s: %w", id, err)
		}
		m.dirty = false
	}
	return nil
}

// overlay gives a task read back in this transaction the state it reached
// here, or remembers the state read.
func (t *tx) overlay(task *taskertype.Task) *taskertype.Task {
	m := t.moved[task.ID]
	if m == nil {
		t.remember(task.ID, &movedTask{state: task.State, updated: sqlitedb.Micros(task.UpdatedAt),
			finished: sql.NullInt64{Int64: sqlitedb.Micros(task.FinishedAt), Valid: !task.FinishedAt.IsZero()}})
		return task
	}
	task.State, task.UpdatedAt, task.FinishedAt = m.state, sqlitedb.Time(m.updated), sqlitedb.NullTime(m.finished)
	return task
}

// stale explains a compare-and-set that changed nothing: the record is in
// another state, or does not exist.
func (t *tx) stale(ctx context.Context, op, kind string, stateOf *sql.Stmt, id uuid.UUID, expected string) error {
	var actual string
	err := t.stmt(stateOf).QueryRowContext(t.ctx, id.String()).Scan(&actual)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(op, kind, id)
	}
	if err != nil {
		return fmt.Errorf("store: %s: %s %s: %w", op, kind, id, err)
	}
	return fmt.Errorf("store: %s: %w", op, &taskertype.StaleStateError{Kind: kind, ID: id.String(), Expected: expected, Actual: actual})
}

// StepGet implements store.Tx. A step read or moved earlier in this
// transaction comes from the transaction's own copy.
func (t *tx) StepGet(ctx context.Context, id uuid.UUID) (*taskertype.Step, error) {
	const op = "step get"
	if err := t.check(op); err != nil {
		return nil, err
	}
	if c := t.steps[id]; c != nil {
		return c.copy(), nil
	}
	st, err := scanStep(t.stmt(t.s.w.stepGet).QueryRowContext(t.ctx, id.String()), nil)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(op, "step", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: step %s: %w", op, id, err)
	}
	t.rememberStep(st, false)
	return st, nil
}

// StepList implements store.Tx. Steps moved earlier in this transaction
// read back as they are now.
func (t *tx) StepList(ctx context.Context, taskID uuid.UUID) ([]*taskertype.Step, error) {
	if err := t.check("step list"); err != nil {
		return nil, err
	}
	if ids, ok := t.lists[taskID]; ok {
		// Listed before in this transaction: every step is in the cache.
		steps := make([]*taskertype.Step, len(ids))
		for i, id := range ids {
			c := t.steps[id]
			steps[i] = c.copy()
			steps[i].DependsOn = slices.Clone(c.deps)
		}
		return steps, nil
	}
	steps, err := listSteps(t.ctx, t.stmt(t.s.w.stepList), taskID)
	if err != nil {
		return nil, err
	}
	ids := make([]uuid.UUID, len(steps))
	for i, st := range steps {
		ids[i] = st.ID
		if c := t.steps[st.ID]; c != nil {
			deps := st.DependsOn
			*st = *c.copy()
			st.DependsOn = deps
		} else {
			t.rememberStep(st, false)
		}
		t.steps[st.ID].deps = slices.Clone(st.DependsOn)
	}
	if t.lists == nil {
		t.lists = make(map[uuid.UUID][]uuid.UUID)
	}
	t.lists[taskID] = ids
	return steps, nil
}

// cachedStep is a step as this transaction last read or moved it. SQLite's
// write lock, held since BEGIN IMMEDIATE, keeps every other writer out, so
// the copy is the truth until the transaction ends: a transition of a cached
// step is a compare-and-set on the copy, and the row is written once, before
// the commit or before a query that reads it (a step typically moves twice in
// the transaction that reports it, and a next step twice in the one that
// starts it).
type cachedStep struct {
	st    taskertype.Step // without DependsOn
	deps  []uuid.UUID     // the step's dependencies, once a StepList read them
	dirty bool
}

func (c *cachedStep) copy() *taskertype.Step {
	s := c.st
	if s.Failure != nil {
		f := *s.Failure
		s.Failure = &f
	}
	return &s
}

func (t *tx) rememberStep(st *taskertype.Step, dirty bool) {
	if t.steps == nil {
		t.steps = make(map[uuid.UUID]*cachedStep)
	}
	c := &cachedStep{st: *st, dirty: dirty}
	if old := t.steps[st.ID]; old != nil {
		c.deps = old.deps
	}
	c.st.DependsOn = nil
	if st.Failure != nil {
		f := *st.Failure
		c.st.Failure = &f
	}
	t.steps[st.ID] = c
}

// flushSteps writes the steps moved in this transaction and not yet written.
func (t *tx) flushSteps() error {
	for id, c := range t.steps {
		if !c.dirty {
			continue
		}
		st := &c.st
		failure, err := failureJSON(st)
		if err != nil {
			return err
		}
		if _, err := t.stmt(t.s.w.stepSet).ExecContext(t.ctx, id.String(), string(st.State), st.Attempts,
			sqlitedb.NullMicros(st.NextRetryAt), nullBytes(st.Result), failure,
			sqlitedb.NullMicros(st.StartedAt), sqlitedb.NullMicros(st.FinishedAt), sqlitedb.Micros(st.UpdatedAt)); err != nil {
			return fmt.Errorf("store: step transition: step %s: %w", id, err)
		}
		c.dirty = false
	}
	return nil
}

func failureJSON(st *taskertype.Step) (any, error) {
	if st.Failure == nil {
		return nil, nil
	}
	b, err := json.Marshal(st.Failure)
	if err != nil {
		return nil, invalid("step transition", "step %s: failure: %v", st.ID, err)
	}
	return b, nil
}

// StepTransition implements store.Tx. It sets p.Step.UpdatedAt to p.At.
func (t *tx) StepTransition(ctx context.Context, p *store.StepTransitionParams) error {
	const op = "step transition"
	if err := t.check(op); err != nil {
		return err
	}
	if p == nil || p.Step == nil || p.Step.ID == uuid.Nil || p.Step.TaskID == uuid.Nil {
		return invalid(op, "no step, or a step without its ID and TaskID")
	}
	st := p.Step
	next, err := taskertype.NextStepState(p.From, p.Event)
	if err != nil {
		return fmt.Errorf("store: %s: step %s: %w", op, st.ID, err)
	}
	if next != st.State {
		return fmt.Errorf("store: %s: step %s: event %q in state %q leads to %q, not %q: %w",
			op, st.ID, p.Event, p.From, next, st.State, taskertype.ErrIllegalTransition)
	}
	at := t.at(p.At)
	atUS := sqlitedb.Micros(at)
	id := st.ID.String()
	row := transitionRow{taskID: st.TaskID.String(), stepID: id, from: string(p.From), to: string(st.State),
		event: string(p.Event), at: atUS, processor: p.Processor}
	if c := t.steps[st.ID]; c != nil {
		if c.st.State != p.From {
			return fmt.Errorf("store: %s: %w", op, &taskertype.StaleStateError{Kind: "step", ID: id, Expected: string(p.From), Actual: string(c.st.State)})
		}
		if c.st.TaskID != st.TaskID {
			return invalid(op, "step %s belongs to task %s, not %s", id, c.st.TaskID, st.TaskID)
		}
		st.UpdatedAt = at
		t.rememberStep(st, true)
		t.trans = append(t.trans, row)
		return nil
	}
	failure, err := failureJSON(st)
	if err != nil {
		return err
	}
	res, err := t.stmt(t.s.w.stepTransition).ExecContext(t.ctx, id, string(p.From), string(st.State), st.Attempts,
		sqlitedb.NullMicros(st.NextRetryAt), nullBytes(st.Result), failure,
		sqlitedb.NullMicros(st.StartedAt), sqlitedb.NullMicros(st.FinishedAt), atUS, st.TaskID.String())
	if err != nil {
		return fmt.Errorf("store: %s: step %s: %w", op, st.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return t.stale(t.ctx, op, "step", t.s.w.stepState, st.ID, string(p.From))
	}
	st.UpdatedAt = at
	t.rememberStep(st, false)
	t.trans = append(t.trans, row)
	return nil
}

// StepInputs implements store.Tx: one query, whose first row is the task's
// context and whose other rows are the dependencies' results.
func (t *tx) StepInputs(ctx context.Context, stepID uuid.UUID) (*store.StepInputs, error) {
	const op = "step inputs"
	if err := t.check(op); err != nil {
		return nil, err
	}
	if err := t.flushSteps(); err != nil { // the query reads results written here
		return nil, err
	}
	rows, err := t.stmt(t.s.w.inputs).QueryContext(t.ctx, stepID.String())
	if err != nil {
		return nil, fmt.Errorf("store: %s: step %s: %w", op, stepID, err)
	}
	defer rows.Close()
	var in *store.StepInputs
	for rows.Next() {
		var (
			kind  int
			name  sql.NullString
			value []byte
		)
		if err := rows.Scan(&kind, &name, &value); err != nil {
			return nil, fmt.Errorf("store: %s: step %s: %w", op, stepID, err)
		}
		if in == nil {
			in = &store.StepInputs{Context: value, Results: make(map[string]json.RawMessage)}
			continue
		}
		if len(value) == 0 {
			value = []byte("null")
		}
		in.Results[name.String] = value
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: step %s: %w", op, stepID, err)
	}
	if in == nil {
		return nil, notFound(op, "step", stepID)
	}
	return in, nil
}

// MessageSend implements store.Tx: the message is written in this
// transaction, and the queue's subscribers are woken after the commit.
func (t *tx) MessageSend(ctx context.Context, p *queue.SendParams) error {
	if err := t.check("message send"); err != nil {
		return err
	}
	if _, err := t.s.q.SendTx(t.ctx, t.tx, p); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	t.sent = append(t.sent, queue.SendParams{Queue: p.Queue, Delay: p.Delay})
	return nil
}

// MessageClaim implements store.Tx: the co-located queue's claim, in this
// transaction.
func (t *tx) MessageClaim(ctx context.Context, p *queue.ClaimParams) ([]*queue.Message, error) {
	if err := t.check("message claim"); err != nil {
		return nil, err
	}
	msgs, err := t.s.q.ClaimTx(t.ctx, t.tx, p)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if len(msgs) < p.Max {
		// The claim drained the queue, so it took every message this
		// transaction sent there without delay: waking consumers for them
		// would only make them claim nothing.
		t.sent = slices.DeleteFunc(t.sent, func(s queue.SendParams) bool { return s.Queue == p.Queue && s.Delay <= 0 })
	}
	return msgs, nil
}

// MessageAck implements store.Tx: the co-located queue's acknowledgement,
// in this transaction.
func (t *tx) MessageAck(ctx context.Context, p *queue.AckParams) error {
	if err := t.check("message ack"); err != nil {
		return err
	}
	if err := t.s.q.AckTx(t.ctx, t.tx, p); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
