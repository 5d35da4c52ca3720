package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/maypok86/otter/v2"

	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/taskertype"
)

// taskRows is a task and its steps, as committed (in the store's row cache)
// or as a transaction sees them (in tx.rows).
//
// The embedded store is the only writer of its database: the process lock
// keeps every other process out, and every write goes through a transaction
// of this store. So the rows a committed transaction leaves behind can be
// kept in memory and are exact, not hints: the next transaction that touches
// the task starts from them instead of reading the database. A transaction
// works on its own copy, makes its compare-and-sets against it, writes each
// changed row once before its commit and, once committed, hands its copy to
// the cache. On the hot path (a step reports, its task moves on, the next
// step starts) that removes every read of a task and its steps from the
// transaction.
type taskRows struct {
	task  taskertype.Task    // Context included
	steps []*taskertype.Step // StepList order, DependsOn filled
	// The IDs as the columns hold them, made once per task rather than at
	// every write: text[0] is the task's, text[i+1] that of steps[i].
	text []string
	// seq is the number of the task's last transition in its log: -1 when
	// not known yet (the rows were read from the database), 0 for a task
	// created here.
	seq int64
	// indexed: the steps are committed and were put in the cache's step →
	// task index (the rows came from the cache), so the commit need not
	// set them again. The index may have evicted some since: loadStep
	// then reads the step's task from the database.
	indexed bool
	// finished: the task's finished_at column is not NULL, as last written.
	// While it stays NULL a write leaves the column out, so that the
	// partial index of unfinished tasks, which a statement that sets the
	// column rewrites even to the same value, is not written at every
	// state change (one WAL page of the 5.6 an outcome's commit wrote,
	// docs/benchmarks.md).
	finished bool
	// Changed here and not yet written, in a transaction's copy. A step in
	// stepsDirty is the transaction's own copy (see own).
	taskDirty  bool
	stepsDirty map[uuid.UUID]bool
}

// newTaskRows returns the rows of a task, with the text of its IDs.
func newTaskRows(task taskertype.Task, steps []*taskertype.Step, seq int64) *taskRows {
	text := make([]string, 1+len(steps))
	text[0] = task.ID.String()
	for i, s := range steps {
		text[i+1] = s.ID.String()
	}
	return &taskRows{task: task, steps: steps, text: text, seq: seq, finished: !task.FinishedAt.IsZero()}
}

// stepText returns the text of the ID of a step of the task.
func (r *taskRows) stepText(id uuid.UUID) string {
	for i, s := range r.steps {
		if s.ID == id {
			return r.text[i+1]
		}
	}
	return id.String()
}

