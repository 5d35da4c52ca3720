// Package api serves tasker-core's orchestration REST API (api/openapi.yaml)
// over an Engine: the handlers implement the strict server interface that
// oapi-codegen generates into internal/api/gen.
package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/google/uuid"
	"go.yaml.in/yaml/v3"

	"github.com/tasker-go/tasker"
	specfile "github.com/tasker-go/tasker/api"
	"github.com/tasker-go/tasker/internal/api/gen"
	"github.com/tasker-go/tasker/internal/auth"
	"github.com/tasker-go/tasker/internal/resilience"
	"github.com/tasker-go/tasker/taskertype"
)

// Clock tells the time; the zero Config uses the wall clock.
type Clock interface{ Now() time.Time }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Config configures a Server.
type Config struct {
	// Engine is the engine the API drives. Required.
	Engine *tasker.Engine
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
	// Clock stamps health answers; nil means the wall clock.
	Clock Clock
	// MaxBodyBytes bounds a request body; a larger one is answered 413.
	// Zero means 1 MiB.
	MaxBodyBytes int64
	// Version is reported by the health routes; empty means "dev".
	Version string
	// Auth, when set, checks every route's credentials and permission
	// (docs/api.md); nil leaves the API open, as tasker-core's default.
	Auth *auth.Authenticator
	// QueueDepthTimeout bounds the queue depth reads of a /metrics scrape
	// and of /health/detailed. Zero means 2s.
	QueueDepthTimeout time.Duration
	// Settings is what GET /config reports of the process's configuration
	// beyond the engine's; the zero value reports the defaults.
	Settings Settings
	// MaxEventStreams bounds the open event streams (zero:
	// DefaultMaxEventStreams); EventBuffer is each one's bus buffer (zero:
	// DefaultEventBuffer); Heartbeat and EventPoll their comment and store
	// read intervals (zero: DefaultHeartbeat, DefaultEventPoll);
	// EventSettle how long a stream keeps reading the log below the newest
	// transition it saw (zero: DefaultEventSettle).
	MaxEventStreams, EventBuffer      int
	Heartbeat, EventPoll, EventSettle time.Duration
	// MaxWorkers bounds the pull workers registered at once
	// (/v1/workers); zero means 1024.
	MaxWorkers int
	// MaxPollTimeout caps how long a worker's poll waits for an event;
	// zero means 30s.
	MaxPollTimeout time.Duration
	// WorkerTTL: a pull worker that neither polls, completes nor
	// heartbeats for this long is deregistered and the events it holds
	// fail as retryable. Zero means twice MaxPollTimeout, at least 1m.
	WorkerTTL time.Duration
}

// DefaultMaxBodyBytes is the body limit when Config.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 1 << 20

// Server is the HTTP API of one engine.
type Server struct {
	eng     *tasker.Engine
	log     *slog.Logger
	clock   Clock
	maxBody int64
	version string
	spec    []byte // the spec as JSON
	auth    *auth.Authenticator
	metrics *metrics
	qdepth  time.Duration
	set     Settings

	streams              chan struct{} // a token per open event stream
	eventBuffer          int
	heartbeat, eventPoll time.Duration
	eventSettle          time.Duration
	closing              context.Context // done once CloseStreams is called
	closeStreams         context.CancelFunc

	workers *registry    // the pull workers (workers.go)
	polled  *polledTasks // what the pull route knows of the tasks of polled events
}

