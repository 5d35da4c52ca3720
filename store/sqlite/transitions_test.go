package sqlite_test

import (
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

// migrationsUpTo returns the store's migrations up to version n.
func migrationsUpTo(t *testing.T, n int) fs.FS {
	t.Helper()
	entries, err := fs.ReadDir(storesqlite.Migrations, ".")
	if err != nil {
		t.Fatal(err)
	}
	m := fstest.MapFS{}
	for _, e := range entries[:n] {
		b, err := fs.ReadFile(storesqlite.Migrations, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = &fstest.MapFile{Data: b}
	}
	return m
}

// openAtVersion opens a database at path with the store's migrations up to
// version n applied.
func openAtVersion(t *testing.T, path string, n int) *sqlitedb.DB {
	t.Helper()
	db, err := sqlitedb.Open(t.Context(), sqlitedb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(t.Context(), storesqlite.Component, migrationsUpTo(t, n)); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestMigrationPacksTheTransitionLogAndItGoesOn(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasker.db")
	// A database of the version before the packed log, with a task and
	// the log of its creation and start, one row a transition.
	db := openAtVersion(t, path, 3)
	taskID, stepID := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	us := at.UnixMicro()
	_, err := db.W.ExecContext(ctx, `INSERT INTO tasks (id, namespace, name, version, state, revision, context, created_at, updated_at)
		VALUES (?1, 'ns', 't', '1', 'initializing', 1, '{}', ?2, ?2)`, taskID.String(), us)
	if err == nil {
		_, err = db.W.ExecContext(ctx, `INSERT INTO transitions (task_id, seq, step_id, from_state, to_state, event, at, processor) VALUES
			(?1, 1, NULL, '', 'pending', 'create', ?3, 'old@host'),
			(?1, 2, ?2, '', 'pending', 'create', ?3, 'old@host'),
			(?1, 3, NULL, 'pending', 'initializing', 'start', ?3 + 1, 'old@host')`, taskID.String(), stepID.String(), us)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, path, nil)
	want := []taskertype.Transition{
		{ID: 1, TaskID: taskID, To: "pending", Event: "create", At: at, Processor: "old@host"},
		{ID: 2, TaskID: taskID, StepID: stepID, To: "pending", Event: "create", At: at, Processor: "old@host"},
		{ID: 3, TaskID: taskID, From: "pending", To: "initializing", Event: "start", At: at.Add(time.Microsecond), Processor: "old@host"},
	}
	checkLog(t, s, taskID, uuid.Nil, want)
	// The log goes on after the migrated rows: the store reads where it
	// ends from the packed rows.
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.TaskTransition(ctx, &store.TaskTransitionParams{ID: taskID, From: taskertype.TaskInitializing,
			To: taskertype.TaskEnqueuingSteps, Event: taskertype.TaskEventReadyStepsFound, At: at.Add(time.Second), Processor: "new@host"})
	})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, taskertype.Transition{ID: 4, TaskID: taskID, From: "initializing", To: "enqueuing_steps",
		Event: "ready_steps_found", At: at.Add(time.Second), Processor: "new@host"})
	checkLog(t, s, taskID, uuid.Nil, want)
	checkLog(t, s, taskID, stepID, want[1:2])
}

func TestTransitionsOfOneTransactionShareARowPerTaskAndProcessor(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasker.db")
	s := openStore(t, path, nil)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, b := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	stepOfA := &taskertype.Step{ID: uuid.Must(uuid.NewV7()), Name: "s", Handler: "h"}
	err := s.InTx(ctx, func(tx store.Tx) error {
		for _, id := range []uuid.UUID{a, b} {
			p := &store.TaskCreateParams{Task: &taskertype.Task{ID: id, Namespace: "ns", Name: "t", Version: "1"}, At: at, Processor: "one"}
			if id == a {
				p.Steps = []*taskertype.Step{stepOfA}
			}
			if err := tx.TaskCreate(ctx, p); err != nil {
				return err
			}
		}
		// Interleaved: a, b, a again by another processor, then a step of a.
		moves := []struct {
			id   uuid.UUID
			proc string
		}{{a, "one"}, {b, "one"}, {a, "two"}}
		from := map[uuid.UUID]taskertype.TaskState{a: taskertype.TaskPending, b: taskertype.TaskPending}
		for _, m := range moves {
			to, ev := taskertype.TaskInitializing, taskertype.TaskEventStart
			if from[m.id] == taskertype.TaskInitializing {
				to, ev = taskertype.TaskEnqueuingSteps, taskertype.TaskEventReadyStepsFound
			}
			if err := tx.TaskTransition(ctx, &store.TaskTransitionParams{ID: m.id, From: from[m.id], To: to, Event: ev,
				At: at.Add(time.Second), Processor: m.proc}); err != nil {
				return err
			}
			from[m.id] = to
		}
		stepOfA.State = taskertype.StepEnqueued
		return tx.StepTransition(ctx, &store.StepTransitionParams{Step: stepOfA, From: taskertype.StepPending,
			Event: taskertype.StepEventEnqueue, At: at.Add(2 * time.Second), Processor: "two"})
	})
	if err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, a, uuid.Nil, []taskertype.Transition{
		{ID: 1, TaskID: a, To: "pending", Event: "create", At: at, Processor: "one"},
		{ID: 2, TaskID: a, StepID: stepOfA.ID, To: "pending", Event: "create", At: at, Processor: "one"},
		{ID: 3, TaskID: a, From: "pending", To: "initializing", Event: "start", At: at.Add(time.Second), Processor: "one"},
		{ID: 4, TaskID: a, From: "initializing", To: "enqueuing_steps", Event: "ready_steps_found", At: at.Add(time.Second), Processor: "two"},
		{ID: 5, TaskID: a, StepID: stepOfA.ID, From: "pending", To: "enqueued", Event: "enqueue", At: at.Add(2 * time.Second), Processor: "two"},
	})
	checkLog(t, s, b, uuid.Nil, []taskertype.Transition{
		{ID: 1, TaskID: b, To: "pending", Event: "create", At: at, Processor: "one"},
		{ID: 2, TaskID: b, From: "pending", To: "initializing", Event: "start", At: at.Add(time.Second), Processor: "one"},
	})
	// Two rows for a (one per run of a processor), one for b.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sqlitedb.Open(ctx, sqlitedb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows []int
	for _, id := range []uuid.UUID{a, b} {
		var n int
		if err := db.R.QueryRowContext(ctx, `SELECT count(*) FROM transitions WHERE task_id = ?1`, id.String()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, n)
	}
	if !slices.Equal(rows, []int{2, 1}) {
		t.Errorf("log rows of the two tasks: %v, want [2 1]: one per task and processor in a transaction", rows)
	}
}

