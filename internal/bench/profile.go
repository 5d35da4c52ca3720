package bench

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startCPUProfile writes a CPU profile of what follows to path ("": none)
// until the returned stop is called; stop may be called more than once. A
// profile that cannot start leaves no file behind; what names the mode
// in the error.
func startCPUProfile(path, what string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: the CPU profile: %w", what, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("%s: the CPU profile: %w", what, err)
	}
	profiling := true
	return func() error {
		if !profiling {
			return nil
		}
		profiling = false
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