// New returns a Server, or an error naming what is wrong with cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Engine == nil {
		return nil, errors.New("api: no engine: set Config.Engine")
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("api: MaxBodyBytes %d: give a positive limit, or 0 for the default of 1 MiB", cfg.MaxBodyBytes)
	}
	if cfg.QueueDepthTimeout < 0 {
		return nil, fmt.Errorf("api: QueueDepthTimeout %s: give a positive duration, or 0 for 2s", cfg.QueueDepthTimeout)
	}
	s := &Server{eng: cfg.Engine, log: cfg.Logger, clock: cfg.Clock, maxBody: cfg.MaxBodyBytes, version: cfg.Version,
		auth: cfg.Auth, qdepth: cmp.Or(cfg.QueueDepthTimeout, 2*time.Second), set: cfg.Settings}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = wallClock{}
	}
	if s.maxBody == 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	if s.version == "" {
		s.version = "dev"
	}
	if cfg.MaxEventStreams < 0 || cfg.EventBuffer < 0 || cfg.Heartbeat < 0 || cfg.EventPoll < 0 || cfg.EventSettle < 0 {
		return nil, errors.New("api: MaxEventStreams, EventBuffer, Heartbeat, EventPoll and EventSettle must not be negative (0 means the default)")
	}
	s.streams = make(chan struct{}, cmp.Or(cfg.MaxEventStreams, DefaultMaxEventStreams))
	s.eventBuffer = cmp.Or(cfg.EventBuffer, DefaultEventBuffer)
	s.heartbeat = cmp.Or(cfg.Heartbeat, DefaultHeartbeat)
	s.eventPoll = cmp.Or(cfg.EventPoll, DefaultEventPoll)
	s.eventSettle = cmp.Or(cfg.EventSettle, DefaultEventSettle)
	s.closing, s.closeStreams = context.WithCancel(context.Background())
	spec, err := specJSON()
	if err != nil {
		return nil, err
	}
	s.spec = spec
	s.metrics = newMetrics(s.eng, s.qdepth)
	if cfg.MaxWorkers < 0 || cfg.MaxPollTimeout < 0 || cfg.WorkerTTL < 0 {
		return nil, fmt.Errorf("api: MaxWorkers %d, MaxPollTimeout %v, WorkerTTL %v: give positive values, or 0 for the defaults", cfg.MaxWorkers, cfg.MaxPollTimeout, cfg.WorkerTTL)
	}
	rc := registryConfig{maxWorkers: cmp.Or(cfg.MaxWorkers, defaultMaxWorkers), maxPoll: cmp.Or(cfg.MaxPollTimeout, defaultPollTimeout), ttl: cfg.WorkerTTL}
	if rc.ttl == 0 {
		rc.ttl = max(2*rc.maxPoll, time.Minute)
	}
	ch := s.eng.Pull()
	m := ch.Metrics()
	rc.remember = max(4*m.Capacity, 1024)
	s.workers = newRegistry(rc, m, ch.CompleteTimeout(), ch.IsPending)
	s.polled = newPolledTasks(defaultPolledTasks)
	s.workers.release = func(worker string, ids []uuid.UUID) {
		n := s.releaseEvents(worker, ids, "expired (no poll, completion or heartbeat within the registration ttl)", false)
		s.log.Warn("pull worker expired", "worker_id", worker, "released", n, "unserved_released", s.releaseUnserved(), "ttl", rc.ttl)
	}
	// Steps whose handler no Go handler has go to the pull workers while
	// a registered worker serves that handler (Config.PullUnregistered).
	s.eng.ServePullHandlers(func(namespace, name string) bool { return s.workers.serves(namespace, name, s.clock.Now()) })
	return s, nil
}

// CloseStreams ends the open event streams (and refuses none: a stream
// opened after it ends at once). Give it to http.Server.RegisterOnShutdown:
// Shutdown does not end a request that never goes idle.
func (s *Server) CloseStreams() { s.closeStreams() }

// specJSON converts the embedded YAML spec to JSON.
func specJSON() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(specfile.OpenAPI, &doc); err != nil {
		return nil, fmt.Errorf("api: read the embedded spec: %w", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("api: encode the spec as JSON: %w", err)
	}
	return b, nil
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	strict := gen.NewStrictHandlerWithOptions(s, nil, gen.StrictHTTPServerOptions{
		RequestErrorHandlerFunc:  s.requestError,
		ResponseErrorHandlerFunc: s.responseError,
	})
	gen.HandlerWithOptions(createTaskServer{ServerInterface: strict, s: s}, gen.StdHTTPServerOptions{
		BaseRouter:       mux,
		ErrorHandlerFunc: s.requestError,
	})
	mux.HandleFunc("GET /v1/tasks/{uuid}/events", s.streamTaskEvents)
	mux.HandleFunc("POST /v1/templates", s.validateTemplate)
	mux.HandleFunc("GET /api-docs/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.spec)
	})
	mux.Handle("GET /metrics", s.metrics.handler())
	// Credentials and permission are checked before the body is read.
	return withRoute(mux, s.instrument(s.recoverPanics(s.authorize(s.limitBody(s.strictFields(mux))))))
}

type requestIDKey struct{}

// requestID returns the id recoverPanics gave the request ("" outside one).
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// recoverPanics gives each request an id (the X-Request-Id it came with,
// else a new one), answers it in X-Request-Id, logs each request at debug,
// and turns a handler's panic into a logged 500 carrying the id.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 {
			id = uuid.NewString()
		}
		w.Header().Set("X-Request-Id", id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		start := s.clock.Now()
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "api handler panicked", "request_id", id, "method", r.Method,
					"path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				writeError(w, http.StatusInternalServerError, "Internal", "internal error (request "+id+"; the server's log has the details)")
				return
			}
			s.log.DebugContext(r.Context(), "api request", "request_id", id, "method", r.Method, "path", r.URL.Path,
				"duration", s.clock.Now().Sub(start))
		}()
		next.ServeHTTP(w, r)
	})
}

