// Command libtasker is the C ABI of the engine, built as a shared library:
//
//	go build -buildmode=c-shared -o libtasker.so ./cmd/libtasker
//
// (make libtasker), which also writes libtasker.h. A host process (Python
// through ctypes, Ruby through FFI, Node through a native addon) embeds an
// engine and runs its steps' handlers, as tasker-core's FFI workers do:
//
//	char *tasker_open(const char *config_json);          // {"handle": N}
//	char *tasker_call(long long handle, const char *method, const char *path, const char *body);
//	char *tasker_cleanup_timeouts(long long handle);     // {"expired": N}
//	char *tasker_stop(long long handle, long long timeout_ms);
//	void  tasker_free(char *s);
//
// tasker_call sends one request to the engine's API in process (no socket)
// and answers {"status": S, "body": B}: the pull-worker routes
// (/v1/workers/..., docs/workers.md: register, poll, complete, checkpoint
// yield, heartbeat, metrics), task creation and reads, and the rest of
// docs/api.md. Every function returns JSON the caller frees with
// tasker_free; a failure is {"error": {"kind": K, "message": M}}, never a
// crash of the host. Every function may be called from any thread.
// docs/workers.md describes the config and the calls.
package main

/*
#include <stdlib.h>
*/
import "C"

import (
	"runtime"
	"time"
	"unsafe"

	"github.com/tasker-go/tasker/internal/ffi"
	"github.com/tasker-go/tasker/internal/tune"
)

var host = newHost() // the library's state: one per process, as a C library has

// newHost tunes the library's Go runtime, the engine's alone, and makes
// the Host: the collector's target of tasker serve (GOGC=400) and Ps for
// the host's threads besides the CPUs (internal/tune), each unless its
// environment variable (GOGC, GOMAXPROCS) is set. The engines size their
// defaults (worker concurrency, outcome transactions) by the CPUs, as
// GOMAXPROCS was before.
func newHost() *ffi.Host {
	procs := runtime.GOMAXPROCS(0)
	tune.ServerGC()
	tune.HostProcs()
	return ffi.NewHost(ffi.HostOptions{Procs: procs})
}

func out(b []byte) *C.char { return C.CString(string(b)) }

func in(s *C.char) []byte {
	if s == nil {
		return nil
	}
	return []byte(C.GoString(s))
}

//export tasker_open
func tasker_open(config *C.char) *C.char { return out(host.Open(in(config))) }

//export tasker_call
func tasker_call(handle C.longlong, method, path, body *C.char) *C.char {
	return out(host.Call(int64(handle), string(in(method)), string(in(path)), in(body)))
}

//export tasker_cleanup_timeouts
func tasker_cleanup_timeouts(handle C.longlong) *C.char {
	return out(host.CleanupTimeouts(int64(handle)))
}

//export tasker_stop
func tasker_stop(handle C.longlong, timeoutMS C.longlong) *C.char {
	d := time.Duration(timeoutMS) * time.Millisecond
	if d <= 0 {
		d = 30 * time.Second
	}
	return out(host.Stop(int64(handle), d))
}

//export tasker_free
func tasker_free(s *C.char) { C.free(unsafe.Pointer(s)) }

func main() {}
