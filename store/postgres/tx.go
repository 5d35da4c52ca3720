package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/queue"
	queuepg "github.com/tasker-go/tasker/queue/postgres"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// tx is a write transaction, pipelined on one connection (pgdb.Tx).
//
// It keeps the rows it holds, and only those: a task read with
// TaskGetForUpdate or moved by a compare-and-set, a step read with StepGet
// (FOR NO KEY UPDATE) or moved, the rows it created. No other transaction
// can change them until this one ends, so the compare-and-sets on them are
// decided here, without a round trip, and their writes are buffered until a
// statement of this transaction may read them: a step's until the next
// read of steps (StepList, StepInputs) or the commit, a task's until the
// commit (no statement of the transaction reads a held task's state). The
// tasks and steps created here are inserted then, as they are by then. So
// each row is written once between two reads of it, whatever the number of
// its hops, and the writes travel with a read or with the COMMIT.
//
// A transition of a row this transaction does not hold (a step or a task
// from a cache) is a compare-and-set sent at once: UPDATE … WHERE id = $1 AND
// state = $from, with the buffered writes, one round trip. When it changes
// no row, a second query tells the actual state, the call fails with a
// *taskertype.StaleStateError (or ErrNotFound), and the transaction goes on.
// When it succeeds, the transaction holds the row.
//
// The statements made as the calls come (messages sent and acknowledged,
// revision raises of tasks not held) go with the next round trip, whatever
// it is.
type tx struct {
	s    *Store
	t    *pgdb.Tx
	done bool

	tasks  map[uuid.UUID]*taskRow
	steps  map[uuid.UUID]*stepRow
	inputs map[uuid.UUID]taskInputs // what StepInputs needs of tasks read or created here
	// whole holds, for each task whose steps the transaction holds every
	// one of (read by Prefetch, or created here), those steps: StepList
	// answers from them.
	whole map[uuid.UUID][]*stepRow

	created  []*taskRow // to insert at the next round trip
	newSteps []*stepRow
	dirty    []*stepRow // held steps changed, to write at the next round trip

	trans  []transitionRow
	sent   []queue.SendParams // Queue and Delay only, for the wake-ups
	outbox []outgoing         // messages to insert at the next round trip
	// relayed: messages for the outbox (Config.Outbox), written at the
	// commit.
	relayed  []*queue.SendParams
	relayIDs []int64 // the outbox rows written, filled at the commit
	// leases: the store leases of attempts started here
	// (StepLeaseHold), written at the commit after the steps.
	leases []store.StepLeaseParams
}

// outgoing is a message sent in the transaction, not inserted yet.
type outgoing struct {
	queue string
	msg   queuepg.Outgoing
}

// taskRow is a task this transaction holds.
type taskRow struct {
	task     taskertype.Task // without Context
	inserted bool            // false while its INSERT waits for the next round trip
	dirty    bool            // changed since read: written at the commit
}

type stepMode int

const (
	stepClean  stepMode = iota
	stepInsert          // created here, not inserted yet
	stepDirty           // changed: written before the next read of steps
)

// stepRow is a step this transaction holds, DependsOn included.
type stepRow struct {
	step taskertype.Step
	mode stepMode
}

type transitionRow struct {
	taskID, stepID uuid.UUID
	from, to       string
	event          string
	at             time.Time
	processor      string
}

var _ store.Tx = (*tx)(nil)

// InTx implements store.Store. fn runs in a transaction on one pooled
// connection; its buffered writes, its transition records and the
// notifications of the messages it sent go with the COMMIT. On a
// serialization failure or a deadlock the transaction is rolled back and fn
// runs again, up to pgdb.MaxTxAttempts times. A panic in fn rolls back and
// goes on. The error of fn is returned as it is.
func (s *Store) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	if err := s.check("transaction"); err != nil {
		return err
	}
	var (
		last  *tx // the attempt running, or the last one
		fnErr error
	)
	defer func() { // also on a panic in fn
		if last != nil {
			last.done = true
		}
	}()
	err := s.db.InTx(ctx, func(t *pgdb.Tx) error {
		if last != nil {
			last.done = true // a retry: the previous attempt's Tx is dead
		}
		last = &tx{s: s, t: t}
		if fnErr = fn(last); fnErr != nil {
			return fnErr
		}
		last.prepareCommit()
		return nil
	})
	if err != nil {
		if fnErr == nil {
			err = fmt.Errorf("store: commit: %w", err)
		}
		return err
	}
	s.q.NotifySent(last.sent...)
	if len(last.relayed) > 0 {
		s.relay.handoff(job{ids: last.relayIDs, msgs: last.relayed})
	}
	return nil
}

