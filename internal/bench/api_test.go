package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
)

// RunAPI reports every mode with its calls and its costs per call: CPU
// and allocations on both backends, round trips and statements on
// PostgreSQL; --cpuprofile's file holds a profile.
func TestRunAPIReportsCosts(t *testing.T) {
	bes := []namedBackend{{"sqlite", Backend{Dir: t.TempDir()}}}
	if u := os.Getenv(pgtest.EnvURL); u != "" {
		bes = append(bes, namedBackend{"postgres", Backend{DatabaseURL: u}})
	}
	for _, be := range bes {
		t.Run(be.name, func(t *testing.T) {
			prof := filepath.Join(t.TempDir(), "cpu.prof")
			rs, err := RunAPI(t.Context(), APIOptions{Backend: be.Backend, Clients: []int{2}, Duration: 300 * time.Millisecond, Rounds: 1, CPUProfile: prof})
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 3 {
				t.Fatalf("%d reports, want 3 (a mode each): %+v", len(rs), rs)
			}
			for _, r := range rs {
				if r.Ops == 0 || r.GoCPUPerCallMicros <= 0 || r.AllocsPerCall <= 0 || r.BytesPerCall <= 0 {
					t.Errorf("%s: %+v: want calls, CPU and allocations", r.Mode, r)
				}
				pg := be.DatabaseURL != ""
				if pg != (r.TripsPerCall > 0 && r.StatementsPerCall > 0) {
					t.Errorf("%s on %s: %.2f round trips and %.2f statements per call", r.Mode, be.name, r.TripsPerCall, r.StatementsPerCall)
				}
				if r.Mode == ModeHTTPGet && pg && r.StatementsPerCall < 1 {
					t.Errorf("GET: %.2f statements per call, want at least the task's read", r.StatementsPerCall)
				}
			}
			if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
				t.Errorf("the CPU profile: %v, %v", fi, err)
			}
		})
	}
}
