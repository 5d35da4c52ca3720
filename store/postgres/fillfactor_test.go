package postgres_test

import (
	"context"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/internal/testclock"
	storepg "github.com/tasker-go/tasker/store/postgres"
	"github.com/tasker-go/tasker/store/storetest"
)

// migratedTo opens a fresh schema migrated by the store's migrations up to
// version (its first version files), as an earlier binary left it, and
// returns its URL.
func migratedTo(t *testing.T, version int) (*pgdb.DB, string) {
	t.Helper()
	_, dbURL := pgtest.Schema(t)
	db, err := pgdb.Open(t.Context(), pgdb.Options{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	names, err := fs.Glob(storepg.Migrations, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	old := fstest.MapFS{}
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

// fillfactorOf is the fillfactor a table has set ("" for none).
func fillfactorOf(t *testing.T, conn *pgx.Conn, table string) string {
	t.Helper()
	var ff string
	if err := conn.QueryRow(t.Context(), `SELECT coalesce((SELECT substr(o, 12) FROM pg_class c, unnest(c.reloptions) AS o
		WHERE c.oid = $1::regclass AND o LIKE 'fillfactor=%'), '')`, table).Scan(&ff); err != nil {
		t.Fatal(err)
	}
	return ff
}

// Migration 0010 puts the steps at fillfactor 50 (their updates HOT under
// load, docs/postgres.md), the tasks staying at 80: on a new database, and
// on one an earlier binary made at 80, a task in it; a fillfactor an
// operator set, or reset to the server's default, stays.
func TestMigrationSetsFillfactor50(t *testing.T) {
	const before0010 = 9 // the migrations of the binaries before 0010
	for _, c := range []struct {
		name, before, steps, tasks string
	}{{"new", "-", "50", "80"}, {"earlier", "", "50", "80"}, {"operator's", "70", "70", "70"}, {"reset", "reset", "", ""}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			var dbURL string
			if c.before == "-" {
				_, dbURL = pgtest.Schema(t)
			} else {
				var db *pgdb.DB
				db, dbURL = migratedTo(t, before0010)
				sqls := []string{`INSERT INTO tasks (id, namespace, name, version, state, revision, context, created_at, updated_at)
					VALUES (gen_random_uuid(), 'ns', 't', '1', 'pending', 1, '{}', now(), now())`}
				switch c.before {
				case "":
				case "reset":
					sqls = append(sqls, `ALTER TABLE steps RESET (fillfactor)`, `ALTER TABLE tasks RESET (fillfactor)`)
				default:
					sqls = append(sqls, `ALTER TABLE steps SET (fillfactor = `+c.before+`)`, `ALTER TABLE tasks SET (fillfactor = `+c.before+`)`)
				}
				for _, sql := range sqls {
					if _, err := db.Pool.Exec(ctx, sql); err != nil {
						t.Fatal(err)
					}
				}
			}
			_ = openStore(t, dbURL, testclock.New(storetest.Start)) // migrates
			conn, err := pgx.Connect(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			for table, want := range map[string]string{"steps": c.steps, "tasks": c.tasks} {
				if ff := fillfactorOf(t, conn, table); ff != want {
					t.Errorf("%s: fillfactor %q after the migration, want %q", table, ff, want)
				}
			}
		})
	}
}
