package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// TestRunTheBatchExample runs examples/batch.yaml through `tasker run` on
// the contexts its header lists: the workers exist, each checkpointed on
// its way, and the convergence step adds up all of them.
func TestRunTheBatchExample(t *testing.T) {
	for _, tc := range []struct {
		items   int
		workers []string
		sum     int64
	}{
		{1000, []string{"sum_001", "sum_002", "sum_003", "sum_004", "sum_005", "sum_006", "sum_007", "sum_008", "sum_009", "sum_010"}, 499500},
		{150, []string{"sum_001", "sum_002"}, 149 * 150 / 2},
		{0, []string{"sum_000"}, 0},
	} {
		t.Run(fmt.Sprint(tc.items), func(t *testing.T) {
			code, out, errOut := runCLI(t, "run", filepath.Join(examples, "batch.yaml"), "-c", fmt.Sprintf(`{"items": %d}`, tc.items),
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
			want := append(append([]string{"plan"}, tc.workers...), "total")
			if !slices.Equal(names, want) {
				t.Errorf("steps %v, want %v", names, want)
			}
			var total struct {
				Workers int   `json:"workers"`
				Items   int   `json:"items_processed"`
				Sum     int64 `json:"sum"`
			}
			if err := json.Unmarshal(s.Steps[len(s.Steps)-1].Result, &total); err != nil {
				t.Fatal(err)
			}
			if s.State != "complete" || total.Workers != len(tc.workers) || total.Items != tc.items || total.Sum != tc.sum {
				t.Errorf("state %s, total %+v; want complete, %d workers, %d items, sum %d", s.State, total, len(tc.workers), tc.items, tc.sum)
			}
		})
	}
}
