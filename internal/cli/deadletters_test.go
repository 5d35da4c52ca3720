package cli

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasker-go/tasker/queue"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
)

func TestDeadLettersListShowsEachWithItsReason(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	ctx := t.Context()
	st, err := storesqlite.Open(ctx, storesqlite.Config{Path: db})
	if err != nil {
		t.Fatal(err)
	}
	q := st.Queue()
	for _, name := range []string{queue.ResultsQueue, queue.TasksQueue} {
		if err := q.QueueEnsure(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: name, Body: []byte(`{"broken":` + "\n" + `true}`)}); err != nil {
			t.Fatal(err)
		}
		ms, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: 1, VisibilityTimeout: time.Minute})
		if err != nil || len(ms) != 1 {
			t.Fatalf("claim: %v %v", ms, err)
		}
		if err := q.MessageDeadLetter(ctx, &queue.DeadLetterParams{Queue: name, Receipt: ms[0].Receipt(), Reason: "failed 5 deliveries; the last: no"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCLI(t, "dead-letters", "list", "--db", db)
	if code != ExitOK {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "DELIVERIES") || !strings.Contains(lines[0], "REASON") {
		t.Fatalf("want a header and two dead letters:\n%s", out)
	}
	for i, want := range []string{queue.TasksQueue, queue.ResultsQueue} { // newest first
		if !strings.Contains(lines[i+1], want) || !strings.Contains(lines[i+1], "failed 5 deliveries; the last: no") ||
			!strings.Contains(lines[i+1], `{"broken": true}`) {
			t.Errorf("line %d lacks the queue %s, the reason or the body on one line: %q", i+1, want, lines[i+1])
		}
	}

	code, out, _ = runCLI(t, "dead-letters", "list", "--db", db, "--queue", queue.ResultsQueue)
	if code != ExitOK || strings.Count(out, "\n") != 2 || strings.Contains(out, queue.TasksQueue) {
		t.Errorf("--queue %s: exit %d\n%s", queue.ResultsQueue, code, out)
	}
	if code, _, errOut := runCLI(t, "dead-letters", "list", "--db", db, "--limit", "0"); code != ExitBadInput || !strings.Contains(errOut, "--limit") {
		t.Errorf("--limit 0: exit %d, %s; want a usage error naming the flag", code, errOut)
	}
}
