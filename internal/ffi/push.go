package ffi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tasker-go/tasker/internal/api"
	"github.com/tasker-go/tasker/internal/api/gen"
)

// Push workers (tasker_serve): the engine calls the host for each step,
// instead of host threads polling for them (tasker_call on
// /v1/workers/.../poll).
//
// A push worker is a pull worker of the API (docs/workers.md) whose poll
// loop runs in Go: Concurrency goroutines each long-poll the dispatch
// channel through the API's own PollWorkerEvents (no HTTP, no router),
// call the host's function with the event's JSON, and carry its
// completion with their next poll. Everything the poll route does holds:
// the dispatch channel's bound, the complete timeout, 404/409 on a stale
// event, hand-backs, the metrics (the worker is listed under its id). What
// changes is where a waiting thread waits: a host thread that polls
// enters Go and stays locked to its goroutine while it waits, so every
// event handed to it wakes that OS thread; a push worker waits as an
// ordinary goroutine, and the host's code runs on whatever thread the Go
// scheduler has, for the duration of the call only.

// HostFunc runs one event in the host: event is the WorkerEvent's JSON
// (docs/workers.md), valid only during the call; it returns the
// completion's JSON (a WorkerCompletion; its event_id is ignored: it
// completes this event), or nil when the host gave none. It may be called
// from several goroutines at once, at most the worker's Concurrency.
type HostFunc func(event []byte) []byte

// ServeConfig is the JSON of tasker_serve: the worker's registration and how
// it calls the host.
type ServeConfig struct {
	WorkerID   string   `json:"worker_id"`
	Namespaces []string `json:"namespaces"`
	Handlers   []string `json:"handlers"`
	// Concurrency is how many calls of the host run at once (goroutines
	// calling it): default DefaultServeConcurrency, at most
	// MaxServeConcurrency.
	Concurrency int `json:"concurrency"`
	// Batch is how many events one call may carry once the host's
	// handlers are fast (a moving average under batchFast per event,
	// after batchWarmup calls): default DefaultServeBatch, 1 for one
	// event a call, at most MaxServeBatch. A batch's events run in turn,
	// so a handler that turns slow holds up the rest of its batch (at
	// most Batch-1 events) for as long as it runs; the goroutine then
	// takes one event a call until its handlers are fast again.
	Batch int `json:"batch"`
}

// Bounds of a push worker.
const (
	// DefaultServeConcurrency suits handlers that hold a lock for their
	// whole run (Python's GIL, for no-op and CPU-bound handlers): more
	// calls at once only queue on it (docs/benchmarks.md). Handlers that
	// wait on I/O without the lock want more.
	DefaultServeConcurrency = 2
	MaxServeConcurrency     = 1024
	DefaultServeBatch       = 8
	MaxServeBatch           = 1000 // the poll route's own bound
	batchFast               = time.Millisecond
	batchWarmup             = 4
	// pushPoll is how long an idle push goroutine waits in one poll; the
	// API bounds it too (its max poll timeout).
	pushPoll = 20 * time.Second
)

// served is one push worker of an instance.
type served struct {
	id    string
	reg   *gen.WorkerRegistration
	call  HostFunc
	batch int
	log   *slog.Logger
	wg    sync.WaitGroup // its goroutines
}

