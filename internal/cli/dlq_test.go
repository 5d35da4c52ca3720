package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/store"
	storepg "github.com/tasker-go/tasker/store/postgres"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

// seedDLQ stores a task and a pending staleness entry for it, and returns
// the entry's and the task's IDs.
func seedDLQ(t *testing.T, st store.Store) (entry, task uuid.UUID) {
	t.Helper()
	ctx := t.Context()
	task, entry = uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	err := st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.TaskCreate(ctx, &store.TaskCreateParams{At: at, Processor: "test",
			Task: &taskertype.Task{ID: task, Namespace: "shop", Name: "order", Version: "1.0.0", Context: json.RawMessage(`{}`)}}); err != nil {
			return err
		}
		_, err := tx.DLQEntryCreate(ctx, &store.DLQEntryCreateParams{Entry: &taskertype.DLQEntry{
			ID: entry, TaskID: task, OriginalState: taskertype.TaskPending, Reason: taskertype.DLQStalenessTimeout, At: at,
			TaskSnapshot: json.RawMessage(`{"namespace":"shop","task_name":"order"}`),
		}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return entry, task
}

func TestDLQCommandsListShowUpdateAndCount(t *testing.T) {
	type db struct {
		name  string
		flags []string
		open  func(t *testing.T) store.Store
	}
	dbs := []db{{name: "sqlite"}}
	path := filepath.Join(t.TempDir(), "t.db")
	dbs[0].flags = []string{"--db", path}
	dbs[0].open = func(t *testing.T) store.Store {
		st, err := storesqlite.Open(t.Context(), storesqlite.Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if os.Getenv(pgtest.EnvURL) != "" {
		_, url := pgtest.Schema(t)
		dbs = append(dbs, db{name: "postgres", flags: []string{"--database-url", url}, open: func(t *testing.T) store.Store {
			st, err := storepg.Open(t.Context(), storepg.Config{URL: url, AutoMigrate: true})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}})
	}
	for _, d := range dbs {
		t.Run(d.name, func(t *testing.T) {
			st := d.open(t)
			entry, task := seedDLQ(t, st)
			st.Close()
			cli := func(args ...string) (int, string, string) { return runCLI(t, append(args, d.flags...)...) }

			code, out, errOut := cli("dlq", "list", "--status", "pending")
			if code != ExitOK || !strings.Contains(out, entry.String()) || !strings.Contains(out, "staleness_timeout") {
				t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
			}
			if code, _, errOut := cli("dlq", "list", "--status", "done"); code != ExitBadInput || !strings.Contains(errOut, "manually_resolved") {
				t.Fatalf("list --status done: exit %d, %s; want a usage error listing the statuses", code, errOut)
			}
			code, out, errOut = cli("dlq", "show", "--task", task.String())
			var shown map[string]any
			if code != ExitOK || json.Unmarshal([]byte(out), &shown) != nil || shown["dlq_entry_uuid"] != entry.String() ||
				shown["task_snapshot"].(map[string]any)["task_name"] != "order" {
				t.Fatalf("show --task: exit %d\n%s%s", code, out, errOut)
			}
			code, out, errOut = cli("dlq", "update", entry.String(), "--status", "manually_resolved",
				"--notes", "reset the payment step", "--resolved-by", "ops@example.com")
			if code != ExitOK || !strings.Contains(out, `"resolution_status": "manually_resolved"`) || !strings.Contains(out, "ops@example.com") {
				t.Fatalf("update: exit %d\n%s%s", code, out, errOut)
			}
			if code, _, errOut := cli("dlq", "update", entry.String(), "--status", "cancelled"); code == ExitOK || !strings.Contains(errOut, "not reopened") {
				t.Fatalf("update of a closed entry: exit %d, %s", code, errOut)
			}
			if code, _, errOut := cli("dlq", "update", entry.String()); code != ExitBadInput || !strings.Contains(errOut, "nothing to change") {
				t.Fatalf("update without flags: exit %d, %s", code, errOut)
			}
			code, out, errOut = cli("dlq", "stats")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != ExitOK || len(lines) != 2 || !strings.HasPrefix(lines[1], "staleness_timeout") || len(strings.Fields(lines[1])) < 6 ||
				strings.Fields(lines[1])[1] != "1" || strings.Fields(lines[1])[3] != "1" {
				t.Fatalf("stats: exit %d\n%s%s", code, out, errOut)
			}
		})
	}
}