func checkLog(t *testing.T, s store.Store, taskID, stepID uuid.UUID, want []taskertype.Transition) {
	t.Helper()
	got, err := s.TransitionList(t.Context(), &store.TransitionListParams{TaskID: taskID, StepID: stepID})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d transitions, want %d: %v", len(got), len(want), got)
	}
	for i, g := range got {
		if *g != want[i] {
			t.Errorf("transition %d: %+v\nwant %+v", i, *g, want[i])
		}
	}
}

// The store keeps a task's steps in position order with the text of their
// IDs beside them: steps given out of order must still be written and
// logged under their own IDs.
func TestStepsGivenOutOfOrderAreWrittenUnderTheirOwnIDs(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, filepath.Join(t.TempDir(), "tasker.db"), nil)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	taskID := uuid.Must(uuid.NewV7())
	var steps []*taskertype.Step
	for _, pos := range []int{2, 0, 1} {
		steps = append(steps, &taskertype.Step{ID: uuid.Must(uuid.NewV7()), Name: "s" + string(rune('a'+pos)), Handler: "h", Position: pos})
	}
	enqueue := func(tx store.Tx, st *taskertype.Step) error {
		st.State = taskertype.StepEnqueued
		return tx.StepTransition(ctx, &store.StepTransitionParams{Step: st, From: taskertype.StepPending,
			Event: taskertype.StepEventEnqueue, At: at, Processor: "p"})
	}
	err := s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: &taskertype.Task{ID: taskID, Namespace: "ns", Name: "t", Version: "1"},
			Steps: steps, At: at, Processor: "p"}); err != nil {
			return err
		}
		return enqueue(tx, steps[0]) // position 2, listed first
	})
	if err == nil {
		err = s.InTx(ctx, func(tx store.Tx) error { return enqueue(tx, steps[1]) }) // position 0, from the cache
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.StepList(ctx, taskID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uuid.UUID]taskertype.StepState{steps[0].ID: taskertype.StepEnqueued, steps[1].ID: taskertype.StepEnqueued,
		steps[2].ID: taskertype.StepPending}
	for _, st := range got {
		if st.State != want[st.ID] {
			t.Errorf("step %s (position %d) is %s, want %s", st.Name, st.Position, st.State, want[st.ID])
		}
	}
	for _, st := range steps {
		log, err := s.TransitionList(ctx, &store.TransitionListParams{TaskID: taskID, StepID: st.ID})
		if err != nil {
			t.Fatal(err)
		}
		if n := 1 + btoi(want[st.ID] == taskertype.StepEnqueued); len(log) != n {
			t.Errorf("step %s: %d transitions logged, want %d", st.Name, len(log), n)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestMigrationKeepsTheLogInWriteOrder: migration 0009 moves the packed
// rows of an earlier database to the table kept in write order, each task's
// log unchanged and going on from where it ended (a new row numbered after
// the migrated ones), and the unique index on (task_id, seq) still refuses
// a second row of a task with the same seq.
func TestMigrationKeepsTheLogInWriteOrder(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasker.db")
	db := openAtVersion(t, path, 8)
	a, b, stepOfB := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	us := at.UnixMicro()
	for _, id := range []uuid.UUID{a, b} {
		if _, err := db.W.ExecContext(ctx, `INSERT INTO tasks (id, namespace, name, version, state, revision, context, created_at, updated_at)
			VALUES (?1, 'ns', 't', '1', 'initializing', 1, '{}', ?2, ?2)`, id.String(), us); err != nil {
			t.Fatal(err)
		}
	}
	// Inserted b's first row, then a's, then b's second (by another
	// processor): the migration numbers them in (task_id, seq) order,
	// since their write order is not known.
	if _, err := db.W.ExecContext(ctx, `INSERT INTO transitions (task_id, seq, processor, entries) VALUES
		(?2, 1, 'old@host', json_array(json_array(NULL, '', 'pending', 'create', ?4), json_array(?3, '', 'pending', 'create', ?4))),
		(?1, 1, 'old@host', json_array(json_array(NULL, '', 'pending', 'create', ?4))),
		(?2, 3, 'other@host', json_array(json_array(NULL, 'pending', 'initializing', 'start', ?4 + 1)))`,
		a.String(), b.String(), stepOfB.String(), us); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, path, nil)
	checkLog(t, s, a, uuid.Nil, []taskertype.Transition{
		{ID: 1, TaskID: a, To: "pending", Event: "create", At: at, Processor: "old@host"},
	})
	wantB := []taskertype.Transition{
		{ID: 1, TaskID: b, To: "pending", Event: "create", At: at, Processor: "old@host"},
		{ID: 2, TaskID: b, StepID: stepOfB, To: "pending", Event: "create", At: at, Processor: "old@host"},
		{ID: 3, TaskID: b, From: "pending", To: "initializing", Event: "start", At: at.Add(time.Microsecond), Processor: "other@host"},
	}
	checkLog(t, s, b, uuid.Nil, wantB)
	if err := s.InTx(ctx, func(tx store.Tx) error {
		return tx.TaskTransition(ctx, &store.TaskTransitionParams{ID: b, From: taskertype.TaskInitializing,
			To: taskertype.TaskEnqueuingSteps, Event: taskertype.TaskEventReadyStepsFound, At: at.Add(time.Second), Processor: "new@host"})
	}); err != nil {
		t.Fatal(err)
	}
	wantB = append(wantB, taskertype.Transition{ID: 4, TaskID: b, From: "initializing", To: "enqueuing_steps",
		Event: "ready_steps_found", At: at.Add(time.Second), Processor: "new@host"})
	checkLog(t, s, b, uuid.Nil, wantB)
	checkLog(t, s, b, stepOfB, wantB[1:2])

	// The table is kept in write order and a task's rows stay unique.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := sqlitedb.Open(ctx, sqlitedb.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	order := column(t, raw, `SELECT task_id || ':' || seq FROM transitions ORDER BY id`)
	want := []string{a.String() + ":1", b.String() + ":1", b.String() + ":3", b.String() + ":4"}
	if !slices.Equal(order, want) {
		t.Errorf("rows in write order %v, want %v", order, want)
	}
	// A task's rows are found through the index: task first, then seq.
	if cols := column(t, raw, `SELECT name FROM pragma_index_info('transitions_task') ORDER BY seqno`); !slices.Equal(cols, []string{"task_id", "seq"}) {
		t.Errorf("the index transitions_task is on %v, want [task_id seq]", cols)
	}
	_, err = raw.W.ExecContext(ctx, `INSERT INTO transitions (task_id, seq, processor, entries) VALUES (?1, 4, 'x', '[]')`, b.String())
	if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Errorf("a second row of task b with seq 4: %v, want a UNIQUE constraint failure", err)
	}
}

// column returns the one column of text that q reads on db's writer.
func column(t *testing.T, db *sqlitedb.DB, q string) []string {
	t.Helper()
	rows, err := db.W.QueryContext(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
