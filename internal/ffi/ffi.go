// Package ffi embeds engines in a host process for the C ABI (cmd/libtasker):
// a Python, Ruby or TypeScript host opens an engine with a JSON config and
// drives it with JSON in and out, as tasker-core's FFI workers do.
//
// Every call goes through the HTTP API's handler (internal/api) in process,
// with no socket: the pull-worker protocol (/v1/workers/...), its bounds and
// its errors are the same as over HTTP (docs/workers.md), and so are task
// creation and reads. Errors come back as values, never as a crash of the
// host: a bad config, an unknown handle and a panic in a call are each a
// JSON error (docs/libtasker.md says what remains fatal).
// A Host is safe for concurrent use from any thread.
package ffi

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/api"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/template"
)

// MaxEngines bounds the engines a Host holds open at once.
const MaxEngines = 64

// maxResponse bounds a response body: larger is an error, not a host's
// unbounded allocation.
const maxResponse = 64 << 20

// Config is the JSON an engine opens with (tasker_open).
type Config struct {
	// DatabasePath is the embedded database file (default "tasker.db")
	// unless DatabaseURL names a PostgreSQL database.
	DatabasePath string `json:"database_path"`
	DatabaseURL  string `json:"database_url"`
	// Migrate applies PostgreSQL's migrations (the embedded database
	// always migrates).
	Migrate bool `json:"migrate"`
	// Templates are template files and directories (every *.yaml/*.yml
	// directly inside), registered at open.
	Templates []string `json:"templates"`
	// Environment selects tasker-core templates' environment overrides
	// (default "production").
	Environment string `json:"environment"`
	// Namespaces are the namespaces whose steps this engine's workers
	// take; default: the templates'.
	Namespaces []string `json:"namespaces"`
	// PullCapacity bounds the steps waiting for or held by the host's
	// workers (default: the engine's worker concurrency);
	// CompleteTimeoutMS fails a step held longer than this as retryable
	// (default 5 minutes).
	PullCapacity      int   `json:"pull_capacity"`
	CompleteTimeoutMS int64 `json:"complete_timeout_ms"`
	// WorkerConcurrency bounds the steps in flight in this engine.
	WorkerConcurrency int `json:"worker_concurrency"`
	// NoOrchestration: another process orchestrates.
	NoOrchestration bool `json:"no_orchestration"`
	// MaxBodyBytes bounds a request body (default 1 MiB).
	MaxBodyBytes int64 `json:"max_body_bytes"`
	// LogLevel: "" (no logs), "error", "warn", "info" or "debug", to stderr.
	LogLevel string `json:"log_level"`
	// DemoHandlers registers the built-in Go handlers of `tasker serve`
	// (demo.noop, demo.square, ...; internal/demo) before the engine
	// starts, so that a host can run Go and host handlers side by side in
	// one engine (sdk/python/bench/inprocess.py). Default false: every
	// step goes to the host's workers.
	DemoHandlers bool `json:"demo_handlers"`
}

// Host holds the engines a host process opened.
type Host struct {
	procs int // HostOptions.Procs

	mu      sync.Mutex // guards the fields below; never held across an engine call
	next    int64
	engines map[int64]*instance
	serving int // calls the push workers of every engine may make at once (MaxServeConcurrency)
}

// HostOptions configure a Host.
type HostOptions struct {
	// Procs is the processors the engines size their defaults by
	// (tasker.Config.Procs): cmd/libtasker gives GOMAXPROCS as it was
	// before it added Ps for the host's threads (tune.HostProcs). 0: the
	// engine's default, GOMAXPROCS at its open.
	Procs int
}

// NewHost returns an empty Host.
func NewHost(o HostOptions) *Host {
	return &Host{procs: o.Procs, engines: map[int64]*instance{}}
}

type instance struct {
	eng     *tasker.Engine
	srv     *api.Server
	log     *slog.Logger
	maxBody int // the API's body limit: the most bytes of a push worker's completions
	handler http.Handler
	ctx     context.Context // ends at Stop: long polls return
	cancel  context.CancelFunc
	calls   sync.WaitGroup // calls in progress; Stop waits for them

	mu       sync.Mutex // guards the fields below; never held across a wait or a log
	stopping bool       // Stop has begun: no more push workers
	served   []*served  // push workers (tasker_serve)
}

// Error is the JSON of a failed call: {"error": {"kind": ..., "message": ...}}.
type Error struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Error kinds.
const (
	KindInvalid       = "invalid_input"  // a bad config, method, path or JSON
	KindUnknownHandle = "unknown_handle" // not opened, or stopped
	KindOpen          = "open_failed"    // the engine could not open or start
	KindLimit         = "limit"          // MaxEngines are open
	KindInternal      = "internal"       // a panic, recovered; the message has it
	KindStillRunning  = "still_running"  // tasker_stop: calls of a push worker outlived the timeout
)

