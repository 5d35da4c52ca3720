package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/store"
	storepg "github.com/tasker-go/tasker/store/postgres"
	"github.com/tasker-go/tasker/store/storetest"
	"github.com/tasker-go/tasker/taskertype"
)

// The log keeps one row per task and transaction (migration 0008): the
// transitions read back one by one, numbered in order, whatever the row
// that holds them; a row of more than 1,024 transitions is split; rows
// written before the migration, one transition each, read as they were.
func TestTransitionLogIsPacked(t *testing.T) {
	ctx := t.Context()
	s, clock, conn := packedEnv(t)
	rowsOf := func(task uuid.UUID) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM transitions WHERE task_id = $1`, task).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	list := func(task uuid.UUID, after int64) []*taskertype.Transition {
		t.Helper()
		ts, err := s.TransitionList(ctx, &store.TransitionListParams{TaskID: task, After: after})
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}

	// Two tasks in one transaction: a row each, of its three transitions.
	t1, s1 := newTask(t)
	t2, s2 := newTask(t)
	inTx(t, s, func(tx store.Tx) error {
		if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: t1, Steps: s1, At: clock.Now(), Processor: "p"}); err != nil {
			return err
		}
		return tx.TaskCreate(ctx, &store.TaskCreateParams{Task: t2, Steps: s2, At: clock.Now(), Processor: "p"})
	})
	for _, task := range []uuid.UUID{t1.ID, t2.ID} {
		if n := rowsOf(task); n != 1 {
			t.Fatalf("task %s: %d rows of log, want 1", task, n)
		}
		ts := list(task, 0)
		if len(ts) != 3 || ts[0].StepID != uuid.Nil || ts[0].To != string(taskertype.TaskPending) ||
			ts[1].StepID != s1[0].ID && ts[1].StepID != s2[0].ID || ts[2].To != string(taskertype.StepPending) {
			t.Fatalf("task %s: log %s, want the task's creation then its two steps'", task, fmtLog(ts))
		}
		for i := 1; i < len(ts); i++ {
			if ts[i].ID != ts[i-1].ID+1 || ts[i].Processor != "p" || !ts[i].At.Equal(clock.Now().Truncate(time.Microsecond)) {
				t.Fatalf("task %s: transition %d: %+v after %+v", task, i, ts[i], ts[i-1])
			}
		}
		if after := list(task, ts[0].ID); len(after) != 2 || after[0].ID != ts[1].ID {
			t.Fatalf("task %s: after its first transition: %s", task, fmtLog(after))
		}
		step, err := s.TransitionList(ctx, &store.TransitionListParams{TaskID: task, StepID: ts[2].StepID})
		if err != nil || len(step) != 1 || step[0].ID != ts[2].ID {
			t.Fatalf("task %s: the second step's log: %s, %v", task, fmtLog(step), err)
		}
	}

	// A row as written before the migration: one transition, no more.
	var legacy int64
	if err := conn.QueryRow(ctx, `INSERT INTO transitions (task_id, step_id, from_state, to_state, event, at, processor)
		VALUES ($1, $2, 'pending', 'in_progress', 'start', $3, 'old') RETURNING id`, t1.ID, uuid.Nil, clock.Now()).Scan(&legacy); err != nil {
		t.Fatal(err)
	}
	if ts := list(t1.ID, 0); len(ts) != 4 || ts[3].ID != legacy || ts[3].Processor != "old" {
		t.Fatalf("a row without more: log %s", fmtLog(ts))
	}

	// 1,100 steps in one transaction: 1,101 transitions in two rows.
	big := &taskertype.Task{ID: uuid.Must(uuid.NewV7()), Namespace: "ns", Name: "big", Version: "1", Context: []byte(`{}`)}
	var steps []*taskertype.Step
	for i := range 1100 {
		steps = append(steps, &taskertype.Step{ID: uuid.Must(uuid.NewV7()), Name: fmt.Sprint("s", i), Handler: "h", Position: i,
			Retry: s1[0].Retry, Timeout: time.Minute})
	}
	inTx(t, s, func(tx store.Tx) error {
		return tx.TaskCreate(ctx, &store.TaskCreateParams{Task: big, Steps: steps, At: clock.Now(), Processor: "p"})
	})
	if n := rowsOf(big.ID); n != 2 {
		t.Fatalf("1,101 transitions in %d rows, want 2", n)
	}
	ts := list(big.ID, 0)
	if len(ts) != 1101 {
		t.Fatalf("%d transitions of the big task, want 1,101", len(ts))
	}
	for i := 1; i < len(ts); i++ {
		if ts[i].ID <= ts[i-1].ID || ts[i].StepID != steps[i-1].ID {
			t.Fatalf("transition %d of the big task: id %d after %d, step %s, want step %s", i, ts[i].ID, ts[i-1].ID, ts[i].StepID, steps[i-1].ID)
		}
	}
	if after := list(big.ID, ts[1023].ID); len(after) != 1101-1024 || after[0].ID != ts[1024].ID {
		t.Fatalf("after the first row's last transition: %d transitions, want %d", len(after), 1101-1024)
	}
	if after := list(big.ID, ts[500].ID); len(after) != 600 || after[0].ID != ts[501].ID {
		t.Fatalf("after a transition inside the first row: %d transitions, want 600", len(after))
	}

	// docs/postgres.md's query of the packed log reads the same log.
	rows, err := conn.Query(ctx, `SELECT t.id, t.step_id, t.from_state, t.to_state, t.event, t.at, t.processor FROM transitions t WHERE t.task_id = $1
UNION ALL
SELECT t.id + j.n, coalesce((j.e ->> 's')::uuid, '00000000-0000-0000-0000-000000000000'), j.e ->> 'f', j.e ->> 't', j.e ->> 'e',
       'epoch'::timestamptz + (j.e ->> 'a')::bigint * interval '1 microsecond', t.processor
FROM transitions t, json_array_elements(t.more) WITH ORDINALITY AS j(e, n) WHERE t.task_id = $1
ORDER BY 1`, t1.ID)
	if err != nil {
		t.Fatal(err)
	}
	var bySQL []taskertype.Transition
	for rows.Next() {
		var tr taskertype.Transition
		if err := rows.Scan(&tr.ID, &tr.StepID, &tr.From, &tr.To, &tr.Event, &tr.At, &tr.Processor); err != nil {
			t.Fatal(err)
		}
		bySQL = append(bySQL, tr)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := list(t1.ID, 0)
	if len(bySQL) != len(want) {
		t.Fatalf("the documented query reads %d transitions, TransitionList %d", len(bySQL), len(want))
	}
	for i, w := range want {
		g := bySQL[i]
		if g.ID != w.ID || g.StepID != w.StepID || g.From != w.From || g.To != w.To || g.Event != w.Event || !g.At.Equal(w.At) || g.Processor != w.Processor {
			t.Errorf("the documented query's transition %d: %+v, want %+v", i, g, *w)
		}
	}
}

// packedEnv is a store on a fresh schema, its clock, and a connection of
// its own to the same schema, for the SQL the store does not offer.
func packedEnv(t *testing.T) (*storepg.Store, *testclock.Clock, *pgx.Conn) {
	t.Helper()
	_, dbURL := pgtest.Schema(t)
	clock := testclock.New(storetest.Start)
	s := openStore(t, dbURL, clock)
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return s, clock, conn
}

func fmtLog(ts []*taskertype.Transition) string {
	out := ""
	for _, tr := range ts {
		out += fmt.Sprintf("[%d %s %s→%s %s] ", tr.ID, tr.StepID, tr.From, tr.To, tr.Event)
	}
	return out
}

// The migration's boundary: rows numbered one by one before it (as an
// earlier version wrote them) and packed rows after, in one task's log,
// read in order, the After cursor across the boundary included. And a
// transaction whose transitions of one task change processor (A, B, A)
// writes a row per run, in order.
func TestTransitionLogAcrossTheMigrationAndProcessors(t *testing.T) {
	ctx := t.Context()
	s, clock, conn := packedEnv(t)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	task, steps := newTask(t)
	// Rows as an earlier version wrote them, before migration 0008: the
	// sequence stepping by 1, then the migration's step.
	exec(`ALTER TABLE transitions ALTER COLUMN id SET INCREMENT BY 1`)
	for range 3 {
		exec(`INSERT INTO transitions (task_id, step_id, from_state, to_state, event, at, processor)
			VALUES ($1, $2, 'pending', 'pending', 'noop', $3, 'old')`, task.ID, uuid.Nil, clock.Now())
	}
	exec(`ALTER TABLE transitions ALTER COLUMN id SET INCREMENT BY 1024`)
	inTx(t, s, func(tx store.Tx) error {
		return tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: steps, At: clock.Now(), Processor: "new"})
	})
	// A transaction whose processor changes twice.
	inTx(t, s, func(tx store.Tx) error {
		a, err := tx.StepGet(ctx, steps[0].ID)
		if err != nil {
			return err
		}
		for i, proc := range []string{"A", "B", "A"} {
			from := a.State
			ev := []taskertype.StepEvent{taskertype.StepEventEnqueue, taskertype.StepEventStart, taskertype.StepEventSucceed}[i]
			to, err := taskertype.NextStepState(from, ev)
			if err != nil {
				return err
			}
			a.State = to
			if err := tx.StepTransition(ctx, &store.StepTransitionParams{Step: a, From: from, Event: ev, At: clock.Now(), Processor: proc}); err != nil {
				return err
			}
		}
		return nil
	})
	ts, err := s.TransitionList(ctx, &store.TransitionListParams{TaskID: task.ID})
	if err != nil {
		t.Fatal(err)
	}
	var procs []string
	for i, tr := range ts {
		procs = append(procs, tr.Processor)
		if i > 0 && tr.ID <= ts[i-1].ID {
			t.Fatalf("transition %d: id %d after %d: %s", i, tr.ID, ts[i-1].ID, fmtLog(ts))
		}
	}
	if want := []string{"old", "old", "old", "new", "new", "new", "A", "B", "A"}; !slices.Equal(procs, want) {
		t.Fatalf("processors in the log: %v, want %v", procs, want)
	}
	if ts[3].ID-ts[2].ID < maxRun {
		t.Errorf("the first packed row after the migration is %d, %d after the last row before it: want at least %d", ts[3].ID, ts[3].ID-ts[2].ID, maxRun)
	}
	var rows int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM transitions WHERE task_id = $1 AND processor IN ('A', 'B')`, task.ID).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 3 {
		t.Errorf("the A, B, A transaction wrote %d rows, want 3 (a row per run of one processor)", rows)
	}
	for i := range ts {
		after, err := s.TransitionList(ctx, &store.TransitionListParams{TaskID: task.ID, After: ts[i].ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(ts)-i-1 || len(after) > 0 && after[0].ID != ts[i+1].ID {
			t.Errorf("after transition %d (id %d): %s, want the %d after it", i, ts[i].ID, fmtLog(after), len(ts)-i-1)
		}
		step, err := s.TransitionList(ctx, &store.TransitionListParams{TaskID: task.ID, StepID: steps[0].ID, After: ts[i].ID})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, tr := range ts[i+1:] {
			if tr.StepID == steps[0].ID {
				n++
			}
		}
		if len(step) != n {
			t.Errorf("step a's transitions after id %d: %s, want %d", ts[i].ID, fmtLog(step), n)
		}
	}
}

// maxRun is the identity's step (migration 0008).
const maxRun = 1024

// The scanners refuse an infinite time, as pgx did for a *time.Time:
// StepGet, StepList and the Prefetch all fail, naming the column, rather
// than reading it as "not set".
func TestScannersRefuseInfiniteTimes(t *testing.T) {
	ctx := t.Context()
	s, clock, conn := packedEnv(t)
	task, steps := newTask(t)
	inTx(t, s, func(tx store.Tx) error {
		return tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: steps, At: clock.Now(), Processor: "p"})
	})
	if _, err := conn.Exec(ctx, `UPDATE steps SET next_retry_at = 'infinity' WHERE id = $1`, steps[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StepList(ctx, task.ID); err == nil || !strings.Contains(err.Error(), "next_retry_at") {
		t.Fatalf("StepList: %v, want an error naming next_retry_at", err)
	}
	err := s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.StepGet(ctx, steps[0].ID)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "next_retry_at") {
		t.Fatalf("StepGet: %v, want an error naming next_retry_at", err)
	}
	err = s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.Prefetch(ctx, &store.PrefetchParams{TaskIDs: []uuid.UUID{task.ID}})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "next_retry_at") {
		t.Fatalf("Prefetch: %v, want an error naming next_retry_at", err)
	}
	if _, err := conn.Exec(ctx, `UPDATE steps SET next_retry_at = NULL WHERE id = $1`, steps[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE tasks SET finished_at = '-infinity' WHERE id = $1`, task.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StepList(ctx, task.ID); err != nil {
		t.Fatalf("StepList with finite times: %v", err)
	}
	if _, err := s.TaskGet(ctx, task.ID); err == nil {
		t.Fatal("TaskGet of a task finished at -infinity: no error")
	}
}
