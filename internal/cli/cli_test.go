package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

const examples = "../../examples"

func TestRunPrintsProgressAndASummary(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	code, out, errOut := runCLI(t, "run", filepath.Join(examples, "linear.yaml"), "--context", `{"value": 3}`, "--db", db)
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"complete", "add_three", `{"value":18}`, "ATTEMPTS"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	// Not a terminal: one plain line per change.
	for _, want := range []string{"step  add_one: pending -> enqueued", "step  add_three: enqueued_for_orchestration -> complete", "task  evaluating_results -> complete"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("progress lacks %q:\n%s", want, errOut)
		}
	}
}

func TestRunEveryExampleShape(t *testing.T) {
	want := map[string]int64{"linear.yaml": 18, "diamond.yaml": 80, "dag.yaml": 110, "tree.yaml": 64}
	for file, result := range want {
		t.Run(file, func(t *testing.T) {
			code, out, errOut := runCLI(t, "run", filepath.Join(examples, file), "-c", `{"value": 3}`, "--db", filepath.Join(t.TempDir(), "t.db"), "-q", "-o", "json")
			if code != ExitOK {
				t.Fatalf("exit %d: %s %s", code, out, errOut)
			}
			var s summaryJSON
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatal(err)
			}
			last := s.Steps[len(s.Steps)-1]
			var v struct{ Value int64 }
			json.Unmarshal(last.Result, &v)
			if s.State != "complete" || v.Value != result {
				t.Fatalf("%s: state %s, last step %s = %d, want complete with %d", file, s.State, last.Name, v.Value, result)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	failing := write("failing.yaml", "name: failing\nnamespace: demo\nversion: 1.0.0\nsteps:\n  - {name: broken, handler: demo.fail}\n")
	cyclic := write("cyclic.yaml", "name: cyclic\nnamespace: demo\nversion: 1.0.0\nsteps:\n  - {name: a, handler: demo.noop, depends_on: [b]}\n  - {name: b, handler: demo.noop, depends_on: [a]}\n")
	malformed := write("malformed.yaml", "name: [unclosed\n")
	unknown := write("unknown.yaml", "name: unknown\nnamespace: demo\nversion: 1.0.0\nsteps:\n  - {name: a, handler: demo.nobody}\n")
	db := filepath.Join(dir, "t.db")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a failed task exits 1", []string{"run", failing, "--db", db, "-q"}, ExitFailed, "error"},
		{"a cycle exits 2 naming the cycle", []string{"run", cyclic, "--db", db}, ExitBadInput, "a -> b -> a"},
		{"malformed YAML exits 2", []string{"run", malformed, "--db", db}, ExitBadInput, "malformed.yaml"},
		{"an unknown handler exits 2 naming it", []string{"run", unknown, "--db", db}, ExitBadInput, "demo.nobody"},
		{"invalid JSON context exits 2", []string{"run", filepath.Join(examples, "linear.yaml"), "--db", db, "--context", "{value: 3"}, ExitBadInput, "--context"},
		{"a context failing the schema exits 2", []string{"run", filepath.Join(examples, "linear.yaml"), "--db", db, "--context", `{"value": "x"}`}, ExitBadInput, "value"},
		{"a missing file exits 2", []string{"run", filepath.Join(dir, "nope.yaml"), "--db", db}, ExitBadInput, "nope.yaml"},
		{"an unwritable database path exits 2", []string{"run", filepath.Join(examples, "linear.yaml"), "-c", `{"value":1}`, "--db", filepath.Join(dir, "no", "such", "dir", "t.db")}, ExitBadInput, "does not exist"},
		{"a missing argument exits 2", []string{"run"}, ExitBadInput, "usage"},
		{"an unknown command exits 2", []string{"frobnicate"}, ExitBadInput, "unknown command"},
		{"validate accepts the examples", []string{"template", "validate", examples}, ExitOK, ""},
		{"validate lists every bad file", []string{"template", "validate", cyclic, malformed}, ExitBadInput, "malformed.yaml"},
		{"resume with nothing to do exits 0", []string{"resume", "--db", filepath.Join(dir, "fresh.db")}, ExitOK, ""},
		{"a bad task id exits 2", []string{"task", "show", "not-a-uuid", "--db", db}, ExitBadInput, "not-a-uuid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, errOut)
			}
			if !strings.Contains(out+errOut, c.want) {
				t.Errorf("output lacks %q:\nstdout:\n%s\nstderr:\n%s", c.want, out, errOut)
			}
		})
	}
	// Nothing half-created: the database holds only the failing task.
	code, out, _ := runCLI(t, "task", "list", "--db", db)
	if code != ExitOK || strings.Count(out, "demo/") != 1 {
		t.Fatalf("task list after the bad input: exit %d\n%s\nwant exactly the one failed task", code, out)
	}
}

// The developer's loop: run a template, edit it, run it again on the same
// database. `tasker run` replaces the stored version; task create refuses
// the changed definition unless given --replace-templates, and says so.
func TestRunAgainAfterEditingTheTemplate(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join(examples, "linear.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file, db := filepath.Join(dir, "linear.yaml"), filepath.Join(dir, "t.db")
	write := func(body string) {
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	last := func(out string) int64 {
		t.Helper()
		var s summaryJSON
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var v struct{ Value int64 }
		json.Unmarshal(s.Steps[len(s.Steps)-1].Result, &v)
		return v.Value
	}
	write(string(src))
	code, out, errOut := runCLI(t, "run", file, "-c", `{"value": 3}`, "--db", db, "-q", "-o", "json")
	if code != ExitOK || last(out) != 18 {
		t.Fatalf("first run: exit %d: %s %s", code, out, errOut)
	}
	// A new description and a new last handler: 17 squared, not 17+1.
	edited := strings.Replace(string(src), "description: context value + addend", "description: value plus addend", 1)
	edited = strings.Replace(edited, "  - name: add_three\n    handler: demo.add", "  - name: add_three\n    handler: demo.square", 1)
	if edited == string(src) {
		t.Fatal("the edit changed nothing")
	}
	write(edited)
	// The same context is the same task (strict identity, docs/identity.md):
	// a new key runs it again.
	code, out, errOut = runCLI(t, "run", file, "-c", `{"value": 3}`, "--db", db, "-q", "-o", "json", "--idempotency-key", "after-edit")
	if code != ExitOK {
		t.Fatalf("run after an edit: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if got := last(out); got != 289 {
		t.Fatalf("run after an edit: last step %d, want 289 (the edited template's)", got)
	}

	write(string(src))
	code, out, errOut = runCLI(t, "task", "create", file, "--db", db, "-c", `{"value": 3}`)
	if code != ExitBadInput || !strings.Contains(errOut, "--replace-templates") {
		t.Fatalf("task create of a changed template: exit %d, want %d naming --replace-templates\nstdout:\n%s\nstderr:\n%s", code, ExitBadInput, out, errOut)
	}
	code, out, errOut = runCLI(t, "task", "create", file, "--db", db, "-c", `{"value": 3}`, "--replace-templates", "--idempotency-key", "replaced")
	if code != ExitOK {
		t.Fatalf("task create --replace-templates: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