func (r *taskRows) step(id uuid.UUID) *taskertype.Step {
	for _, s := range r.steps {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// clone copies r for a transaction. The steps are shared with r until the
// transaction changes one, which own copies first: a report transaction
// changes one or two of a task's steps. Byte slices (context, results) and
// dependency lists are never changed in place, so they are shared too.
func (r *taskRows) clone() *taskRows {
	return &taskRows{task: r.task, steps: slices.Clone(r.steps), text: r.text, seq: r.seq, indexed: true, finished: r.finished}
}

// own returns the step to change in place: st itself if this transaction
// changed it already (so it is the transaction's copy), else a copy that
// takes its place in r.steps.
func (r *taskRows) own(st *taskertype.Step) *taskertype.Step {
	if r.stepsDirty[st.ID] {
		return st
	}
	c := copyStep(st)
	for i, s := range r.steps {
		if s == st {
			r.steps[i] = c
		}
	}
	return c
}

func copyStep(s *taskertype.Step) *taskertype.Step {
	c := *s
	c.Result = cloneBytes(s.Result)
	if s.Failure != nil {
		f := *s.Failure
		c.Failure = &f
	}
	return &c
}

// Bounds of the row cache: the bytes of the tasks in it (contexts and
// results included), and the entries of the step → task index.
const (
	cachedBytes = 64 << 20
	cachedSteps = 65536
)

// weight estimates the memory a task's rows hold.
func weight(_ uuid.UUID, r *taskRows) uint32 {
	w := 512 + len(r.task.Context)
	for _, s := range r.steps {
		w += 256 + len(s.Result)
	}
	return uint32(min(w, 1<<31))
}

// rowCache holds the committed rows of recently touched tasks. Finished tasks
// leave it at once; the bounds evict the rest, which are then read again.
type rowCache struct {
	tasks    *otter.Cache[uuid.UUID, *taskRows]
	stepTask *otter.Cache[uuid.UUID, uuid.UUID]
}

func newRowCache() *rowCache {
	return &rowCache{
		tasks:    otter.Must(&otter.Options[uuid.UUID, *taskRows]{MaximumWeight: cachedBytes, Weigher: weight}),
		stepTask: otter.Must(&otter.Options[uuid.UUID, uuid.UUID]{MaximumSize: cachedSteps}),
	}
}

// commit stores a committed transaction's rows.
func (c *rowCache) commit(rows map[uuid.UUID]*taskRows) {
	for id, r := range rows {
		if r.task.State.Terminal() {
			c.tasks.Invalidate(id)
			for _, s := range r.steps {
				c.stepTask.Invalidate(s.ID)
			}
			continue
		}
		r.taskDirty, r.stepsDirty = false, nil
		c.tasks.Set(id, r)
		if !r.indexed {
			for _, s := range r.steps {
				c.stepTask.Set(s.ID, id)
			}
			r.indexed = true
		}
	}
}

// keep makes rows part of this transaction.
func (t *tx) keep(r *taskRows) {
	if t.rows == nil {
		t.rows = make(map[uuid.UUID]*taskRows)
	}
	t.rows[r.task.ID] = r
	t.unindexed(r)
}

// unindexed records the steps of r, a task of this transaction, for
// loadStep, if the cache's step → task index does not hold them (rows read
// from the database, steps created here).
func (t *tx) unindexed(r *taskRows) {
	if r.indexed {
		return
	}
	if t.stepRows == nil {
		t.stepRows = make(map[uuid.UUID]*taskRows, len(r.steps))
	}
	for _, st := range r.steps {
		t.stepRows[st.ID] = r
	}
}

// load returns this transaction's copy of a task's rows: from the
// transaction, the cache, or the database. A task that does not exist is an
// error wrapping taskertype.ErrNotFound.
func (t *tx) load(id uuid.UUID) (*taskRows, error) {
	if r := t.rows[id]; r != nil {
		return r, nil
	}
	if r, ok := t.s.rows.tasks.GetIfPresent(id); ok {
		c := r.clone()
		t.keep(c)
		return c, nil
	}
	task, err := getTask(t.ctx, t.stmt(t.s.w.taskGet), "task get", id)
	if err != nil {
		return nil, err
	}
	steps, err := listSteps(t.ctx, t.stmt(t.s.w.stepList), id)
	if err != nil {
		return nil, err
	}
	r := newTaskRows(*task, steps, -1)
	t.keep(r)
	return r, nil
}

// loadStep returns the rows of the task a step belongs to, and the step.
// The step's task comes from the steps of this transaction's tasks that the
// cache's step → task index does not hold (tx.stepRows: of tasks read from
// the database, or created here), else from that index (a step never
// changes task), else from the database. A walk of the transaction's tasks
// for each step, as before, cost a tenth of the CPU of a drain at a worker
// concurrency of 2,000, whose transactions store hundreds of outcomes
// (docs/benchmarks.md, "a step's task without a walk").
func (t *tx) loadStep(op string, id uuid.UUID) (*taskRows, *taskertype.Step, error) {
	if r := t.stepRows[id]; r != nil {
		if st := r.step(id); st != nil {
			return r, st, nil
		}
	}
	taskID, ok := t.s.rows.stepTask.GetIfPresent(id)
	if !ok {
		var s string
		err := t.stmt(t.s.w.stepTask).QueryRowContext(t.ctx, id.String()).Scan(&s)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil, notFound(op, "step", id)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("store: %s: step %s: %w", op, id, err)
		}
		if taskID, err = uuid.Parse(s); err != nil {
			return nil, nil, fmt.Errorf("store: %s: step %s: task id %q: %w", op, id, s, err)
		}
		// It never changes: the index may have it at once (its entry
		// was evicted while the task stayed in the cache). A step this
		// transaction inserted is in stepRows, looked at first, so an
		// entry that a rollback leaves behind never hides a step created
		// later under the same ID.
		t.s.rows.stepTask.Set(id, taskID)
	}
	r, err := t.load(taskID)
	if errors.Is(err, taskertype.ErrNotFound) {
		return nil, nil, notFound(op, "step", id)
	}
	if err != nil {
		return nil, nil, err
	}
	st := r.step(id)
	if st == nil {
		return nil, nil, notFound(op, "step", id)
	}
	return r, st, nil
}

// flushRows writes the rows this transaction changed, each once.
func (t *tx) flushRows() error {
	for _, r := range t.rows {
		for i, st := range r.steps {
			if !r.stepsDirty[st.ID] {
				continue
			}
			failure, err := failureJSON(st)
			if err != nil {
				return err
			}
			if _, err := t.stmt(t.s.w.stepSet).ExecContext(t.ctx, r.text[i+1], string(st.State), st.Attempts,
				nullMicros(st.NextRetryAt), nullBytes(st.Result), failure,
				nullMicros(st.StartedAt), nullMicros(st.FinishedAt), micros(st.UpdatedAt), nullID(st.AttemptID)); err != nil {
				return fmt.Errorf("store: step transition: step %s: %w", st.ID, err)
			}
		}
		if r.taskDirty {
			var err error
			if finished := !r.task.FinishedAt.IsZero(); finished || r.finished {
				_, err = t.stmt(t.s.w.taskSetState).ExecContext(t.ctx, r.text[0], string(r.task.State),
					micros(r.task.UpdatedAt), nullMicros(r.task.FinishedAt), r.task.Revision)
				r.finished = finished
			} else {
				_, err = t.stmt(t.s.w.taskSetOpen).ExecContext(t.ctx, r.text[0], string(r.task.State),
					micros(r.task.UpdatedAt), r.task.Revision)
			}
			if err != nil {
				return fmt.Errorf("store: task transition: task %s: %w", r.text[0], err)
			}
		}
	}
	return nil
}

// withDeps returns a copy of a step with its dependencies, or without.
func withDeps(s *taskertype.Step, deps bool) *taskertype.Step {
	c := copyStep(s)
	if deps {
		c.DependsOn = slices.Clone(s.DependsOn)
	} else {
		c.DependsOn = nil
	}
	return c
}

// nullID stores the nil UUID as NULL.
func nullID(id uuid.UUID) any {
	if id == uuid.Nil {
		return nil
	}
	return id.String()
}

func micros(t time.Time) int64   { return sqlitedb.Micros(t) }
func nullMicros(t time.Time) any { return sqlitedb.NullMicros(t) }

// stored is t as the database keeps it: UTC microseconds, no monotonic
// reading. Values enter the cache in this form, so that a row reads the same
// whether it comes from the cache or from the database.
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return sqlitedb.Time(sqlitedb.Micros(t))
}

// cloneBytes copies a JSON value entering or leaving the cache: callers and
// handlers may reuse or change their slices.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return slices.Clone(b)
}
