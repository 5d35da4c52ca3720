package sqlite_test

import (
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/queue"
	queuesqlite "github.com/tasker-go/tasker/queue/sqlite"
)

// Messages sent before migration 0003 (claims by priority) are kept through
// it: they get priority 0 and sort by their visibility, the order claims
// had, and a new message of higher priority goes first.
func TestMigrationToPriorityKeepsMessages(t *testing.T) {
	ctx := t.Context()
	db, err := sqlitedb.Open(ctx, sqlitedb.Options{Path: filepath.Join(t.TempDir(), "q.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	old := fstest.MapFS{}
	for _, name := range []string{"0001_queue.sql", "0002_dead_letters.sql"} {
		b, err := fs.ReadFile(queuesqlite.Migrations, name)
		if err != nil {
			t.Fatal(err)
		}
		old[name] = &fstest.MapFile{Data: b}
	}
	if err := db.Migrate(ctx, queuesqlite.Component, old); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMicro()
	for _, stmt := range []string{
		`INSERT INTO queue_queues (name, created_at) VALUES ('old', 0)`,
		`INSERT INTO queue_messages (queue, body, enqueued_at, vt) VALUES ('old', 'first', ?1, ?1 - 2000000), ('old', 'second', ?1, ?1 - 1000000)`,
	} {
		if _, err := db.W.ExecContext(ctx, stmt, now); err != nil {
			t.Fatal(err)
		}
	}
	q, err := queuesqlite.New(ctx, db, queuesqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
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
	if len(got) != 3 || got[0] != "urgent" || got[1] != "first" || got[2] != "second" {
		t.Fatalf("claimed %v, want [urgent first second]", got)
	}
}
