package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// TestRunTheDecisionExample runs examples/decision.yaml through `tasker
// run` on every route its header lists: only the chosen steps exist, and
// the convergence step sums the branches created.
func TestRunTheDecisionExample(t *testing.T) {
	for _, tc := range []struct {
		value int64
		steps []string
		final int64 // the last step's value
	}{
		{500, []string{"validate", "route", "auto", "finalize"}, 502},
		{2500, []string{"validate", "route", "manager", "finalize"}, 2502},
		{9000, []string{"validate", "route", "manager", "finance", "finalize"}, 18004},
		{-5, []string{"validate", "route"}, -4},
	} {
		t.Run(fmt.Sprint(tc.value), func(t *testing.T) {
			code, out, errOut := runCLI(t, "run", filepath.Join(examples, "decision.yaml"), "-c", fmt.Sprintf(`{"value": %d}`, tc.value),
				"--db", filepath.Join(t.TempDir(), "t.db"), "-q", "-o", "json")
			if code != ExitOK {
				t.Fatalf("exit %d: %s %s", code, out, errOut)
			}
			var s summaryJSON
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, st := range s.Steps {
				names = append(names, st.Name)
			}
			if !slices.Equal(names, tc.steps) {
				t.Errorf("steps %v, want %v", names, tc.steps)
			}
			var v struct{ Value int64 }
			if err := json.Unmarshal(s.Steps[len(s.Steps)-1].Result, &v); err != nil {
				t.Fatal(err)
			}
			if s.State != "complete" || v.Value != tc.final {
				t.Errorf("state %s, last value %d; want complete, %d", s.State, v.Value, tc.final)
			}
		})
	}
}
