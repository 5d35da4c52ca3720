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

	"github.com/tasker-go/tasker/queue"
	queuesqlite "github.com/tasker-go/tasker/queue/sqlite"
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
	rows  map[uuid.UUID]*taskRows // the tasks this transaction touched, by ID
	// stepRows: the steps of those tasks that the cache's step → task
	// index does not hold, by ID (loadStep)
	stepRows map[uuid.UUID]*taskRows
	sent     []queue.SendParams // Queue and Delay only, for the wake-ups
	mem      queuesqlite.TxMem  // what it did to the step queues (stepqueues.go)
	stmts    []boundStmt        // see stmt
	// leases: the store leases of attempts started here
	// (StepLeaseHold), written after the steps.
	leases []store.StepLeaseParams
	done   bool
}

// StmtContext implements queuesqlite.Tx: the co-located queue's statements
// in this transaction are bound once too.
func (t *tx) StmtContext(_ context.Context, st *sql.Stmt) *sql.Stmt { return t.stmt(st) }

// Mem implements queuesqlite.MemTx: InTx applies it when the transaction
// ends, still holding the writer.
func (t *tx) Mem() *queuesqlite.TxMem { return &t.mem }

// boundStmt is a statement prepared at start-up and its transaction-bound
// form.
type boundStmt struct{ prepared, bound *sql.Stmt }

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
			s.q.EndTx(&t.mem, false)
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	if err := t.flushRows(); err != nil {
		return err
	}
	if err := t.flushLeases(); err != nil {
		return err
	}
	if err := t.flushTransitions(); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	committed = true
	// Still holding the writer: the next transaction sees these messages
	// and rows.
	s.q.EndTx(&t.mem, true)
	s.rows.commit(t.rows)
	s.q.NotifySent(t.sent...)
	return nil
}

func (t *tx) check(op string) error {
	if t.done {
		return fmt.Errorf("store: %s: the transaction has ended: %w", op, taskertype.ErrClosed)
	}
	return nil
}

// stmt returns the prepared statement st bound to this transaction.
// database/sql makes a new transaction-bound statement on every
// tx.StmtContext, so each is kept for the transaction's other uses: a
// report transaction runs a few statements tens of times.
func (t *tx) stmt(st *sql.Stmt) *sql.Stmt {
	for _, b := range t.stmts {
		if b.prepared == st {
			return b.bound
		}
	}
	b := t.tx.StmtContext(t.ctx, st)
	t.stmts = append(t.stmts, boundStmt{prepared: st, bound: b})
	return b
}

func (t *tx) at(at time.Time) time.Time {
	if at.IsZero() {
		return t.s.clock.Now()
	}
	return at
}

// TaskGetForUpdate implements store.Tx. The transaction already holds
// SQLite's write lock, which holds the task too. The task comes without its
// Context, as the interface says.
func (t *tx) TaskGetForUpdate(ctx context.Context, id uuid.UUID) (*taskertype.Task, error) {
	if err := t.check("task get"); err != nil {
		return nil, err
	}
	r, err := t.load(id)
	if err != nil {
		return nil, err
	}
	task := r.task
	task.Context = nil
	return &task, nil
}

// TaskTransition implements store.Tx: a compare-and-set on the
// transaction's copy of the task, written at commit.
func (t *tx) TaskTransition(ctx context.Context, p *store.TaskTransitionParams) error {
	const op = "task transition"
	if err := t.check(op); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	r, err := t.load(p.ID)
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	id := r.text[0]
	if r.task.State != p.From {
		return fmt.Errorf("store: %s: %w", op, &taskertype.StaleStateError{Kind: "task", ID: id, Expected: string(p.From), Actual: string(r.task.State)})
	}
	at := t.at(p.At)
	r.task.State, r.task.UpdatedAt, r.task.FinishedAt = p.To, stored(at), time.Time{}
	if p.To.Terminal() {
		r.task.FinishedAt = stored(at)
	}
	r.task.Revision++
	r.taskDirty = true
	t.trans = append(t.trans, transitionRow{task: p.ID, taskID: id, from: string(p.From), to: string(p.To),
		event: string(p.Event), at: micros(at), processor: p.Processor})
	return nil
}

// StepGet implements store.Tx.
func (t *tx) StepGet(ctx context.Context, id uuid.UUID) (*taskertype.Step, error) {
	const op = "step get"
	if err := t.check(op); err != nil {
		return nil, err
	}
	_, st, err := t.loadStep(op, id)
	if err != nil {
		return nil, err
	}
	return withDeps(st, false), nil
}

