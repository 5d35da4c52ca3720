package cli

import (
	"runtime/debug"
	"testing"
)

func TestServerGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	t.Run("without GOGC the server's target is set", func(t *testing.T) {
		t.Setenv("GOGC", "")
		if got := serverGC(); got != serverGCPercent {
			t.Errorf("serverGC() = %d, want %d", got, serverGCPercent)
		}
		if got := debug.SetGCPercent(100); got != serverGCPercent {
			t.Errorf("the GC percent in force is %d, want %d", got, serverGCPercent)
		}
	})
	t.Run("GOGC set is left in force", func(t *testing.T) {
		t.Setenv("GOGC", "150")
		debug.SetGCPercent(150) // as the runtime read it at start
		if got := serverGC(); got != 150 {
			t.Errorf("serverGC() = %d, want 150", got)
		}
		if got := debug.SetGCPercent(100); got != 150 {
			t.Errorf("the GC percent in force is %d, want 150", got)
		}
	})
}