// limitBody answers 413 to a body declared too large and caps every body
// read at the limit (the decoder then fails with *http.MaxBytesError).
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.maxBody {
			writeError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge",
				fmt.Sprintf("the request body is %d bytes, more than the limit of %d: send less (the server's --max-body-bytes)", r.ContentLength, s.maxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		next.ServeHTTP(w, r)
	})
}

// errNotImplemented marks a route of the spec this server does not serve
// yet; it is answered 501.
var errNotImplemented = errors.New("not implemented")

// badRequest is an input error found by a handler.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// requestError answers a request the generated code could not decode
// (a bad path or query parameter, malformed JSON).
func (s *Server) requestError(w http.ResponseWriter, _ *http.Request, err error) {
	if mb := (*http.MaxBytesError)(nil); errors.As(err, &mb) {
		writeError(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge",
			fmt.Sprintf("the request body is more than the limit of %d bytes: send less (the server's --max-body-bytes)", mb.Limit))
		return
	}
	writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
}

// responseError maps a handler's error to its status and the spec's
// ApiError.
func (s *Server) responseError(w http.ResponseWriter, r *http.Request, err error) {
	var br *badRequest
	var mb *http.MaxBytesError
	var un *unavailable
	var cf *conflict
	var se *statusError
	var fb *forbidden
	switch {
	case errors.As(err, &fb):
		s.metrics.authFailure(auth.ReasonForbidden)
		writeAuthError(w, http.StatusForbidden, "AuthorizationError", fb.msg, auth.ReasonForbidden)
	case errors.As(err, &se):
		writeError(w, se.status, se.kind, se.msg)
	case errors.As(err, &un):
		writeUnit(w, http.StatusServiceUnavailable, "ServiceUnavailable")
	case errors.Is(err, errNotImplemented):
		writeError(w, http.StatusNotImplemented, "NotImplemented",
			fmt.Sprintf("%s %s is in tasker-core's API but not implemented by this server yet (docs/api.md lists the routes served)", r.Method, r.URL.Path))
	case errors.As(err, &mb):
		s.requestError(w, r, err)
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, "BadRequest", br.msg)
	case errors.As(err, &cf):
		writeError(w, http.StatusConflict, "Conflict", err.Error())
	case errors.Is(err, resilience.ErrOpen):
		// A circuit breaker in front of the database or the queue is
		// open: come back once it may close.
		w.Header().Set("Retry-After", strconv.Itoa(s.breakerRetry()))
		writeBackpressure(w, err.Error(), int64(s.breakerRetry()))
	case errors.Is(err, taskertype.ErrNotFound):
		writeError(w, http.StatusNotFound, "NotFound", err.Error())
	case errors.Is(err, taskertype.ErrDuplicateTask):
		// tasker-core's answer to a duplicate identity (TAS-154): the
		// message names the existing task.
		writeError(w, http.StatusConflict, "Conflict", err.Error())
	case errors.Is(err, taskertype.ErrInvalid):
		writeError(w, http.StatusBadRequest, "BadRequest", err.Error())
	case errors.Is(err, taskertype.ErrIllegalTransition), errors.Is(err, taskertype.ErrStaleState):
		writeError(w, http.StatusConflict, "Conflict", err.Error())
	case errors.Is(err, taskertype.ErrQueueFull):
		w.Header().Set("Retry-After", "1")
		writeBackpressure(w, err.Error(), 1)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeUnit(w, http.StatusServiceUnavailable, "Timeout")
	default:
		s.log.ErrorContext(r.Context(), "api request failed", "request_id", requestID(r.Context()), "method", r.Method, "path", r.URL.Path, "error", err)
		writeUnit(w, http.StatusInternalServerError, "Internal")
	}
}

// breakerRetry is the Retry-After of an open breaker, in seconds: the
// breakers' default open period.
func (s *Server) breakerRetry() int {
	return max(1, int(resilience.DefaultOpenFor/time.Second))
}

// writeError writes the spec's ApiError form {"Kind": {"message": msg}}.
func writeError(w http.ResponseWriter, status int, kind, msg string) {
	writeJSON(w, status, map[string]map[string]string{kind: {"message": msg}})
}

// writeUnit writes an ApiError variant that carries no fields ("Internal").
func writeUnit(w http.ResponseWriter, status int, kind string) { writeJSON(w, status, kind) }

func writeBackpressure(w http.ResponseWriter, reason string, retryAfter int64) {
	writeJSON(w, http.StatusServiceUnavailable, map[string]any{
		"Backpressure": map[string]any{"reason": reason, "retry_after_seconds": retryAfter}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var _ gen.StrictServerInterface = (*Server)(nil)
