package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/store"
	storepg "github.com/tasker-go/tasker/store/postgres"
	"github.com/tasker-go/tasker/store/storetest"
	"github.com/tasker-go/tasker/taskertype"
)

// openTaskIDs is the table of unfinished tasks (migration 0010), sorted.
func openTaskIDs(t *testing.T, conn *pgx.Conn) []uuid.UUID {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT task_id FROM open_tasks ORDER BY task_id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func sortedIDs(ids ...uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return out
}

// The table of unfinished tasks follows them through every writer: the
// store's creations and transitions (a finish leaves it, a reset comes
// back), and SQL of its own (a delete). The readers that look for
// unfinished tasks read through it.
func TestOpenTasksFollowTheirTasks(t *testing.T) {
	ctx := t.Context()
	s, clock, conn := packedEnv(t)
	done, _ := newTask(t)
	failed, _ := newTask(t)
	deleted, _ := newTask(t)
	inTx(t, s, func(tx store.Tx) error {
		for _, task := range []*taskertype.Task{done, failed, deleted} {
			_, steps := newTask(t)
			for _, st := range steps {
				st.TaskID = task.ID
			}
			if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: steps, At: clock.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	if got, want := openTaskIDs(t, conn), sortedIDs(done.ID, failed.ID, deleted.ID); !slices.Equal(got, want) {
		t.Fatalf("after the creations: open %v, want %v", got, want)
	}
	var created time.Time
	if err := conn.QueryRow(ctx, `SELECT task_created_at FROM open_tasks WHERE task_id = $1`, done.ID).Scan(&created); err != nil ||
		!created.Equal(clock.Now().Truncate(time.Microsecond)) {
		t.Fatalf("an open task's creation time: %v (%v), want %v", created, err, clock.Now())
	}

	move := func(id uuid.UUID, hops ...taskertype.TaskEvent) {
		t.Helper()
		inTx(t, s, func(tx store.Tx) error {
			task, err := tx.TaskGetForUpdate(ctx, id)
			if err != nil {
				return err
			}
			from := task.State
			for _, ev := range hops {
				to, err := taskertype.NextTaskState(from, ev)
				if err != nil {
					return err
				}
				if err := tx.TaskTransition(ctx, &store.TaskTransitionParams{ID: id, From: from, To: to, Event: ev, At: clock.Now()}); err != nil {
					return err
				}
				from = to
			}
			return nil
		})
	}
	move(done.ID, taskertype.TaskEventStart, taskertype.TaskEventAllStepsComplete)
	move(failed.ID, taskertype.TaskEventStart, taskertype.TaskEventReadyStepsFound, taskertype.TaskEventEnqueueFailed)
	if got, want := openTaskIDs(t, conn), sortedIDs(deleted.ID); !slices.Equal(got, want) {
		t.Fatalf("after a finish and a failure: open %v, want %v", got, want)
	}
	stale, err := s.TaskStaleTemplates(ctx, &store.TaskStaleTemplatesParams{
		States: []taskertype.TaskState{taskertype.TaskPending}, EnteredBefore: clock.Now().Add(time.Hour),
		CreatedBefore: clock.Now().Add(time.Hour), Limit: 10})
	if err != nil || len(stale) != 1 || stale[0].Namespace != "ns" {
		t.Fatalf("the templates of unfinished tasks: %+v, %v; want the one of the pending task", stale, err)
	}

	move(failed.ID, taskertype.TaskEventReset)
	if _, err := conn.Exec(ctx, `DELETE FROM tasks WHERE id = $1`, deleted.ID); err != nil {
		t.Fatal(err)
	}
	if got, want := openTaskIDs(t, conn), sortedIDs(failed.ID); !slices.Equal(got, want) {
		t.Fatalf("after a reset and a delete: open %v, want %v", got, want)
	}
	list, err := s.TaskList(ctx, &store.TaskListParams{States: []taskertype.TaskState{taskertype.TaskPending, taskertype.TaskInitializing}})
	if err != nil || len(list) != 1 || list[0].ID != failed.ID {
		t.Fatalf("the unfinished tasks listed: %v, %v; want the reset one", list, err)
	}
	n, err := s.TaskCount(ctx, &store.TaskListParams{States: []taskertype.TaskState{taskertype.TaskPending}})
	if err != nil || n != 1 {
		t.Fatalf("the pending tasks counted: %d, %v; want 1", n, err)
	}
}

// A task's updates are HOT, its finish included, and so are its steps':
// no index gets an entry for a new row version (migration 0010). Before
// it, the finish set finished_at, the predicate of a partial index, and
// the drains of issue 9 found half of the steps' updates without room on
// their page. The counts are the server's statistics, which a backend
// sends when it exits: the store runs on connections of its own, closed
// before they are read.
func TestTaskAndStepUpdatesAreHOT(t *testing.T) {
	ctx := t.Context()
	schema, dbURL := pgtest.Schema(t)
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	app := "tasker_hot_" + hex.EncodeToString(b[:])
	clock := testclock.New(storetest.Start)
	s, err := storepg.Open(ctx, storepg.Config{URL: dbURL + "&application_name=" + app, Clock: clock, AutoMigrate: true, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	const tasks = 20
	for range tasks {
		task, steps := newTask(t)
		for _, st := range steps {
			st.TaskID = task.ID
		}
		a := steps[0]
		step := func(tx store.Tx, from taskertype.StepState, ev taskertype.StepEvent) error {
			to, err := taskertype.NextStepState(from, ev)
			if err != nil {
				return err
			}
			a.State, a.UpdatedAt = to, clock.Now()
			return tx.StepTransition(ctx, &store.StepTransitionParams{Step: a, From: from, Event: ev, At: clock.Now()})
		}
		hop := func(tx store.Tx, from taskertype.TaskState, ev taskertype.TaskEvent) error {
			to, err := taskertype.NextTaskState(from, ev)
			if err != nil {
				return err
			}
			return tx.TaskTransition(ctx, &store.TaskTransitionParams{ID: task.ID, From: from, To: to, Event: ev, At: clock.Now()})
		}
		for i, fn := range []func(tx store.Tx) error{
			func(tx store.Tx) error {
				return tx.TaskCreate(ctx, &store.TaskCreateParams{Task: task, Steps: steps, At: clock.Now()})
			},
			func(tx store.Tx) error {
				if err := hop(tx, taskertype.TaskPending, taskertype.TaskEventStart); err != nil {
					return err
				}
				return step(tx, taskertype.StepPending, taskertype.StepEventEnqueue)
			},
			func(tx store.Tx) error {
				a.Attempts, a.AttemptID, a.StartedAt = 1, uuid.Must(uuid.NewV7()), clock.Now()
				return step(tx, taskertype.StepEnqueued, taskertype.StepEventStart)
			},
			func(tx store.Tx) error {
				a.Result, a.FinishedAt = json.RawMessage(`{"done": true, "rows": [1, 2, 3]}`), clock.Now()
				if err := step(tx, taskertype.StepInProgress, taskertype.StepEventSucceed); err != nil {
					return err
				}
				return hop(tx, taskertype.TaskInitializing, taskertype.TaskEventAllStepsComplete)
			},
		} {
			clock.Advance(time.Millisecond)
			if err := s.InTx(ctx, fn); err != nil {
				t.Fatalf("transaction %d: %v", i, err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends of the store still run 20 s after its Close", n)
		}
	}
	for _, table := range []string{"tasks", "steps"} {
		var upd, hot int64
		if err := conn.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2`,
			schema, table).Scan(&upd, &hot); err != nil {
			t.Fatal(err)
		}
		if upd < 2*tasks || hot != upd {
			t.Errorf("%s: %d updates, %d of them HOT; want every update HOT (at least %d)", table, upd, hot, 2*tasks)
		}
	}
}

// migratedTo opens a fresh schema migrated by the store's migrations up
// to version, as an earlier binary left it.
func migratedTo(t *testing.T, version int) (*pgdb.DB, string) {
	t.Helper()
	_, dbURL := pgtest.Schema(t)
	db, err := pgdb.Open(t.Context(), pgdb.Options{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	old := fstest.MapFS{}
	names, err := fs.Glob(storepg.Migrations, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names[:version] {
		b, err := fs.ReadFile(storepg.Migrations, name)
		if err != nil {
			t.Fatal(err)
		}
		old[name] = &fstest.MapFile{Data: b}
	}
	if err := db.Migrate(t.Context(), storepg.Component, old); err != nil {
		t.Fatal(err)
	}
	return db, dbURL
}

// Migration 0010 on a database with tasks: the unfinished ones, and only
// they, are in the new table; the steps' and the tasks' fillfactor goes
// from 80 to 50, an operator's own stays; the partial index is gone.
func TestMigrationToOpenTasks(t *testing.T) {
	for _, c := range []struct {
		name, before, after string
	}{{"default", "", "50"}, {"operator's", "70", "70"}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			db, dbURL := migratedTo(t, 9)
			open, done := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
			sqls := []string{`INSERT INTO tasks (id, namespace, name, version, state, revision, context, created_at, updated_at, finished_at)
				VALUES ($1, 'ns', 't', '1', 'steps_in_process', 3, '{}', now(), now(), NULL),
				       ($2, 'ns', 't', '1', 'complete', 5, '{}', now(), now(), now())`}
			if c.before != "" {
				sqls = append(sqls, `ALTER TABLE steps SET (fillfactor = `+c.before+`)`, `ALTER TABLE tasks SET (fillfactor = `+c.before+`)`)
			}
			for i, sql := range sqls {
				var args []any
				if i == 0 {
					args = []any{open, done}
				}
				if _, err := db.Pool.Exec(ctx, sql, args...); err != nil {
					t.Fatal(err)
				}
			}
			_ = openStore(t, dbURL, testclock.New(storetest.Start)) // migrates
			conn, err := pgx.Connect(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if got := openTaskIDs(t, conn); !slices.Equal(got, []uuid.UUID{open}) {
				t.Errorf("open tasks after the migration: %v, want the unfinished one, %s", got, open)
			}
			for _, table := range []string{"steps", "tasks"} {
				var ff string
				if err := conn.QueryRow(ctx, `SELECT coalesce((SELECT o FROM pg_class c, unnest(c.reloptions) AS o
					WHERE c.oid = $1::regclass AND o LIKE 'fillfactor=%'), '')`, table).Scan(&ff); err != nil {
					t.Fatal(err)
				}
				if ff != "fillfactor="+c.after {
					t.Errorf("the %s' %q after the migration, want fillfactor=%s", table, ff, c.after)
				}
			}
			var idx int
			if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'tasks_unfinished'`).Scan(&idx); err != nil || idx != 0 {
				t.Errorf("the partial index of unfinished tasks: %d left (%v), want it dropped", idx, err)
			}
		})
	}
}
