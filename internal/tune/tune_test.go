package tune

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestServerGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	t.Run("without GOGC the server's target is set", func(t *testing.T) {
		t.Setenv("GOGC", "")
		if got := ServerGC(); got != ServerGCPercent {
			t.Errorf("ServerGC() = %d, want %d", got, ServerGCPercent)
		}
		if got := debug.SetGCPercent(100); got != ServerGCPercent {
			t.Errorf("the GC percent in force is %d, want %d", got, ServerGCPercent)
		}
	})
	t.Run("GOGC set is left in force", func(t *testing.T) {
		t.Setenv("GOGC", "150")
		debug.SetGCPercent(150) // as the runtime read it at start
		if got := ServerGC(); got != 150 {
			t.Errorf("ServerGC() = %d, want 150", got)
		}
		if got := debug.SetGCPercent(100); got != 150 {
			t.Errorf("the GC percent in force is %d, want 150", got)
		}
	})
}

func TestHostProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	t.Run("without GOMAXPROCS the host's Ps are added", func(t *testing.T) {
		t.Setenv("GOMAXPROCS", "")
		runtime.GOMAXPROCS(3)
		if got := HostProcs(); got != 3+HostThreadPs {
			t.Errorf("HostProcs() = %d, want %d", got, 3+HostThreadPs)
		}
		if got := runtime.GOMAXPROCS(0); got != 3+HostThreadPs {
			t.Errorf("GOMAXPROCS in force is %d, want %d", got, 3+HostThreadPs)
		}
	})
	t.Run("GOMAXPROCS set is left in force", func(t *testing.T) {
		t.Setenv("GOMAXPROCS", "2")
		runtime.GOMAXPROCS(2) // as the runtime read it at start
		if got := HostProcs(); got != 2 {
			t.Errorf("HostProcs() = %d, want 2", got)
		}
		if got := runtime.GOMAXPROCS(0); got != 2 {
			t.Errorf("GOMAXPROCS in force is %d, want 2", got)
		}
	})
}
