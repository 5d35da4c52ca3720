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
//	char *tasker_serve(long long handle, const char *worker_json, tasker_step_fn fn);
//	void  tasker_step_result(unsigned long long token, const char *completions, size_t len);
//
// tasker_call sends one request to the engine's API in process (no socket)
// and answers {"status": S, "body": B}: the pull-worker routes
// (/v1/workers/..., docs/workers.md: register, poll, complete, checkpoint
// yield, heartbeat, metrics), task creation and reads, and the rest of
// docs/api.md. Every function returns JSON the caller frees with
// tasker_free; a failure is {"error": {"kind": K, "message": M}}, never a
// crash of the host. Every function may be called from any thread.
//
// tasker_serve registers a push worker: the engine calls fn(token, events,
// len) on its own threads, at most the worker's concurrency at once, and
// fn answers with tasker_step_result(token, completions, len) before it
// returns (docs/libtasker.md).
// docs/workers.md describes the config and the calls.
package main

/*
#include <stdlib.h>

// The host's step function (tasker_serve): it runs the events (a JSON
// array, len bytes, valid during the call) and gives their completions (a
// JSON array, one per event in their order) with
// tasker_step_result(token, ...) before it returns.
typedef void (*tasker_step_fn)(unsigned long long token, const char *events, size_t len);

static inline void tasker_call_step(tasker_step_fn f, unsigned long long token, const char *events, size_t len) {
	f(token, events, len);
}
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"runtime/cgo"
	"sync"
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

// stepSlot receives a call's completions (tasker_step_result), which may
// come from another thread than the call's: closed once the call returned
// and its answer was read.
type stepSlot struct {
	mu     sync.Mutex
	out    []byte
	err    error
	max    int
	closed bool
}

//export tasker_serve
func tasker_serve(handle C.longlong, config *C.char, fn C.tasker_step_fn) *C.char {
	if fn == nil {
		return out(host.Serve(int64(handle), in(config), nil))
	}
	return out(host.Serve(int64(handle), in(config), func(events []byte, max int) ([]byte, error) {
		slot := &stepSlot{max: max}
		token := cgo.NewHandle(slot)
		// The events' bytes are Go memory without pointers, passed for
		// the duration of the call (the cgo rules allow it).
		C.tasker_call_step(fn, C.ulonglong(token), (*C.char)(unsafe.Pointer(unsafe.SliceData(events))), C.size_t(len(events)))
		token.Delete()
		slot.mu.Lock()
		defer slot.mu.Unlock()
		slot.closed = true
		switch {
		case slot.err != nil:
			return nil, slot.err
		case slot.out == nil:
			return nil, errors.New("the host's step function gave no completions (it must call tasker_step_result before it returns)")
		}
		return slot.out, nil
	}))
}

// tasker_step_result gives the completions of the events a step function
// runs; token is the one it was called with. It copies them. An unknown
// token (a call that returned already) is ignored; a second result for a
// call replaces the first.
//
//export tasker_step_result
func tasker_step_result(token C.ulonglong, completions *C.char, n C.size_t) {
	defer func() { _ = recover() }() // an unknown token: cgo.Handle.Value panics
	slot, ok := cgo.Handle(token).Value().(*stepSlot)
	if !ok {
		return
	}
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.closed {
		return
	}
	slot.out, slot.err = nil, nil
	switch {
	case completions == nil:
		slot.err = errors.New("tasker_step_result was given no completions (NULL)")
	case uint64(n) > uint64(slot.max):
		slot.err = fmt.Errorf("the completions are %d bytes, more than the engine's body limit of %d (max_body_bytes): return smaller results, or open the engine with a larger max_body_bytes", uint64(n), slot.max)
	default:
		slot.out = bytes.Clone(unsafe.Slice((*byte)(unsafe.Pointer(completions)), int(n)))
	}
}

func main() {}