// Serve registers a push worker on an engine and starts its goroutines; it
// answers {"worker_id": ID, "concurrency": N}. The worker runs until
// tasker_stop, which lets the calls in progress finish (within its
// timeout), sends their completions and deregisters it.
func (h *Host) Serve(handle int64, configJSON []byte, call HostFunc) (out []byte) {
	defer guard(&out)
	if call == nil {
		return errJSON(KindInvalid, "tasker_serve: no step function: give the function the engine calls with each event")
	}
	var cfg ServeConfig
	dec := json.NewDecoder(bytes.NewReader(configJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return errJSON(KindInvalid, "tasker_serve: the config is not valid JSON of the expected fields (worker_id, namespaces, handlers, concurrency): %v", err)
	}
	if cfg.Concurrency < 0 || cfg.Concurrency > MaxServeConcurrency {
		return errJSON(KindInvalid, "tasker_serve: concurrency %d: give the events the host runs at once, 1 to %d (0: %d)", cfg.Concurrency, MaxServeConcurrency, DefaultServeConcurrency)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultServeConcurrency
	}
	if cfg.Batch < 0 || cfg.Batch > MaxServeBatch {
		return errJSON(KindInvalid, "tasker_serve: batch %d: give the events one call may carry, 1 to %d (0: %d)", cfg.Batch, MaxServeBatch, DefaultServeBatch)
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultServeBatch
	}
	in := h.acquire(handle)
	if in == nil {
		return errJSON(KindUnknownHandle, "handle %d: no engine is open under it (tasker_open returns the handle; tasker_stop ends it)", handle)
	}
	defer in.calls.Done()
	conc := cfg.Concurrency
	reg := &gen.WorkerRegistration{WorkerId: cfg.WorkerID, Namespaces: cfg.Namespaces, Handlers: cfg.Handlers, Concurrency: &conc}
	// The registration and the goroutines' start are one step for Stop:
	// under in.mu, which Stop takes before it waits for the goroutines.
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopping {
		return errJSON(KindUnknownHandle, "handle %d: the engine is stopping", handle)
	}
	for _, o := range in.served {
		if o.id == cfg.WorkerID {
			return errJSON(KindInvalid, "tasker_serve: worker_id %q is served already on this engine: give each push worker its own id", cfg.WorkerID)
		}
	}
	if _, err := in.srv.RegisterWorker(in.ctx, gen.RegisterWorkerRequestObject{Body: reg}); err != nil {
		return errJSON(KindInvalid, "tasker_serve: %v", err)
	}
	s := &served{id: cfg.WorkerID, reg: reg, call: call, batch: cfg.Batch, log: in.log.With("worker_id", cfg.WorkerID)}
	in.served = append(in.served, s)
	s.wg.Add(conc + 1)
	for range conc {
		go func() { defer s.wg.Done(); in.pushLoop(s) }()
	}
	go func() { defer s.wg.Done(); in.pushHeartbeat(s) }()
	b, _ := json.Marshal(map[string]any{"worker_id": cfg.WorkerID, "concurrency": conc})
	return b
}

// pushLoop is one of a push worker's goroutines: a poll carries the
// completion of the event it ran last and waits for the next one. Once the
// engine stops, it sends what it holds and returns.
func (in *instance) pushLoop(s *served) {
	zero, wait := 0, int(pushPoll/time.Millisecond)
	var done []gen.WorkerCompletion
	var sp speed
	backoff := 10 * time.Millisecond
	for {
		stopping := in.ctx.Err() != nil
		if stopping && len(done) == 0 {
			return
		}
		want := 1
		if sp.fast() {
			want = s.batch
		}
		ctx, body := in.ctx, &gen.WorkerPollRequest{MaxEvents: &want, TimeoutMs: &wait}
		if stopping {
			// The completions still go: the engine's stop waits for them.
			ctx, body.MaxEvents = context.WithoutCancel(in.ctx), &zero
		}
		if len(done) > 0 {
			body.Completions = &done
		}
		resp, err := in.srv.PollWorkerEvents(ctx, gen.PollWorkerEventsRequestObject{WorkerId: s.id, Body: body})
		if err != nil {
			if in.ctx.Err() != nil && !stopping {
				// The stop ended the wait: the completions went first.
				done = done[:0]
				continue
			}
			if stopping {
				return
			}
			// Expired (a registration unseen past its ttl) or an engine
			// error: the events held were released with it, and these
			// completions would be refused.
			s.log.Warn("push worker: poll failed; its completions are dropped (their steps run again)", "error", err, "completions", len(done))
			done = done[:0]
			if api.WorkerGone(err) {
				in.reregister(s)
			}
			select {
			case <-time.After(backoff):
			case <-in.ctx.Done():
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		r, ok := resp.(gen.PollWorkerEvents200JSONResponse)
		if !ok {
			s.log.Error("push worker: unexpected poll answer", "type", fmt.Sprintf("%T", resp))
			done = done[:0]
			continue
		}
		for _, c := range r.Completions {
			if c.Status != "accepted" {
				s.log.Warn("push worker: completion refused", "event_id", c.EventId, "status", c.Status, "message", c.Message)
			}
		}
		done = done[:0]
		if len(r.Events) > 0 {
			t0 := time.Now()
			done = s.run(r.Events, done)
			sp.add(time.Since(t0) / time.Duration(len(r.Events)))
		}
	}
}

// speed is a push goroutine's recent time per event (a moving average):
// fast once it has timed batchWarmup calls and while the average stays
// under batchFast.
type speed struct {
	avg time.Duration
	n   int
}

func (p *speed) add(d time.Duration) {
	p.n++
	if p.n == 1 {
		p.avg = d
		return
	}
	p.avg += (d - p.avg) / 4
}

func (p *speed) fast() bool { return p.n >= batchWarmup && p.avg < batchFast }

// run calls the host with events (a JSON array) and appends their
// completions (the host's array, in the same order) to done. Whatever
// happens, each event gets a completion: one the host did not give fails
// as retryable.
func (s *served) run(events []gen.WorkerEvent, done []gen.WorkerCompletion) []gen.WorkerCompletion {
	fail := func(ev *gen.WorkerEvent, format string, args ...any) gen.WorkerCompletion {
		id, retry, typ := ev.EventId, true, "host_error"
		return gen.WorkerCompletion{EventId: &id, Outcome: "failure",
			Error: &gen.WorkerStepError{Message: fmt.Sprintf(format, args...), ErrorType: &typ, Retryable: &retry}}
	}
	var got []gen.WorkerCompletion
	why := func() (why string) {
		defer func() {
			if r := recover(); r != nil {
				why = fmt.Sprintf("the push worker failed to run the step: %v", r)
			}
		}()
		raw, err := json.Marshal(events)
		if err != nil {
			return fmt.Sprintf("the event could not be encoded: %v", err)
		}
		out := s.call(raw)
		if out == nil {
			return "the host's step function gave no completion (it must call tasker_step_result before it returns)"
		}
		if err := json.Unmarshal(out, &got); err != nil {
			return fmt.Sprintf("the host's completions are not a JSON array of WorkerCompletion: %v", err)
		}
		return ""
	}()
	for i := range events {
		ev := &events[i]
		if i >= len(got) {
			msg := why
			if msg == "" {
				msg = fmt.Sprintf("the host gave %d completions for %d events: one per event, in their order", len(got), len(events))
			}
			done = append(done, fail(ev, "%s", msg))
			continue
		}
		c := got[i]
		id := ev.EventId
		c.EventId = &id // the event at its position, whatever the host wrote
		done = append(done, c)
	}
	return done
}

// reregister registers s again after the engine forgot it (someone
// deregistered it through tasker_call, or it expired).
func (in *instance) reregister(s *served) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopping {
		return
	}
	if _, err := in.srv.RegisterWorker(in.ctx, gen.RegisterWorkerRequestObject{Body: s.reg}); err != nil {
		s.log.Warn("push worker: register again failed", "error", err)
		return
	}
	s.log.Info("push worker registered again: the engine had forgotten it")
}

// pushHeartbeat keeps the events s's calls hold from timing out while the
// host runs them, and its registration alive, as the SDK's heartbeat does
// for a polling worker: every third of the complete timeout (at most 10 s).
func (in *instance) pushHeartbeat(s *served) {
	every := min(in.eng.Pull().CompleteTimeout()/3, 10*time.Second)
	t := time.NewTicker(max(every, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-in.ctx.Done():
			return
		case <-t.C:
		}
		if _, err := in.srv.HeartbeatWorker(in.ctx, gen.HeartbeatWorkerRequestObject{WorkerId: s.id}); err != nil && in.ctx.Err() == nil {
			s.log.Warn("push worker: heartbeat failed", "error", err)
		}
	}
}

// stopServing ends the push workers of in: it waits (until ctx ends) for
// their goroutines, which send their last completions, then deregisters
// them; what they still hold fails as retryable.
func (in *instance) stopServing(ctx context.Context) {
	in.mu.Lock()
	in.stopping = true
	all := in.served
	in.mu.Unlock()
	for _, s := range all {
		ended := make(chan struct{})
		go func() { s.wg.Wait(); close(ended) }()
		select {
		case <-ended:
		case <-ctx.Done():
		}
		if _, err := in.srv.DeregisterWorker(context.WithoutCancel(ctx), gen.DeregisterWorkerRequestObject{WorkerId: s.id}); err != nil && !api.WorkerGone(err) {
			s.log.Warn("push worker: deregister failed", "error", err)
		}
	}
}
