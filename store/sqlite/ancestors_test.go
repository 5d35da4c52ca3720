package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/store"
)

// TestHeldAncestorsOfLargeTasks: a transaction gives a step's ancestors
// from its copy of the task up to 256 steps (past 16 through a map of
// them), and leaves larger tasks to StepAncestorResults (nil). The results
// are copies of the cached rows' bytes.
func TestHeldAncestorsOfLargeTasks(t *testing.T) {
	for _, n := range []int{5, 40, 256, 257} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx := context.Background()
			clock := testclock.New(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))
			s := openStore(t, filepath.Join(t.TempDir(), "t.db"), clock)
			// The last three: a → b → c; c's ancestors are a and b.
			_, steps := createSteps(t, s, clock, n, n-3)
			a, b, c := steps[n-3], steps[n-2], steps[n-1]
			completeStep(t, s, clock, a)
			completeStep(t, s, clock, b)
			err := s.InTx(ctx, func(tx store.Tx) error {
				if _, err := tx.StepGet(ctx, c.ID); err != nil {
					return err
				}
				got := tx.StepAncestorsHeld(c.ID)
				if n > 256 {
					if got != nil {
						t.Errorf("a task of %d steps: ancestors %v, want nil (read on a reader)", n, got)
					}
					return nil
				}
				if len(got) != 2 || string(got[a.Name]) != fmt.Sprintf(`{"of": %q}`, a.Name) || string(got[b.Name]) != fmt.Sprintf(`{"of": %q}`, b.Name) {
					t.Errorf("a task of %d steps: ancestors %v, want %s and %s", n, got, a.Name, b.Name)
				}
				got[a.Name][2] = 'X' // a copy: the cached row keeps its bytes
				again := tx.StepAncestorsHeld(c.ID)
				if string(again[a.Name]) != fmt.Sprintf(`{"of": %q}`, a.Name) {
					t.Errorf("changing a result given out changed the cached row: %s", again[a.Name])
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
