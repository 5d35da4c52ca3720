package bench

import (
	"os"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
)

// TestBurnDown drains a small backlog of single-step tasks on each backend
// and checks that every figure was measured.
func TestBurnDown(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		r, err := BurnDown(t.Context(), BurnDownOptions{Backend: Backend{Dir: t.TempDir()}, Tasks: 200})
		if err != nil {
			t.Fatal(err)
		}
		if r.Shape != "single_workflow" || r.Steps != 1 || r.Tasks != 200 || r.Backend != "sqlite" {
			t.Fatalf("report of %s, %d steps, %d tasks on %s; want single_workflow, 1 step, 200 tasks on sqlite", r.Shape, r.Steps, r.Tasks, r.Backend)
		}
		// processCPU is zero where it is not measured (not unix).
		if r.TasksPerSec <= 0 || (ProcessCPU() > 0 && r.GoCPUPerTaskMicros <= 0) {
			t.Fatalf("%.0f tasks/s, %.0fµs of Go CPU per task; want both positive", r.TasksPerSec, r.GoCPUPerTaskMicros)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		u := os.Getenv(pgtest.EnvURL)
		if u == "" {
			t.Skip(pgtest.EnvURL + " not set")
		}
		// 2,000 tasks: the server's CPU is read from /proc in clock ticks
		// (10ms); a drain of 200 took so little that it could read none.
		r, err := BurnDown(t.Context(), BurnDownOptions{Backend: Backend{DatabaseURL: u}, Tasks: 2000})
		if err != nil {
			t.Fatal(err)
		}
		if r.Backend != "postgres" || r.TasksPerSec <= 0 || (ProcessCPU() > 0 && r.GoCPUPerTaskMicros <= 0) {
			t.Fatalf("%s: %.0f tasks/s, %.0fµs of Go CPU per task", r.Backend, r.TasksPerSec, r.GoCPUPerTaskMicros)
		}
		// A task is at least created (by the backlog), claimed, reported
		// and finalized: the drain reads and writes every task's rows.
		if r.TripsPerTask <= 0 || r.StatementsPerTask < r.TripsPerTask {
			t.Fatalf("%.2f round trips and %.2f statements per task: want some, and at least one statement per round trip", r.TripsPerTask, r.StatementsPerTask)
		}
		if r.RowsUpdatedPerTask < 1 {
			t.Fatalf("%.2f rows updated per task: the drain completes every task's row", r.RowsUpdatedPerTask)
		}
		if r.PGCPUMeasured && r.PGCPUPerTaskMicros() <= 0 {
			t.Fatalf("PostgreSQL's CPU measured at %.0fµs per task", r.PGCPUPerTaskMicros())
		}
	})
	t.Run("bad input", func(t *testing.T) {
		_, err := BurnDown(t.Context(), BurnDownOptions{Backend: Backend{Dir: t.TempDir()}, Tasks: 1, Shape: "nope"})
		if err == nil || !strings.Contains(err.Error(), "choose among single, linear") {
			t.Fatalf("an unknown shape: %v, want an error listing the shapes", err)
		}
	})
}
