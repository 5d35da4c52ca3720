package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchBurnDown(t *testing.T) {
	code, out, errOut := runCLI(t, "bench", "--burn-down", "100", "--json", "--dir", t.TempDir())
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var r struct {
		Backend, Shape string
		Tasks          int
		TasksPerSec    float64 `json:"tasks_per_sec"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if r.Backend != "sqlite" || r.Shape != "single_workflow" || r.Tasks != 100 || r.TasksPerSec <= 0 {
		t.Fatalf("burn-down figures %+v: want 100 single_workflow tasks drained on sqlite", r)
	}

	code, out, _ = runCLI(t, "bench", "--burn-down", "20", "--shapes", "linear", "--dir", t.TempDir())
	if code != ExitOK || !strings.Contains(out, "GO CPU/TASK") || !strings.Contains(out, "linear") {
		t.Fatalf("exit %d, table:\n%s", code, out)
	}

	code, out, errOut = runCLI(t, "bench", "--shapes", "single", "--tasks", "5", "--in-flight", "16", "--duration", "2s", "--load", "0.9", "--dir", t.TempDir())
	if code != ExitOK || !strings.Contains(out, "LOAD DONE/S") || !strings.Contains(out, "LOAD P99") {
		t.Fatalf("exit %d, table:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, args := range [][]string{
		{"bench", "--load", "1"},
		{"bench", "--load", "-0.5"},
		{"bench", "--load", "NaN"},
		{"bench", "--load", "0.5", "--burn-down", "10"},
	} {
		if code, _, errOut := runCLI(t, args...); code != ExitBadInput || !strings.Contains(errOut, "--load") {
			t.Errorf("%v: exit %d (%s), want %d and a message naming --load", args, code, errOut, ExitBadInput)
		}
	}

	for _, args := range [][]string{
		{"bench", "--burn-down", "0"},
		{"bench", "--burn-down", "10", "--shapes", "single,linear"},
		{"bench", "--burn-down", "10", "--worker-concurrency", "-1"},
		{"bench", "--report-groups", "-1"},
		{"bench", "--report-groups", "2"},
		{"bench", "--burn-down", "10", "--report-groups", "300"},
	} {
		if code, _, errOut := runCLI(t, args...); code != ExitBadInput {
			t.Errorf("%v: exit %d (%s), want %d", args, code, errOut, ExitBadInput)
		}
	}
}