func (x *tx) check(op string) error {
	if x.done {
		return fmt.Errorf("store: %s: %w: %w", op, errEnded, taskertype.ErrClosed)
	}
	return nil
}

func (x *tx) at(at time.Time) time.Time {
	if at.IsZero() {
		return x.s.clock.Now()
	}
	return at
}

// What a read needs written before it: the buffered writes of the rows it
// may read. The statements queued as they were made (messages, revision
// raises of tasks not held) go with every round trip.
type reads int

const (
	readsHeldNone reads = iota // no row this transaction holds: tasks not held, queues
	readsSteps                 // steps and task contexts: every buffered row
)

// query sends what s needs written before it, the queued statements and s,
// in one round trip.
func (x *tx) query(ctx context.Context, op string, r reads, s pgdb.Stmt) error {
	if r == readsSteps {
		x.flushRows()
	}
	x.flushSends()
	x.t.Add(s)
	if err := x.t.Send(ctx); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

// flushRows queues the writes of every row changed and not written yet:
// inserts first (steps need their task), then the updates. A step that
// moves several times between two reads of steps is written once.
func (x *tx) flushRows() {
	if len(x.created) > 0 {
		x.t.Add(insertTasks(x.created, x.inputs))
		for _, r := range x.created {
			r.inserted = true
		}
		x.created = x.created[:0]
	}
	if len(x.newSteps) > 0 {
		x.t.Add(insertSteps(x.newSteps))
		for _, r := range x.newSteps {
			r.mode = stepClean
		}
		x.newSteps = x.newSteps[:0]
	}
	switch len(x.dirty) {
	case 0:
	case 1:
		x.t.Add(updateStep(&x.dirty[0].step))
	default:
		x.t.Add(updateSteps(x.dirty))
	}
	for _, r := range x.dirty {
		r.mode = stepClean
	}
	x.dirty = x.dirty[:0]
}

// flushSends queues the inserts of the messages sent since the last round
// trip: one statement per queue, in the order they were sent.
func (x *tx) flushSends() {
	for len(x.outbox) > 0 {
		name := x.outbox[0].queue
		var msgs []queuepg.Outgoing
		rest := x.outbox[:0]
		for _, o := range x.outbox {
			if o.queue == name {
				msgs = append(msgs, o.msg)
			} else {
				rest = append(rest, o)
			}
		}
		x.outbox = rest
		x.t.Add(x.s.q.SendManyStmt(name, msgs))
	}
}

// prepareCommit queues what goes with the COMMIT: the buffered writes, the
// held tasks that changed, the transition records and the notifications.
func (x *tx) prepareCommit() {
	x.flushRows()
	x.flushSends()
	if len(x.leases) > 0 {
		x.t.Add(holdLeasesStmt(x.leases))
	}
	if len(x.relayed) > 0 {
		x.t.Add(insertOutbox(x.relayed, x.s.relay.cfg.Lease, &x.relayIDs))
	}
	var dirty []*taskertype.Task
	for _, r := range x.tasks {
		if r.dirty {
			dirty = append(dirty, &r.task)
			r.dirty = false
		}
	}
	if len(dirty) > 0 {
		x.t.Add(updateTasks(dirty))
	}
	if len(x.trans) > 0 {
		x.t.Add(insertTransitions(x.trans))
		x.trans = nil
	}
	var names []string
	for _, p := range x.sent {
		if p.Delay <= 0 {
			names = append(names, p.Queue)
		}
	}
	if names = dedupe(names); len(names) > 0 {
		x.t.Add(x.s.q.NotifyStmt(names))
	}
}

// TaskGetForUpdate implements store.Tx: SELECT … FOR NO KEY UPDATE, one round
// trip, or none for a task this transaction already holds. The task comes
// without its Context.
func (x *tx) TaskGetForUpdate(ctx context.Context, id uuid.UUID) (*taskertype.Task, error) {
	const op = "task get"
	if err := x.check(op); err != nil {
		return nil, err
	}
	if r := x.tasks[id]; r != nil {
		t := r.task
		return &t, nil
	}
	var task *taskertype.Task
	err := x.query(ctx, op, readsHeldNone, pgdb.Stmt{
		SQL:  `SELECT ` + taskCols + ` FROM tasks WHERE id = $1 FOR NO KEY UPDATE`,
		Args: []any{id},
		Row: func(row pgx.Row) (err error) {
			task, err = scanTask(row)
			if pgdb.IsNoRows(err) {
				return nil
			}
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	if task == nil {
		return nil, notFound(op, "task", id)
	}
	x.hold(&taskRow{task: *task, inserted: true})
	t := *task
	return &t, nil
}

func (x *tx) hold(r *taskRow) {
	if x.tasks == nil {
		x.tasks = make(map[uuid.UUID]*taskRow)
	}
	x.tasks[r.task.ID] = r
}

func (x *tx) holdStep(r *stepRow) {
	if x.steps == nil {
		x.steps = make(map[uuid.UUID]*stepRow)
	}
	x.steps[r.step.ID] = r
}

// TaskTransition implements store.Tx. On a task this transaction holds, the
// compare-and-set is decided here and the task is written at the commit;
// on another, it is an UPDATE … WHERE state = From sent at once (one round
// trip, with the buffered writes), after which the transaction holds it.
func (x *tx) TaskTransition(ctx context.Context, p *store.TaskTransitionParams) error {
	const op = "task transition"
	if err := x.check(op); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	at := x.at(p.At)
	var finished time.Time
	if p.To.Terminal() {
		finished = at
	}
	if r := x.tasks[p.ID]; r != nil {
		if r.task.State != p.From {
			return errStale(op, "task", p.ID, string(p.From), string(r.task.State))
		}
		r.task.State, r.task.UpdatedAt, r.task.FinishedAt = p.To, at, finished
		r.task.Revision++
		r.dirty = r.inserted
	} else if err := x.casTask(ctx, op, p, at, finished); err != nil {
		return err
	}
	x.trans = append(x.trans, transitionRow{taskID: p.ID, from: string(p.From), to: string(p.To),
		event: string(p.Event), at: at, processor: p.Processor})
	return nil
}

func (x *tx) casTask(ctx context.Context, op string, p *store.TaskTransitionParams, at, finished time.Time) error {
	var task *taskertype.Task
	err := x.query(ctx, op, readsHeldNone, pgdb.Stmt{
		SQL: `UPDATE tasks SET state = $3, updated_at = $4, finished_at = $5, revision = revision + 1
			WHERE id = $1 AND state = $2 RETURNING ` + taskCols,
		Args: []any{p.ID, string(p.From), string(p.To), at, nullTime(finished)},
		Row: func(row pgx.Row) (err error) {
			task, err = scanTask(row)
			if pgdb.IsNoRows(err) {
				return nil
			}
			return err
		},
	})
	if err != nil {
		return err
	}
	if task != nil {
		x.hold(&taskRow{task: *task, inserted: true})
		return nil
	}
	// Not moved: say why. The transaction goes on.
	var actual *string
	err = x.query(ctx, op, readsHeldNone, pgdb.Stmt{SQL: `SELECT state FROM tasks WHERE id = $1`, Args: []any{p.ID},
		Row: func(row pgx.Row) error {
			if err := row.Scan(&actual); err != nil && !pgdb.IsNoRows(err) {
				return err
			}
			return nil
		}})
	if err != nil {
		return err
	}
	if actual == nil {
		return notFound(op, "task", p.ID)
	}
	return errStale(op, "task", p.ID, string(p.From), *actual)
}

// StepGet implements store.Tx: SELECT … FOR NO KEY UPDATE, one round trip,
// or none for a step this transaction already holds. The step comes
// without its DependsOn.
func (x *tx) StepGet(ctx context.Context, id uuid.UUID) (*taskertype.Step, error) {
	const op = "step get"
	if err := x.check(op); err != nil {
		return nil, err
	}
	r, err := x.loadStep(ctx, op, id)
	if err != nil {
		return nil, err
	}
	return copyStep(&r.step, false), nil
}

// loadStep returns the row of a step, held from now on.
func (x *tx) loadStep(ctx context.Context, op string, id uuid.UUID) (*stepRow, error) {
	if r := x.steps[id]; r != nil {
		return r, nil
	}
	var st *taskertype.Step
	err := x.query(ctx, op, readsHeldNone, pgdb.Stmt{
		SQL:  `SELECT ` + stepCols + ` FROM steps WHERE id = $1 FOR NO KEY UPDATE`,
		Args: []any{id},
		Row: func(row pgx.Row) (err error) {
			st, err = scanStep(row)
			if pgdb.IsNoRows(err) {
				return nil
			}
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, notFound(op, "step", id)
	}
	r := &stepRow{step: *st}
	x.holdStep(r)
	return r, nil
}

// StepList implements store.Tx: none for a task whose steps this
// transaction holds, every one (see stepsHeld); otherwise one round trip
// (with the buffered writes), and the steps are not held. A task that does
// not exist has no steps.
func (x *tx) StepList(ctx context.Context, taskID uuid.UUID) ([]*taskertype.Step, error) {
	const op = "step list"
	if err := x.check(op); err != nil {
		return nil, err
	}
	if steps, ok := x.stepsHeld(taskID); ok {
		return steps, nil
	}
	var steps []*taskertype.Step
	err := x.query(ctx, op, readsSteps, pgdb.Stmt{SQL: stepListSQL, Args: []any{taskID},
		Query: func(rows pgx.Rows) (err error) {
			steps, err = readSteps(rows, taskID)
			return err
		}})
	if err != nil {
		return nil, err
	}
	return steps, nil
}

// StepTransition implements store.Tx. On a step this transaction holds, the
// compare-and-set is decided here; on another, it is checked by the
// database at the next round trip (see tx). It sets p.Step.UpdatedAt to
// p.At.
func (x *tx) StepTransition(ctx context.Context, p *store.StepTransitionParams) error {
	const op = "step transition"
	if err := x.check(op); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	st := p.Step
	at := x.at(p.At)
	st.UpdatedAt = at
	bump := taskertype.BumpsRevision(p.From, st.State)
	task := x.tasks[st.TaskID]
	if r := x.steps[st.ID]; r != nil {
		if r.step.TaskID != st.TaskID {
			return invalid(op, "step %s belongs to task %s, not %s", st.ID, r.step.TaskID, st.TaskID)
		}
		if r.step.State != p.From {
			return errStale(op, "step", st.ID, string(p.From), string(r.step.State))
		}
		if err := store.CheckAttempt(p, &r.step); err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
		setMutable(&r.step, st)
		if r.mode == stepClean {
			r.mode = stepDirty
			x.dirty = append(x.dirty, r)
		}
		if bump && task == nil {
			id := st.TaskID
			x.t.Add(pgdb.Stmt{SQL: `UPDATE tasks SET revision = revision + 1 WHERE id = $1`, Args: []any{id},
				Err: func(err error) error {
					return fmt.Errorf("step transition: raise the revision of task %s: %w", id, err)
				}})
		}
	} else if err := x.casStep(ctx, op, p, bump && task == nil); err != nil {
		return err
	}
	if bump && task != nil {
		task.task.Revision++
		task.dirty = task.inserted
	}
	x.trans = append(x.trans, transitionRow{taskID: st.TaskID, stepID: st.ID, from: string(p.From), to: string(st.State),
		event: string(p.Event), at: at, processor: p.Processor})
	return nil
}

// casStep moves a step this transaction does not hold: one statement,
// which also raises the task's revision when bumpTask is set, sent at once
// with the buffered writes. The step is held from then on.
func (x *tx) casStep(ctx context.Context, op string, p *store.StepTransitionParams, bumpTask bool) error {
	st := p.Step
	var moved *taskertype.Step
	err := x.query(ctx, op, readsHeldNone, casStepStmt(st, p.From, p.Attempt, bumpTask, func(row pgx.Row) (err error) {
		moved, err = scanStep(row)
		if pgdb.IsNoRows(err) {
			return nil
		}
		return err
	}))
	if err != nil {
		return err
	}
	if moved != nil {
		x.holdStep(&stepRow{step: *moved})
		return nil
	}
	// Not moved: say why. The transaction goes on.
	var (
		actual    *string
		taskID    uuid.UUID
		attemptID uuid.UUID
	)
	err = x.query(ctx, op, readsHeldNone, pgdb.Stmt{SQL: `SELECT state, task_id, attempt_id FROM steps WHERE id = $1`, Args: []any{st.ID},
		Row: func(row pgx.Row) error {
			if err := row.Scan(&actual, &taskID, &attemptID); err != nil && !pgdb.IsNoRows(err) {
				return err
			}
			return nil
		}})
	switch {
	case err != nil:
		return err
	case actual == nil:
		return notFound(op, "step", st.ID)
	case taskID != st.TaskID:
		return invalid(op, "step %s belongs to task %s, not %s", st.ID, taskID, st.TaskID)
	case *actual == string(p.From) && p.Attempt != uuid.Nil && attemptID != p.Attempt:
		return fmt.Errorf("store: %s: %w", op, store.AttemptMismatch(st.ID, p.From, p.Attempt, taskertype.StepState(*actual), attemptID))
	}
	return errStale(op, "step", st.ID, string(p.From), *actual)
}

// setMutable copies the fields a transition writes.
func setMutable(dst, src *taskertype.Step) {
	dst.State, dst.Attempts, dst.NextRetryAt, dst.Result = src.State, src.Attempts, src.NextRetryAt, src.Result
	dst.StartedAt, dst.FinishedAt, dst.UpdatedAt = src.StartedAt, src.FinishedAt, src.UpdatedAt
	dst.AttemptID = src.AttemptID
	dst.Failure = nil
	if src.Failure != nil {
		f := *src.Failure
		dst.Failure = &f
	}
}

// Prefetch implements store.Tx: one round trip that reads and locks the
// tasks not held yet (with the contexts asked for) and then all their
// steps, as TaskGetForUpdate and StepGet do. Tasks are locked in the order
// of their ids, before their steps. Rows held already are not read again
// and keep their changes.
func (x *tx) Prefetch(ctx context.Context, p *store.PrefetchParams) ([]uuid.UUID, error) {
	const op = "prefetch"
	if err := x.check(op); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, invalid(op, "no params")
	}
	var ids, withCtx []uuid.UUID
	for _, id := range p.ContextsOf {
		_, held := x.tasks[id]
		_, has := x.inputs[id]
		if !has {
			withCtx = append(withCtx, id)
		}
		if !held || !has {
			ids = append(ids, id)
		}
	}
	for _, id := range p.TaskIDs {
		if _, held := x.tasks[id]; !held {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	sortIDs(ids)
	ids = slices.Compact(ids)
	lock := "FOR NO KEY UPDATE"
	if p.SkipLocked {
		lock += " SKIP LOCKED"
	}
	x.t.Add(pgdb.Stmt{
		SQL: `SELECT ` + taskCols + `, CASE WHEN id = ANY($2) THEN context END,
				CASE WHEN id = ANY($2) THEN correlation_id END, CASE WHEN id = ANY($2) THEN parent_correlation_id END
			FROM tasks WHERE id = ANY($1) ORDER BY id ` + lock,
		Args: []any{ids, withCtx},
		Query: func(rows pgx.Rows) error {
			var (
				sc      taskScanner
				taskCtx []byte
				c       correlation // NULL reads as uuid.Nil (internal/pgdb's codec)
			)
			for rows.Next() {
				r := &taskRow{inserted: true}
				taskCtx, c = nil, correlation{}
				if err := sc.scan(rows, &r.task, &taskCtx, &c.id, &c.parent); err != nil {
					return err
				}
				t := &r.task
				if taskCtx != nil {
					x.keepInputs(t.ID, taskCtx, c)
				}
				if _, held := x.tasks[t.ID]; !held {
					x.hold(r)
				}
			}
			return rows.Err()
		},
	})
	tasks := `= ANY($1)`
	if p.SkipLocked {
		// The steps of the tasks the first statement took. One another
		// transaction let go of in between is taken here too; it is read
		// again if it is asked for.
		tasks = `IN (SELECT id FROM tasks WHERE id = ANY($1) ORDER BY id ` + lock + `)`
	}
	// The rows come by task: each task's steps are a run of all, cut
	// below (one slice for the lot, not one per task).
	var all []*stepRow
	err := x.query(ctx, op, readsHeldNone, pgdb.Stmt{
		SQL:  `SELECT ` + stepCols + ` FROM steps WHERE task_id ` + tasks + ` ORDER BY task_id, id FOR NO KEY UPDATE`,
		Args: []any{ids},
		Query: func(rows pgx.Rows) error {
			var sc stepScanner
			for rows.Next() {
				r := new(stepRow)
				if err := sc.scan(rows, &r.step); err != nil {
					return err
				}
				if held := x.steps[r.step.ID]; held != nil {
					r = held
				} else {
					x.holdStep(r)
				}
				all = append(all, r)
			}
			return rows.Err()
		},
	})
	if err != nil {
		return nil, err
	}
	read := make(map[uuid.UUID][]*stepRow, len(ids))
	for i := 0; i < len(all); {
		j, task := i+1, all[i].step.TaskID
		for j < len(all) && all[j].step.TaskID == task {
			j++
		}
		read[task] = all[i:j:j]
		i = j
	}
	var missed []uuid.UUID
	for _, id := range ids {
		if _, held := x.tasks[id]; !held {
			missed = append(missed, id)
			continue
		}
		// The task is locked, so no step of it can be deleted, and the
		// statement read every one it had.
		x.holdWhole(id, read[id])
	}
	return missed, nil
}

// StepInputs implements store.Tx: one round trip (with the buffered writes)
// that reads the task's context and the results of the step's
// dependencies, or none when this transaction created the task or read its
// context already and holds the step and its dependencies.
func (x *tx) StepInputs(ctx context.Context, stepID uuid.UUID) (*store.StepInputs, error) {
	const op = "step inputs"
	if err := x.check(op); err != nil {
		return nil, err
	}
	if in := x.inputsHeld(stepID); in != nil {
		return in, nil
	}
	var (
		taskID  *uuid.UUID
		taskCtx []byte
		results []byte
	)
	var corr, parent *uuid.UUID
	err := x.query(ctx, op, readsSteps, pgdb.Stmt{
		SQL: `SELECT s.task_id, t.context, t.correlation_id, t.parent_correlation_id,
				(SELECT json_object_agg(d.name, coalesce(d.result, 'null'::json)) FROM steps d WHERE d.id = ANY(s.depends_on))
			FROM steps s JOIN tasks t ON t.id = s.task_id WHERE s.id = $1`,
		Args: []any{stepID},
		Row: func(row pgx.Row) error {
			if err := row.Scan(&taskID, &taskCtx, &corr, &parent, &results); err != nil && !pgdb.IsNoRows(err) {
				return err
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	if taskID == nil {
		return nil, notFound(op, "step", stepID)
	}
	c := correlationOf(corr, parent)
	in := &store.StepInputs{Context: taskCtx, Results: map[string]json.RawMessage{},
		CorrelationID: c.id, ParentCorrelationID: c.parent}
	if results != nil {
		if err := json.Unmarshal(results, &in.Results); err != nil {
			return nil, fmt.Errorf("store: %s: step %s: results of its dependencies: %w", op, stepID, err)
		}
	}
	x.keepInputs(*taskID, taskCtx, c)
	return in, nil
}

// correlation is a task's correlation ids (uuid.Nil: none).
type correlation struct{ id, parent uuid.UUID }

// taskInputs is what StepInputs needs of a task: its context and
// correlation ids.
type taskInputs struct {
	context json.RawMessage
	corr    correlation
}

// correlationOf reads the nullable correlation columns.
func correlationOf(id, parent *uuid.UUID) correlation {
	var c correlation
	if id != nil {
		c.id = *id
	}
	if parent != nil {
		c.parent = *parent
	}
	return c
}

// keepInputs keeps what StepInputs needs of a task, read or created here:
// its context and correlation ids.
func (x *tx) keepInputs(taskID uuid.UUID, taskCtx json.RawMessage, c correlation) {
	if x.inputs == nil {
		x.inputs = make(map[uuid.UUID]taskInputs)
	}
	x.inputs[taskID] = taskInputs{context: taskCtx, corr: c}
}

// inputsHeld builds a step's inputs from what the transaction holds, or
// returns nil.
func (x *tx) inputsHeld(stepID uuid.UUID) *store.StepInputs {
	r := x.steps[stepID]
	if r == nil {
		return nil
	}
	ti, ok := x.inputs[r.step.TaskID]
	if !ok {
		return nil
	}
	in := &store.StepInputs{Context: ti.context, Results: make(map[string]json.RawMessage, len(r.step.DependsOn)),
		CorrelationID: ti.corr.id, ParentCorrelationID: ti.corr.parent}
	for _, dep := range r.step.DependsOn {
		d := x.steps[dep]
		if d == nil {
			return nil
		}
		result := d.step.Result
		if len(result) == 0 {
			result = json.RawMessage("null")
		}
		in.Results[d.step.Name] = result
	}
	return in
}

// StepAncestorsHeld implements store.Tx, from the rows the transaction
// holds (all of them when it read or created the task's steps).
func (x *tx) StepAncestorsHeld(stepID uuid.UUID) map[string]json.RawMessage {
	r := x.steps[stepID]
	if x.check("step ancestors held") != nil || r == nil {
		return nil
	}
	return store.HeldAncestors(&r.step, func(id uuid.UUID) *taskertype.Step {
		if h := x.steps[id]; h != nil {
			return &h.step
		}
		return nil
	})
}

// known makes sure the transaction may name queue name in a statement: a
// statement on a table that does not exist would abort the transaction.
// Unless this process has seen the queue, it costs a round trip.
func (x *tx) known(ctx context.Context, op, name string) (bool, error) {
	q := x.s.q
	if q.Known(name) {
		return true, nil
	}
	var found bool
	if err := x.query(ctx, op, readsHeldNone, q.LookupStmt(name, &found)); err != nil {
		return false, err
	}
	return found, nil
}

// MessageSend implements store.Tx: the INSERT is buffered, the other
// processes are notified at the commit, and this process's subscribers
// after it.
func (x *tx) MessageSend(ctx context.Context, p *queue.SendParams) error {
	const op = "message send"
	if err := x.check(op); err != nil {
		return err
	}
	if x.s.relay != nil {
		return x.relaySend(ctx, p)
	}
	msg, err := x.s.q.Outgoing(p)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if ok, err := x.known(ctx, op, p.Queue); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("store: %s: queue %q does not exist: call QueueEnsure first: %w", op, p.Queue, taskertype.ErrNotFound)
	}
	x.outbox = append(x.outbox, outgoing{queue: p.Queue, msg: msg})
	x.sent = append(x.sent, queue.SendParams{Queue: p.Queue, Delay: p.Delay})
	return nil
}

// Notify implements store.Tx: a pg_notify at the commit, with the sent
// messages' wake-ups, and this process's subscribers after it.
func (x *tx) Notify(ctx context.Context, name string) error {
	if err := x.check("notify"); err != nil {
		return err
	}
	if x.s.relay != nil {
		return fmt.Errorf("store: notify %s: the queue is a broker, reached through the outbox: %w", name, errors.ErrUnsupported)
	}
	x.sent = append(x.sent, queue.SendParams{Queue: name})
	return nil
}

// MessageClaim implements store.Tx: the co-located queue's claim, in this
// transaction (one round trip, with the buffered writes).
func (x *tx) MessageClaim(ctx context.Context, p *queue.ClaimParams) ([]*queue.Message, error) {
	const op = "message claim"
	if err := x.check(op); err != nil {
		return nil, err
	}
	if x.s.relay != nil {
		return nil, fmt.Errorf("store: %s: the queue is a broker, not in this database: claim through it: %w", op, errors.ErrUnsupported)
	}
	var msgs []*queue.Message
	stmt, err := x.s.q.ClaimStmt(p, &msgs)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if ok, err := x.known(ctx, op, p.Queue); err != nil || !ok {
		return nil, err
	}
	if err := x.query(ctx, op, readsHeldNone, stmt); err != nil {
		return nil, err
	}
	if len(msgs) < p.Max {
		// The claim drained the queue, so it took every message this
		// transaction sent there without delay: waking consumers for them
		// would only make them claim nothing.
		x.sent = slices.DeleteFunc(x.sent, func(s queue.SendParams) bool { return s.Queue == p.Queue && s.Delay <= 0 })
	}
	return msgs, nil
}

// MessageAck implements store.Tx: the co-located queue's acknowledgement,
// buffered until the next round trip.
func (x *tx) MessageAck(ctx context.Context, p *queue.AckParams) error {
	const op = "message ack"
	if err := x.check(op); err != nil {
		return err
	}
	if x.s.relay != nil {
		return fmt.Errorf("store: %s: the queue is a broker, not in this database: acknowledge through it: %w", op, errors.ErrUnsupported)
	}
	stmt, ok, err := x.s.q.AckStmt(p)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if !ok {
		return nil
	}
	if ok, err := x.known(ctx, op, p.Queue); err != nil || !ok {
		return err
	}
	x.t.Add(stmt)
	return nil
}
