package postgres_test

import (
	"io/fs"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/queue"
	queuepg "github.com/tasker-go/tasker/queue/postgres"
)

// A queue created before migration 0003 (claims by priority) keeps its
// messages through it: they get priority 0 and sort by their visibility,
// the order claims had, and new messages of higher priority go first.
func TestMigrationToPriorityKeepsMessages(t *testing.T) {
	ctx := t.Context()
	_, dbURL := pgtest.Schema(t)
	db, err := pgdb.Open(ctx, pgdb.Options{URL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	// The schema as it was: migrations 0001 and 0002, and a queue table
	// as QueueEnsure created it then, holding two messages.
	old := fstest.MapFS{}
	for _, name := range []string{"0001_queues.sql", "0002_dead_letters.sql"} {
		b, err := fs.ReadFile(queuepg.Migrations, name)
		if err != nil {
			t.Fatal(err)
		}
		old[name] = &fstest.MapFile{Data: b}
	}
	if err := db.Migrate(ctx, queuepg.Component, old); err != nil {
		t.Fatal(err)
	}
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
	if err := q.QueueEnsure(ctx, "old"); err != nil {
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
	if want := []string{"urgent", "first", "second"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("claimed %v, want %v", got, want)
	}
}