func errJSON(kind, format string, args ...any) []byte {
	b, _ := json.Marshal(struct {
		Error Error `json:"error"`
	}{Error{Kind: kind, Message: fmt.Sprintf(format, args...)}})
	return b
}

// guard turns a panic into a JSON error: the host never crashes.
func guard(out *[]byte) {
	if r := recover(); r != nil {
		*out = errJSON(KindInternal, "tasker: internal error (a bug; please report it): %v\n%s", r, debug.Stack())
	}
}

// Open opens and starts an engine; it answers {"handle": N}.
func (h *Host) Open(configJSON []byte) (out []byte) {
	defer guard(&out)
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(configJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return errJSON(KindInvalid, "tasker_open: the config is not valid JSON of the expected fields (database_path, database_url, migrate, templates, environment, namespaces, pull_capacity, complete_timeout_ms, worker_concurrency, no_orchestration, max_body_bytes, log_level, demo_handlers): %v", err)
	}
	// The slot is taken before the engine opens (nil until it has), so
	// that concurrent opens cannot exceed MaxEngines.
	h.mu.Lock()
	if len(h.engines) >= MaxEngines {
		h.mu.Unlock()
		return errJSON(KindLimit, "tasker_open: %d engines are open already: stop one (tasker_stop) first", MaxEngines)
	}
	h.next++
	id := h.next
	h.engines[id] = nil
	h.mu.Unlock()
	in, err := open(cfg, h.procs)
	h.mu.Lock()
	if err != nil {
		delete(h.engines, id)
	} else {
		h.engines[id] = in
	}
	h.mu.Unlock()
	if err != nil {
		return errJSON(KindOpen, "tasker_open: %v", err)
	}
	b, _ := json.Marshal(map[string]int64{"handle": id})
	return b
}

