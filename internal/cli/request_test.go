package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// tasker task create takes the task request's fields; task show prints
// them; a second create of the same task exits 2 naming the first.
func TestTaskCreateRequestFlagsAndDuplicates(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	linear := filepath.Join(examples, "linear.yaml")
	code, out, errOut := runCLI(t, "task", "create", linear, "--db", db, "-c", `{"value": 3}`,
		"--priority", "5", "--correlation-id", "0193a5b2-0000-7000-8000-000000000001", "--initiator", "user:alice",
		"--source-system", "cli-test", "--reason", "because", "--tag", "a", "--tag", "b c")
	if code != ExitOK {
		t.Fatalf("task create: exit %d\nstderr:\n%s", code, errOut)
	}
	id := strings.TrimSpace(out)

	code, out, errOut = runCLI(t, "task", "show", id, "--db", db)
	if code != ExitFailed && code != ExitOK {
		t.Fatalf("task show: exit %d\nstderr:\n%s", code, errOut)
	}
	for _, want := range []string{"priority", "5", "0193a5b2-0000-7000-8000-000000000001", "user:alice", "cli-test", "because", "a, b c", "identity_hash"} {
		if !strings.Contains(out, want) {
			t.Errorf("task show lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = runCLI(t, "task", "show", id, "--db", db, "-o", "json")
	var s summaryJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Request == nil || s.Request.Priority != 5 ||
		strings.Join(s.Request.Tags, "|") != "a|b c" || len(s.Request.IdentityHash) != 64 {
		t.Errorf("task show -o json: %v %+v\n%s", err, s.Request, out)
	}

	// The same template and context: linear is strict (the default).
	code, _, errOut = runCLI(t, "task", "create", linear, "--db", db, "-c", `{"value": 3}`)
	if code != ExitBadInput || !strings.Contains(errOut, id) || !strings.Contains(errOut, "duplicate task") {
		t.Errorf("a duplicate create: exit %d, want %d naming %s\nstderr:\n%s", code, ExitBadInput, id, errOut)
	}
	// A key makes it another task.
	code, _, errOut = runCLI(t, "task", "create", linear, "--db", db, "-c", `{"value": 3}`, "--idempotency-key", "k1")
	if code != ExitOK {
		t.Errorf("with a key: exit %d\nstderr:\n%s", code, errOut)
	}
	code, _, errOut = runCLI(t, "task", "create", linear, "--db", db, "--correlation-id", "nope")
	if code != ExitBadInput || !strings.Contains(errOut, "--correlation-id") {
		t.Errorf("a bad correlation id: exit %d\nstderr:\n%s", code, errOut)
	}
}

// tasker run of a task that exists (same template and context) shows the
// existing task and says so, rather than run a second one.
func TestRunAgainShowsTheExistingTask(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	linear := filepath.Join(examples, "linear.yaml")
	code, out, errOut := runCLI(t, "run", linear, "-c", `{"value": 3}`, "--db", db, "-q", "-o", "json")
	if code != ExitOK {
		t.Fatalf("first run: exit %d\n%s", code, errOut)
	}
	var first, again summaryJSON
	if err := json.Unmarshal([]byte(out), &first); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "run", linear, "-c", `{ "value": 3 }`, "--db", db, "-q", "-o", "json")
	if code != ExitOK {
		t.Fatalf("second run: exit %d\n%s", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &again); err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || !strings.Contains(errOut, "duplicate task") || !strings.Contains(errOut, "--idempotency-key") {
		t.Errorf("second run showed %s (first %s), stderr:\n%s", again.ID, first.ID, errOut)
	}
}
