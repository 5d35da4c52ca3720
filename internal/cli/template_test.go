package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const coreFixtures = "../../template/testdata/tasker-core"

func TestTemplateValidateAcceptsEveryTaskerCoreFixture(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(coreFixtures, "*.yaml"))
	code, out, errOut := runCLI(t, "template", "validate", coreFixtures)
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if n := strings.Count(out, "ok  "); n != len(files) || n < 27 {
		t.Errorf("%d ok lines for %d files:\n%s", n, len(files), out)
	}
	if !strings.Contains(out, "(4 steps, tasker-core dialect)") {
		t.Errorf("the ok lines do not name the dialect:\n%s", out)
	}
	// Keys tasker-core ignores are warnings on stderr, with file and line.
	if !strings.Contains(errOut, "warning: "+filepath.Join(coreFixtures, "diamond_pattern.yaml")+":35: metadata.notes: unknown key \"notes\"") {
		t.Errorf("stderr lacks the warning for diamond_pattern's metadata.notes:\n%s", errOut)
	}
}

func TestTemplateValidateStrictMakesWarningsErrors(t *testing.T) {
	code, out, errOut := runCLI(t, "template", "validate", "--strict", filepath.Join(coreFixtures, "diamond_pattern.yaml"))
	if code != ExitBadInput {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitBadInput, out, errOut)
	}
	if !strings.Contains(errOut, `diamond_pattern.yaml:35: metadata.notes: unknown key "notes"`) || !strings.Contains(errOut, "--strict makes this an error") {
		t.Errorf("stderr:\n%s", errOut)
	}
	// A fixture without unknown keys passes --strict.
	if code, out, errOut := runCLI(t, "template", "validate", "--strict", filepath.Join(coreFixtures, "conditional_approval_rust.yaml")); code != ExitOK {
		t.Errorf("exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestTemplateValidateNamesTheMixOfDialects(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "mixed.yaml")
	body := "name: mixed\nnamespace_name: demo\nversion: 1.0.0\nsteps:\n  - name: a\n    handler: {callable: h}\n    retry: {backoff_base_ms: 100, base: 1s}\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "template", "validate", p)
	if code != ExitBadInput || !strings.Contains(errOut, p+`:7: step "a": retry.base: "base" is a key of the tasker dialect`) {
		t.Errorf("exit %d\n%s", code, errOut)
	}
}

func TestTemplateShowPrintsTheResolvedTemplateAndItsDAG(t *testing.T) {
	file := filepath.Join(coreFixtures, "dlq_staleness_test.yaml")
	code, out, errOut := runCLI(t, "template", "show", "--environment", "test", file)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"dlq_test/dlq_staleness_test@1.0.0, tasker-core dialect, environment overrides applied: test",
		`"max_attempts": 2`, `"timeout": "10s"`, // the test environment's overrides
		`"max_waiting_for_retry_minutes": 2`,
		"graph TD\n    dlq_step_1[\"dlq_step_1\"]\n    dlq_step_2[\"dlq_step_2\"]\n    dlq_step_1 --> dlq_step_2\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// TASKER_ENV is the default of --environment; production has no
	// overrides here.
	t.Setenv("TASKER_ENV", "production")
	_, out, _ = runCLI(t, "template", "show", file)
	if !strings.Contains(out, "environment overrides applied: none") || !strings.Contains(out, `"timeout": "30s"`) {
		t.Errorf("production:\n%s", out)
	}
	code, out, _ = runCLI(t, "template", "show", "--mermaid-only", filepath.Join(examples, "diamond.yaml"))
	if code != ExitOK || !strings.HasPrefix(out, "graph TD\n") || strings.Contains(out, "{") {
		t.Errorf("--mermaid-only: exit %d\n%s", code, out)
	}
}
