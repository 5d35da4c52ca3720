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

// deadLetterSome sets one message of each queue given aside in a fresh
// database and returns its path.
func deadLetterSome(t *testing.T, names ...string) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "t.db")
	ctx := t.Context()
	st, err := storesqlite.Open(ctx, storesqlite.Config{Path: db})
	if err != nil {
		t.Fatal(err)
	}
	q := st.Queue()
	for _, name := range names {
		if err := q.QueueEnsure(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, err := q.MessageSend(ctx, &queue.SendParams{Queue: name, Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		ms, err := q.MessageClaim(ctx, &queue.ClaimParams{Queue: name, Max: 1, VisibilityTimeout: time.Minute})
		if err != nil || len(ms) != 1 {
			t.Fatalf("claim: %v %v", ms, err)
		}
		if err := q.MessageDeadLetter(ctx, &queue.DeadLetterParams{Queue: name, Receipt: ms[0].Receipt(), Reason: "no"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestDeadLettersRetryAndPurge(t *testing.T) {
	db := deadLetterSome(t, queue.ResultsQueue, queue.TasksQueue, queue.ResultsQueue)
	count := func() int {
		t.Helper()
		code, out, errOut := runCLI(t, "dead-letters", "list", "--db", db)
		if code != ExitOK {
			t.Fatalf("list: exit %d: %s %s", code, out, errOut)
		}
		return strings.Count(out, "\n") - 1
	}
	if code, out, errOut := runCLI(t, "dead-letters", "retry", "1", "--db", db); code != ExitOK || !strings.Contains(out, "dead letter 1 sent back") {
		t.Fatalf("retry 1: exit %d\n%s%s", code, out, errOut)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d dead letters after retrying one of 3, want 2", n)
	}
	if code, _, errOut := runCLI(t, "dead-letters", "retry", "1", "--db", db); code == ExitOK || !strings.Contains(errOut, "not found") {
		t.Errorf("retry of a dead letter sent back already: exit %d, %s; want a not-found error", code, errOut)
	}
	if code, out, errOut := runCLI(t, "dead-letters", "retry", "--all", "--queue", queue.TasksQueue, "--db", db); code != ExitOK || strings.Count(out, "sent back") != 1 {
		t.Fatalf("retry --all --queue: exit %d\n%s%s", code, out, errOut)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d dead letters after retrying the one of %s, want 1", n, queue.TasksQueue)
	}
	for _, args := range [][]string{{"retry"}, {"retry", "x"}, {"retry", "2", "--all"}, {"retry", "2", "--queue", "q"}, {"purge"}} {
		if code, _, _ := runCLI(t, append([]string{"dead-letters"}, append(args, "--db", db)...)...); code != ExitBadInput {
			t.Errorf("dead-letters %v: exit %d, want %d", args, code, ExitBadInput)
		}
	}
	if code, out, _ := runCLI(t, "dead-letters", "purge", "--older-than", "1h", "--db", db); code != ExitOK || !strings.Contains(out, "0 dead letters deleted") {
		t.Errorf("purge --older-than 1h of a fresh dead letter: exit %d, %s; want 0 deleted", code, out)
	}
	if code, out, _ := runCLI(t, "dead-letters", "purge", "--older-than", "1ns", "--db", db); code != ExitOK || !strings.Contains(out, "1 dead letters deleted") {
		t.Errorf("purge --older-than 1ns: exit %d, %s; want 1 deleted", code, out)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d dead letters after the purge, want 0", n)
	}
}
