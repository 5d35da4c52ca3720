package postgres_test

import (
	"crypto/md5"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/queue"
	queuepg "github.com/tasker-go/tasker/queue/postgres"
)

// migratedTo opens dbURL (a fresh schema when "") migrated by the queue's
// migrations named (the first ones, in order), as an earlier version left
// it.
func migratedTo(t *testing.T, dbURL string, names ...string) *pgdb.DB {
	t.Helper()
	if dbURL == "" {
		_, dbURL = pgtest.Schema(t)
	}
	db, err := pgdb.Open(t.Context(), pgdb.Options{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	old := fstest.MapFS{}
	for _, name := range names {
		b, err := fs.ReadFile(queuepg.Migrations, name)
		if err != nil {
			t.Fatal(err)
		}
		old[name] = &fstest.MapFile{Data: b}
	}
	if err := db.Migrate(t.Context(), queuepg.Component, old); err != nil {
		t.Fatal(err)
	}
	return db
}

// A queue created before migration 0003 (claims by priority) keeps its
// messages through it: they get priority 0 and sort at the epoch, first, in
// the order they had. A process still on the previous binary keeps sending
// to the migrated table, and a queue table it creates after the migration
// gets the columns and the index from QueueEnsure.
func TestMigrationToPriorityKeepsMessages(t *testing.T) {
	ctx := t.Context()
	// The schema as it was: migrations 0001 and 0002, and a queue table
	// as QueueEnsure created it then, holding two messages.
	db := migratedTo(t, "", "0001_queues.sql", "0002_dead_letters.sql")
	for _, sql := range []string{
		`CREATE TABLE q_old (msg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, read_ct integer NOT NULL DEFAULT 0,
			enqueued_at timestamptz NOT NULL, vt timestamptz NOT NULL, claimed boolean NOT NULL DEFAULT false, message bytea NOT NULL)`,
		`CREATE TABLE a_old (msg_id bigint PRIMARY KEY, read_ct integer NOT NULL, enqueued_at timestamptz NOT NULL,
			vt timestamptz NOT NULL, message bytea NOT NULL, archived_at timestamptz NOT NULL)`,
		`INSERT INTO tasker_queues VALUES ('old', 'q_old', 'a_old', now())`,
		`INSERT INTO q_old (enqueued_at, vt, message) VALUES (now(), now() - interval '2 seconds', 'first'), (now(), now() - interval '1 second', 'second')`,
	} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	q, err := queuepg.New(ctx, db, queuepg.Config{AutoMigrate: true, PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	// The previous binary's send, and its QueueEnsure of a new queue.
	for _, sql := range []string{
		`INSERT INTO q_old (enqueued_at, vt, message) VALUES (now(), now(), 'third')`,
		`CREATE TABLE q_late (msg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, read_ct integer NOT NULL DEFAULT 0,
			enqueued_at timestamptz NOT NULL, vt timestamptz NOT NULL, claimed boolean NOT NULL DEFAULT false, message bytea NOT NULL)`,
		`CREATE TABLE a_late (msg_id bigint PRIMARY KEY, read_ct integer NOT NULL, enqueued_at timestamptz NOT NULL,
			vt timestamptz NOT NULL, message bytea NOT NULL, archived_at timestamptz NOT NULL)`,
		`INSERT INTO tasker_queues VALUES ('late', 'q_late', 'a_late', now())`,
	} {
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"old", "late"} {
		if err := q.QueueEnsure(ctx, name); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			WHERE i.indrelid = ('q_' || $1)::regclass AND c.relname LIKE 'qs\_%'`, name).Scan(&n); err != nil || n != 1 {
			t.Fatalf("queue %s: %d claim-order indexes (%v), want 1", name, n, err)
		}
	}
	if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: "late", Body: []byte("x"), Priority: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: "old", Body: []byte("urgent"), Priority: 1}); err != nil {
		t.Fatal(err)
	}
	msgs, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "old", Max: 10, VisibilityTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, string(m.Body))
	}
	if want := []string{"first", "second", "third", "urgent"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("claimed %v, want %v", got, want)
	}
}

// Queues whose names differ only past an identifier's length each get their
// own claim-order index (its name is a hash of the table's).
func TestLongQueueNamesEachGetTheirIndex(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	q, err := queuepg.Open(ctx, queuepg.Config{URL: dbURL, AutoMigrate: true, PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	base := strings.Repeat("a", 60)
	for _, name := range []string{base + "1", base + "2", "worker_" + strings.Repeat("b", 120)} {
		if err := q.QueueEnsure(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	var tables, indexes int
	if err := q.DB().Pool.QueryRow(ctx, `SELECT count(DISTINCT i.indrelid), count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE c.relname LIKE 'qs\_%' AND c.relnamespace = current_schema()::regnamespace`).Scan(&tables, &indexes); err != nil {
		t.Fatal(err)
	}
	if tables != 3 || indexes != 3 {
		t.Fatalf("%d claim-order indexes on %d tables, want one on each of 3", indexes, tables)
	}
}

// fillfactor is the fillfactor a queue's table has set, or "" for none.
func fillfactor(t *testing.T, db *pgdb.DB, table string) string {
	t.Helper()
	var ff *string
	if err := db.Pool.QueryRow(t.Context(), `SELECT option_value FROM pg_options_to_table((SELECT reloptions FROM pg_class WHERE oid = $1::regclass))
		WHERE option_name = 'fillfactor'`, table).Scan(&ff); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	if ff == nil {
		return ""
	}
	return *ff
}

// oldTable makes queue name's tables as QueueEnsure made them between
// migrations 0003 and 0004, with fillfactor ff, and registers them.
func oldTable(t *testing.T, db *pgdb.DB, name, ff string) {
	t.Helper()
	for _, sql := range []string{
		`CREATE TABLE q_` + name + ` (msg_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, read_ct integer NOT NULL DEFAULT 0,
			enqueued_at timestamptz NOT NULL, vt timestamptz NOT NULL, claimed boolean NOT NULL DEFAULT false, message bytea NOT NULL,
			priority integer NOT NULL DEFAULT 0, sort_at timestamptz NOT NULL DEFAULT '1970-01-01 00:00:00+00') WITH (fillfactor = ` + ff + `)`,
		`CREATE INDEX ` + queuepg.SortIndexName("q_"+name) + ` ON q_` + name + ` (sort_at, msg_id)`,
		`CREATE TABLE a_` + name + ` (msg_id bigint PRIMARY KEY, read_ct integer NOT NULL, enqueued_at timestamptz NOT NULL,
			vt timestamptz NOT NULL, message bytea NOT NULL, archived_at timestamptz NOT NULL)`,
		`INSERT INTO tasker_queues VALUES ('` + name + `', 'q_` + name + `', 'a_` + name + `', now())`,
	} {
		if _, err := db.Pool.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}
}

// The queues' tables leave room on their pages for a claim of each row
// (fillfactor 45): migration 0004 sets it on the tables made before it at
// 70 (skipping a registered table that is gone), QueueEnsure on one an
// older binary makes after it, and a new queue has it; a fillfactor an
// operator set stays. Each claim of a batch is then a HOT update: it adds
// no index entry.
func TestQueueTablesLeaveRoomForHOTClaims(t *testing.T) {
	ctx := t.Context()
	// Migrations 0001 to 0003, and tables as QueueEnsure made them then.
	db := migratedTo(t, "", "0001_queues.sql", "0002_dead_letters.sql", "0003_priority.sql")
	oldTable(t, db, "before", "70")
	oldTable(t, db, "tuned", "30") // an operator's fillfactor, which stays
	// A queue registered whose table is gone: the migration skips it.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO tasker_queues VALUES ('gone', 'q_gone', 'a_gone', now())`); err != nil {
		t.Fatal(err)
	}
	q, err := queuepg.New(ctx, db, queuepg.Config{AutoMigrate: true, PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	if ff := fillfactor(t, db, "q_before"); ff != "45" {
		t.Errorf("a table made before migration 0004 has fillfactor %q after it, want 45", ff)
	}
	oldTable(t, db, "after", "70") // an older binary's QueueEnsure, after the migration
	for _, c := range []struct{ name, want string }{{"after", "45"}, {"new", "45"}, {"tuned", "30"}} {
		if err := q.QueueEnsure(ctx, c.name); err != nil {
			t.Fatal(err)
		}
		if ff := fillfactor(t, db, "q_"+c.name); ff != c.want {
			t.Errorf("queue %s: fillfactor %q after QueueEnsure, want %s", c.name, ff, c.want)
		}
	}

	// A table another transaction holds in a mode that conflicts with SET
	// (fillfactor) (a SHARE lock, as an index build takes, which does not
	// conflict with QueueEnsure's own index statement): QueueEnsure waits
	// about 2 s for it, then leaves the table at 70.
	oldTable(t, db, "busy", "70")
	lock, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The pool's sessions end a transaction idle for 5 s: not this one.
	if _, err := lock.Exec(ctx, `SET LOCAL idle_in_transaction_session_timeout = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `LOCK TABLE q_busy IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = q.QueueEnsure(ctx, "busy")
	waited := time.Since(start)
	if rerr := lock.Rollback(ctx); rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil || waited < 1900*time.Millisecond || waited > 30*time.Second {
		t.Fatalf("QueueEnsure of a locked table: %v after %v, want it done after waiting about 2 s", err, waited)
	}
	if ff := fillfactor(t, db, "q_busy"); ff != "70" {
		t.Errorf("a table locked during QueueEnsure: fillfactor %q, want it left at 70", ff)
	}

	// 400 messages claimed 50 at a time, as a worker claims: every claim
	// finds room on its row's page, which makes it a HOT update (it
	// changes no indexed column: it is HOT exactly when the row stays on
	// its page).
	const n = 400
	for range n {
		p := queue.SendParams{Queue: "new", Body: []byte(`{"task_id": "0190c2d0-0000-7000-8000-000000000000", "step_id": "0190c2d0-0000-7000-8000-000000000001"}`)}
		if _, err := q.MessageSend(ctx, &p); err != nil {
			t.Fatal(err)
		}
	}
	pages := func() map[int64]int64 {
		t.Helper()
		rows, err := db.Pool.Query(ctx, `SELECT msg_id, (ctid::text::point)[0]::bigint FROM q_new`)
		if err != nil {
			t.Fatal(err)
		}
		m := map[int64]int64{}
		for rows.Next() {
			var id, page int64
			if err := rows.Scan(&id, &page); err != nil {
				t.Fatal(err)
			}
			m[id] = page
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	before := pages()
	claimed := 0
	for claimed < n {
		msgs, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: "new", Max: 50, VisibilityTimeout: time.Minute})
		if err != nil || len(msgs) == 0 {
			t.Fatalf("claim after %d: %d messages, %v", claimed, len(msgs), err)
		}
		claimed += len(msgs)
	}
	moved := 0
	for id, page := range pages() {
		if before[id] != page {
			moved++
		}
	}
	if moved > 0 {
		t.Fatalf("%d claims: %d rows moved to another page (not HOT updates), want none", n, moved)
	}
}

// Migration 0004 in a schema whose name needs quotes (capitals, a dot): it
// finds the registry's tables by the schema's name.
func TestFillfactorMigrationInAQuotedSchema(t *testing.T) {
	ctx := t.Context()
	base := pgtest.URL(t)
	schema := fmt.Sprintf("Tasker.Q%x", md5.Sum([]byte(t.Name()+time.Now().String())))[:24]
	quoted := pgx.Identifier{schema}.Sanitize()
	pgtest.Exec(t, base, `CREATE SCHEMA `+quoted)
	t.Cleanup(func() { pgtest.Exec(t, base, `DROP SCHEMA `+quoted+` CASCADE`) })
	db := migratedTo(t, pgtest.WithSearchPath(t, base, quoted), "0001_queues.sql", "0002_dead_letters.sql", "0003_priority.sql")
	oldTable(t, db, "x", "70")
	q, err := queuepg.New(ctx, db, queuepg.Config{AutoMigrate: true, PollInterval: -1})
	if err != nil {
		t.Fatalf("migrate in schema %q: %v", schema, err)
	}
	t.Cleanup(func() { q.Close() })
	if ff := fillfactor(t, db, quoted+".q_x"); ff != "45" {
		t.Errorf("a queue table of schema %q: fillfactor %q after the migration, want 45", schema, ff)
	}
}
