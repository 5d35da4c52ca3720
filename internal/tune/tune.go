// Package tune sets the Go runtime for the engine's long-running processes:
// the garbage collector's target of `tasker serve`, `tasker worker`,
// `tasker bench` and libtasker's host processes, and, in a host process
// that embeds the engine through the C ABI (cmd/libtasker), the Ps its
// goroutines need besides the host's threads. Each applies only where its
// environment variable (GOGC, GOMAXPROCS) is not set: the operator's
// setting wins, as for any Go program.
package tune

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
)

// ServerGCPercent is the garbage collector's target (GOGC) of the
// long-running processes, `tasker serve` and `tasker worker`, of `tasker
// bench`, which measures what they do, and of libtasker's host processes,
// when the GOGC environment variable is not set. Their live heap is small
// (a few MB) and every request and step allocates, so at Go's default of
// 100 the collector runs every few MB allocated, dozens of times a second
// under load, each cycle scanning the stacks of every goroutine: at 400 it
// runs a fifth as often, for a heap that may grow to five times the live
// one instead of twice (docs/benchmarks.md: the Go CPU of an HTTP create
// 0.73x, of a drained single-step task 0.75x in the means of two runs
// each). GOGC, and GOMEMLIMIT to bound the heap, override it as for any Go
// program.
const ServerGCPercent = 400

// ServerGC applies ServerGCPercent unless GOGC is set, and returns the
// target in force (-1: off).
func ServerGC() int {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(ServerGCPercent)
	return ServerGCPercent
}

// HostThreadPs is how many Ps, beyond the runtime's default (the CPUs it
// may use), libtasker keeps in a host process for the host's threads. A
// host thread that calls into the library and returns keeps the P it ran
// on, as if in a system call, until it calls again or the runtime's
// monitor takes the P back, 20 µs to 10 ms later: with as many Ps as CPUs,
// a few host threads between their calls (a Python worker's pollers, a
// thread that just sent its completions) hold them all and the engine's
// goroutines (the worker that reports a completed step, the committer)
// wait for the monitor. Four more Ps let them run at once; a P a host
// thread holds costs nothing while it is not running Go code. Measured on
// 2 CPUs with the Python SDK's defaults (2 threads in a long poll, batches
// of 8): docs/benchmarks.md, "libtasker's Go runtime". The engine sizes
// its defaults by the CPUs, not by these Ps (tasker.Config.Procs).
const HostThreadPs = 4

// HostProcs raises GOMAXPROCS by HostThreadPs unless the GOMAXPROCS
// environment variable sets it (a positive number, as the runtime reads
// it), and returns the value in force. Setting it stops the runtime's own
// updates of GOMAXPROCS (Go 1.25 and later follow the process's CPU quota
// and affinity as they change): the value stays Go's default at the call,
// plus HostThreadPs.
func HostProcs() int {
	if n, err := strconv.Atoi(os.Getenv("GOMAXPROCS")); err == nil && n > 0 {
		return runtime.GOMAXPROCS(0)
	}
	n := runtime.GOMAXPROCS(0) + HostThreadPs
	runtime.GOMAXPROCS(n)
	return n
}
