package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// --clock-offset skews the engine's clock, and neither it nor --demo-trace
// shows in the help: they are for the fault tests.
func TestHiddenFaultFlags(t *testing.T) {
	for _, sub := range []string{"serve", "worker"} {
		code, out, errOut := runCLI(t, sub, "--help")
		if code != ExitOK {
			t.Fatalf("%s --help: exit %d: %s", sub, code, errOut)
		}
		for _, hidden := range []string{"clock-offset", "demo-trace"} {
			if strings.Contains(out, hidden) {
				t.Errorf("%s --help shows --%s:\n%s", sub, hidden, out)
			}
		}
	}

	var b backend
	cmd := &cobra.Command{}
	backendFlags(cmd, &b)
	if err := cmd.Flags().Parse([]string{"--clock-offset", "-30s"}); err != nil {
		t.Fatal(err)
	}
	cfg := b.config(&globals{})
	if cfg.Clock == nil {
		t.Fatal("--clock-offset -30s left the engine's clock unset")
	}
	if d := time.Since(cfg.Clock.Now()); d < 29*time.Second || d > 31*time.Second {
		t.Errorf("with --clock-offset -30s the engine's clock is %v behind, want 30s", d)
	}
	if cfg := (&backend{}).config(&globals{}); cfg.Clock != nil {
		t.Errorf("without --clock-offset the engine's clock is %T, want the default", cfg.Clock)
	}
}