// StepList implements store.Tx. A task that does not exist has no steps.
func (t *tx) StepList(ctx context.Context, taskID uuid.UUID) ([]*taskertype.Step, error) {
	if err := t.check("step list"); err != nil {
		return nil, err
	}
	r, err := t.load(taskID)
	if errors.Is(err, taskertype.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	steps := make([]*taskertype.Step, len(r.steps))
	for i, s := range r.steps {
		steps[i] = withDeps(s, true)
	}
	return steps, nil
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

// StepTransition implements store.Tx: a compare-and-set on the
// transaction's copy of the step, written before the commit. It sets
// p.Step.UpdatedAt to p.At.
func (t *tx) StepTransition(ctx context.Context, p *store.StepTransitionParams) error {
	const op = "step transition"
	if err := t.check(op); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	st := p.Step
	r, cur, err := t.loadStep(op, st.ID)
	if err != nil {
		return err
	}
	id := r.stepText(st.ID)
	if cur.TaskID != st.TaskID {
		return invalid(op, "step %s belongs to task %s, not %s", id, cur.TaskID, st.TaskID)
	}
	if cur.State != p.From {
		return fmt.Errorf("store: %s: %w", op, &taskertype.StaleStateError{Kind: "step", ID: id, Expected: string(p.From), Actual: string(cur.State)})
	}
	if err := store.CheckAttempt(p, cur); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	at := t.at(p.At)
	st.UpdatedAt = at
	cur = r.own(cur)
	// The step's identity and definition stay as stored; its mutable
	// fields come from p.Step.
	cur.State, cur.Attempts, cur.NextRetryAt, cur.Result = st.State, st.Attempts, stored(st.NextRetryAt), cloneBytes(st.Result)
	cur.StartedAt, cur.FinishedAt, cur.UpdatedAt = stored(st.StartedAt), stored(st.FinishedAt), stored(at)
	cur.AttemptID = st.AttemptID
	cur.Failure = nil
	if st.Failure != nil {
		f := *st.Failure
		cur.Failure = &f
	}
	if r.stepsDirty == nil {
		r.stepsDirty = make(map[uuid.UUID]bool)
	}
	r.stepsDirty[st.ID] = true
	if taskertype.BumpsRevision(p.From, st.State) {
		r.task.Revision++
		r.taskDirty = true
	}
	t.trans = append(t.trans, transitionRow{task: st.TaskID, taskID: r.text[0], stepID: id, from: string(p.From), to: string(st.State),
		event: string(p.Event), at: micros(at), processor: p.Processor})
	return nil
}

// Prefetch implements store.Tx. The single writer holds every row already,
// so it only loads each task into the transaction (from the row cache when
// it can) and reports those that do not exist.
func (t *tx) Prefetch(ctx context.Context, p *store.PrefetchParams) ([]uuid.UUID, error) {
	const op = "prefetch"
	if err := t.check(op); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, invalid(op, "no params")
	}
	var missed []uuid.UUID
	for _, ids := range [][]uuid.UUID{p.TaskIDs, p.ContextsOf} {
		for _, id := range ids {
			if _, err := t.load(id); errors.Is(err, taskertype.ErrNotFound) {
				if !slices.Contains(missed, id) {
					missed = append(missed, id)
				}
			} else if err != nil {
				return nil, err
			}
		}
	}
	return missed, nil
}

// StepInputs implements store.Tx, from the transaction's copy of the task.
func (t *tx) StepInputs(ctx context.Context, stepID uuid.UUID) (*store.StepInputs, error) {
	const op = "step inputs"
	if err := t.check(op); err != nil {
		return nil, err
	}
	r, st, err := t.loadStep(op, stepID)
	if err != nil {
		return nil, err
	}
	in := &store.StepInputs{Context: cloneBytes(r.task.Context), Results: make(map[string]json.RawMessage, len(st.DependsOn)),
		CorrelationID: r.task.Request.CorrelationID, ParentCorrelationID: r.task.Request.ParentCorrelationID}
	for _, dep := range st.DependsOn {
		d := r.step(dep)
		if d == nil {
			return nil, fmt.Errorf("store: %s: step %s: dependency %s is not a step of task %s", op, stepID, dep, r.task.ID)
		}
		result := json.RawMessage(cloneBytes(d.Result))
		if len(result) == 0 {
			result = json.RawMessage("null")
		}
		in.Results[d.Name] = result
	}
	return in, nil
}

// maxHeldAncestorSteps bounds the tasks whose ancestors StepAncestorsHeld
// walks, in the writer's transaction, at a cost in the task's steps (a map
// of them, past 16): larger tasks (batches of many workers, each of whose
// starts would pay it) leave it to Store.StepAncestorResults, on a reader.
const maxHeldAncestorSteps = 256

// StepAncestorsHeld implements store.Tx, from the transaction's copy of
// the step's task, if it has one; nil for a task of more than
// maxHeldAncestorSteps steps. The results are copies: the cached rows'
// bytes are never handed out.
func (t *tx) StepAncestorsHeld(stepID uuid.UUID) map[string]json.RawMessage {
	if t.check("step ancestors held") != nil {
		return nil
	}
	for _, r := range t.rows {
		st := r.step(stepID)
		if st == nil {
			continue
		}
		if len(r.steps) > maxHeldAncestorSteps {
			return nil
		}
		find := r.step
		if len(r.steps) > 16 && len(st.DependsOn) > 0 {
			// One map for the walk rather than a scan per ancestor.
			byID := make(map[uuid.UUID]*taskertype.Step, len(r.steps))
			for _, s := range r.steps {
				byID[s.ID] = s
			}
			find = func(id uuid.UUID) *taskertype.Step { return byID[id] }
		}
		out := store.HeldAncestors(st, find)
		for name, v := range out {
			out[name] = cloneBytes(v)
		}
		return out
	}
	return nil
}

// MessageSend implements store.Tx: the message is written in this
// transaction, and the queue's subscribers are woken after the commit.
func (t *tx) MessageSend(ctx context.Context, p *queue.SendParams) error {
	if err := t.check("message send"); err != nil {
		return err
	}
	if _, err := t.s.q.SendTx(t.ctx, t, p); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	t.sent = append(t.sent, queue.SendParams{Queue: p.Queue, Delay: p.Delay})
	return nil
}

// Notify implements store.Tx: the subscribers are woken after the commit.
func (t *tx) Notify(ctx context.Context, name string) error {
	if err := t.check("notify"); err != nil {
		return err
	}
	t.sent = append(t.sent, queue.SendParams{Queue: name})
	return nil
}

// MessageClaim implements store.Tx: the co-located queue's claim, in this
// transaction.
func (t *tx) MessageClaim(ctx context.Context, p *queue.ClaimParams) ([]*queue.Message, error) {
	if err := t.check("message claim"); err != nil {
		return nil, err
	}
	msgs, err := t.s.q.ClaimTx(t.ctx, t, p)
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
	if err := t.s.q.AckTx(t.ctx, t, p); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
