package cli

import (
	"os"
	"runtime/debug"
)

// serverGCPercent is the garbage collector's target (GOGC) of the
// long-running processes, `tasker serve` and `tasker worker`, and of
// `tasker bench`, which measures what they do, when the GOGC environment
// variable is not set. Their live heap is small (a few MB) and every
// request and step allocates, so at Go's default of 100 the collector runs
// every few MB allocated, dozens of times a second under load, each cycle
// scanning the stacks of every goroutine: at 400 it runs a fifth as often,
// for a heap that may grow to five times the live one instead of twice
// (docs/benchmarks.md: the Go CPU of an HTTP create 0.73x, of a drained
// single-step task 0.75x in the means of two runs each). GOGC, and
// GOMEMLIMIT to bound the heap, override it as for any Go program.
const serverGCPercent = 400

// serverGC applies serverGCPercent unless GOGC is set, and returns the
// target in force (-1: off).
func serverGC() int {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(serverGCPercent)
	return serverGCPercent
}