func logger(level string) (*slog.Logger, error) {
	var l slog.Level
	switch strings.ToLower(level) {
	case "":
		return slog.New(slog.DiscardHandler), nil
	case "error":
		l = slog.LevelError
	case "warn":
		l = slog.LevelWarn
	case "info":
		l = slog.LevelInfo
	case "debug":
		l = slog.LevelDebug
	default:
		return nil, fmt.Errorf("log_level %q: give error, warn, info, debug or nothing", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func open(cfg Config, procs int) (*instance, error) {
	if cfg.PullCapacity < 0 || cfg.CompleteTimeoutMS < 0 || cfg.WorkerConcurrency < 0 || cfg.MaxBodyBytes < 0 {
		return nil, errors.New("pull_capacity, complete_timeout_ms, worker_concurrency and max_body_bytes must not be negative (0 means the default)")
	}
	log, err := logger(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	tpls, err := template.Loader{Environment: cfg.Environment}.LoadPaths(cfg.Templates...)
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	ecfg := tasker.Config{
		DatabasePath: cfg.DatabasePath, DatabaseURL: cfg.DatabaseURL, AutoMigrate: cfg.Migrate,
		Templates: tpls, Environment: cfg.Environment, WorkerNamespaces: cfg.Namespaces,
		WorkerConcurrency: cfg.WorkerConcurrency, DisableOrchestration: cfg.NoOrchestration,
		Logger: log, PullUnregistered: true, Procs: procs,
		Pull: tasker.PullConfig{Capacity: cfg.PullCapacity, CompleteTimeout: time.Duration(cfg.CompleteTimeoutMS) * time.Millisecond},
	}
	// The engine lives until Stop, whatever the call that opened it.
	eng, err := tasker.Open(context.Background(), ecfg)
	if err != nil {
		return nil, err
	}
	if cfg.DemoHandlers {
		for name, h := range demo.Handlers() {
			if err := eng.RegisterHandler(name, h); err != nil {
				_ = eng.Stop(context.Background())
				return nil, fmt.Errorf("demo_handlers: %w", err)
			}
		}
	}
	srv, err := api.New(api.Config{Engine: eng, Logger: log, MaxBodyBytes: cfg.MaxBodyBytes})
	if err == nil {
		err = eng.Start(context.Background())
	}
	if err != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = eng.Stop(sctx)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &instance{eng: eng, srv: srv, log: log, maxBody: int(cmp.Or(cfg.MaxBodyBytes, api.DefaultMaxBodyBytes)),
		handler: srv.Handler(), ctx: ctx, cancel: cancel}, nil
}

// acquire returns the engine of a handle, counted as in a call until
// release; nil if there is none.
func (h *Host) acquire(handle int64) *instance {
	h.mu.Lock()
	defer h.mu.Unlock()
	in := h.engines[handle]
	if in != nil {
		in.calls.Add(1)
	}
	return in
}

// Call sends one request to an engine's API in process and answers
// {"status": S, "body": B}: B is the response's JSON (null if empty). The
// method and path are the API's (docs/api.md, docs/workers.md), the path
// with its query; body may be empty.
func (h *Host) Call(handle int64, method, path string, body []byte) (out []byte) {
	defer guard(&out)
	in := h.acquire(handle)
	if in == nil {
		return errJSON(KindUnknownHandle, "handle %d: no engine is open under it (tasker_open returns the handle; tasker_stop ends it)", handle)
	}
	defer in.calls.Done()
	if !strings.HasPrefix(path, "/") {
		return errJSON(KindInvalid, "path %q: give the API's path, starting with /, such as /v1/workers/{id}/poll", path)
	}
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete, http.MethodPut:
	default:
		return errJSON(KindInvalid, "method %q: give GET, POST, PUT, PATCH or DELETE", method)
	}
	req, err := http.NewRequestWithContext(in.ctx, method, path, bytes.NewReader(body))
	if err != nil {
		return errJSON(KindInvalid, "%s %s: %v", method, path, err)
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	req.RemoteAddr = "ffi"
	rec := &recorder{header: http.Header{}}
	in.handler.ServeHTTP(rec, req)
	if rec.overflow {
		return errJSON(KindInternal, "%s %s: the response is larger than %d bytes", method, path, maxResponse)
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	raw := bytes.TrimSpace(rec.body.Bytes())
	if len(raw) == 0 {
		raw = []byte("null")
	} else if !json.Valid(raw) {
		// Not JSON (a plain-text error): carried as a string.
		raw, _ = json.Marshal(string(raw))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"status":%d,"body":`, status)
	b.Write(raw)
	b.WriteByte('}')
	return b.Bytes()
}

// CleanupTimeouts fails as retryable, now, the steps the host's workers
// hold past the complete timeout (the engine also does it on its own, on a
// timer); it answers {"expired": N}.
func (h *Host) CleanupTimeouts(handle int64) (out []byte) {
	defer guard(&out)
	in := h.acquire(handle)
	if in == nil {
		return errJSON(KindUnknownHandle, "handle %d: no engine is open under it", handle)
	}
	defer in.calls.Done()
	b, _ := json.Marshal(map[string]int{"expired": in.eng.Pull().CleanupTimeouts()})
	return b
}

// Stop stops an engine: its long polls return, its push workers' calls in
// progress finish and their completions are stored, the steps its workers
// hold are given back, and the handle ends. It answers {"stopped": true},
// or a still_running error when push workers' calls outlived the timeout.
func (h *Host) Stop(handle int64, timeout time.Duration) (out []byte) {
	defer guard(&out)
	h.mu.Lock()
	in := h.engines[handle]
	if in != nil {
		delete(h.engines, handle)
	}
	h.mu.Unlock()
	if in == nil {
		return errJSON(KindUnknownHandle, "handle %d: no engine is open under it (stopped already?)", handle)
	}
	in.cancel() // the long polls in progress return
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	running := h.stopServing(ctx, in)
	calls := make(chan struct{})
	go func() { in.calls.Wait(); close(calls) }()
	select {
	case <-calls:
	case <-ctx.Done():
		// A call still runs (a completion storing its outcome): the
		// engine's stop waits for what it must, within the same timeout.
	}
	err := in.eng.Stop(ctx)
	if running > 0 {
		// Their steps failed as retryable at the deregistration; the
		// host must not tear down what the calls use before they return.
		return errJSON(KindStillRunning, "stop: push workers' step function calls still running: %d at the timeout; their steps will run again, but the calls have not returned (what they give with tasker_step_result is ignored); the handle is gone and the engine stops (%v)", running, cmp.Or[any](err, "stopped"))
	}
	if err != nil {
		// Engine.Stop closed the engine's backend before it returned,
		// also after a timeout: what still runs fails at its next
		// database call, and the steps it held run again later.
		return errJSON(KindInternal, "stop: %v (the handle is gone and the engine's database is closed; work still running at the timeout fails at its next database call, and the steps it held run again later)", err)
	}
	return []byte(`{"stopped":true}`)
}

// recorder is the http.ResponseWriter of an in-process call.
type recorder struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	overflow bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len()+len(p) > maxResponse {
		r.overflow = true
		return 0, errors.New("ffi: response too large")
	}
	return r.body.Write(p)
}
