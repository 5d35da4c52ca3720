package ffi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

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
// call the host's function with the event's JSON (an array of one: a
// batch of several was measured no faster, docs/benchmarks.md), and carry
// the completion with their next poll. Everything the poll route does holds:
// the dispatch channel's bound, the complete timeout, 404/409 on a stale
// event, hand-backs, the body limit, the metrics (the worker is listed
// under its id). What changes is where a waiting thread waits: a host
// thread that polls enters Go and stays locked to its goroutine while it
// waits, so every event handed to it wakes that OS thread; a push worker
// waits as an ordinary goroutine, and the host's code runs on whatever
// thread the Go scheduler has, for the duration of the call only.

// HostFunc runs events in the host. events is a JSON array of WorkerEvent
// (docs/workers.md), valid only during the call; it returns a JSON array
// of WorkerCompletion, one per event in their order (their event_id is
// ignored: position decides), or an error saying why there is none. The
// array it returns becomes the engine's (the results it holds are read
// in place): it must not be changed or reused after the call. max is
// the engine's body limit, which bounds the answer (cmd/libtasker's
// wrapper refuses a larger one, failing the call's events). It is called
// from at most the worker's Concurrency goroutines at once.
type HostFunc func(events []byte, max int) ([]byte, error)

// ServeConfig is the JSON of tasker_serve: the worker's registration and how
// it calls the host.
type ServeConfig struct {
	WorkerID   string   `json:"worker_id"`
	Namespaces []string `json:"namespaces"`
	Handlers   []string `json:"handlers"`
	// Concurrency is how many calls of the host run at once (goroutines
	// calling it): default DefaultServeConcurrency; the calls of all the
	// push workers of a Host together at most MaxServeConcurrency.
	Concurrency int `json:"concurrency"`
}

// Bounds of push workers.
const (
	// DefaultServeConcurrency suits handlers that hold a lock for their
	// whole run (Python's GIL, for no-op and CPU-bound handlers): more
	// calls at once only queue on it. Handlers that wait on I/O without
	// the lock want more.
	DefaultServeConcurrency = 2
	// MaxServeConcurrency bounds the calls of a Host's push workers
	// together: each call blocked in the host holds an OS thread, and the
	// Go runtime ends the process past 10,000.
	MaxServeConcurrency = 1024
	// pushWait is how long an idle push goroutine waits in one poll; the
	// API bounds it too (its max poll timeout).
	pushWait = 20 * time.Second
	// drainedWait is how long a worker that handed an event back (which
	// drains it: no more events) waits before it registers again, so that
	// a host handing back whatever it gets does not spin on the steps.
	drainedWait = time.Second
	// eventsBufSize is the room a call's events' JSON starts with: an
	// event of a no-op chain step takes about 500 bytes. (A buffer kept
	// by each goroutine for its next call saved 45 ns a call in medians,
	// within the noise, and held memory for the worker's lifetime: BenchmarkPushJSON,
	// docs/concurrency.md.)
	eventsBufSize = 1024
)

// served is one push worker of an instance.
type served struct {
	id    string
	reg   *gen.WorkerRegistration
	call  HostFunc
	conc  int
	log   *slog.Logger
	loops sync.WaitGroup // its poll goroutines

	// The heartbeat outlives the poll goroutines: a stop waits for the
	// calls in progress, whose events it keeps from timing out meanwhile.
	hbStop context.CancelFunc
	hbDone chan struct{}

	started bool // its goroutines run (under the instance's mu)

	// A stop whose timeout ended with calls in progress abandons the
	// worker: its goroutines then fail what they hold without calling the
	// host, which the stop's answer said was still running inCalls calls.
	abandoned atomic.Bool
	inCalls   atomic.Int32

	mu   sync.Mutex
	held map[uuid.UUID]struct{} // events of calls in progress, or whose completions are on their way: at most conc
}

func (s *served) hold(events []gen.WorkerEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range events {
		s.held[events[i].EventId] = struct{}{}
	}
}

func (s *served) release(done []gen.WorkerCompletion) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range done {
		delete(s.held, *c.EventId)
	}
}

func (s *served) heldIDs() []uuid.UUID {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]uuid.UUID, 0, len(s.held))
	for id := range s.held {
		ids = append(ids, id)
	}
	return ids
}

// Serve registers a push worker on an engine and starts its goroutines; it
// answers {"worker_id": ID, "concurrency": N}. The worker runs
// until tasker_stop, which lets the calls in progress finish (within its
// timeout), sends their completions and deregisters it.
func (h *Host) Serve(handle int64, configJSON []byte, call HostFunc) (out []byte) {
	defer guard(&out)
	if call == nil {
		return errJSON(KindInvalid, "tasker_serve: no step function: give the function the engine calls with the events")
	}
	var cfg ServeConfig
	dec := json.NewDecoder(bytes.NewReader(configJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return errJSON(KindInvalid, "tasker_serve: the config is not valid JSON of the expected fields (worker_id, namespaces, handlers, concurrency): %v", err)
	}
	if cfg.Concurrency < 0 || cfg.Concurrency > MaxServeConcurrency {
		return errJSON(KindInvalid, "tasker_serve: concurrency %d: give the calls the host runs at once, 1 to %d (0: %d)", cfg.Concurrency, MaxServeConcurrency, DefaultServeConcurrency)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultServeConcurrency
	}
	in := h.acquire(handle)
	if in == nil {
		return errJSON(KindUnknownHandle, "handle %d: no engine is open under it (tasker_open returns the handle; tasker_stop ends it)", handle)
	}
	defer in.calls.Done()
	conc := cfg.Concurrency
	s := &served{id: cfg.WorkerID, call: call, conc: conc, held: map[uuid.UUID]struct{}{},
		reg: &gen.WorkerRegistration{WorkerId: cfg.WorkerID, Namespaces: cfg.Namespaces, Handlers: cfg.Handlers, Concurrency: &conc},
		log: in.log.With("worker_id", cfg.WorkerID)}
	// The id and the Host's bound on calls are taken first, so that two
	// Serves cannot both pass; the registration is made without in.mu
	// (it logs), and the goroutines start under it, so that a stop that
	// began meanwhile sees either no goroutines of s or all of them.
	if msg := h.reserve(in, s); msg != "" {
		return []byte(msg)
	}
	started := false
	defer func() {
		if !started {
			h.unreserve(in, s)
		}
	}()
	if in.srv.WorkerRegistered(cfg.WorkerID) {
		return errJSON(KindInvalid, "tasker_serve: worker_id %q is registered already (a polling worker, through tasker_call): give the push worker its own id", cfg.WorkerID)
	}
	if _, err := in.srv.RegisterWorker(in.ctx, gen.RegisterWorkerRequestObject{Body: s.reg}); err != nil {
		return errJSON(KindInvalid, "tasker_serve: %v", err)
	}
	in.mu.Lock()
	if in.stopping {
		in.mu.Unlock()
		_, _ = in.srv.DeregisterWorker(context.WithoutCancel(in.ctx), gen.DeregisterWorkerRequestObject{WorkerId: s.id})
		return errJSON(KindUnknownHandle, "handle %d: the engine is stopping", handle)
	}
	started = true
	hbCtx, hbStop := context.WithCancel(context.WithoutCancel(in.ctx))
	s.hbStop, s.hbDone, s.started = hbStop, make(chan struct{}), true
	s.loops.Add(conc)
	for range conc {
		go func() { defer s.loops.Done(); in.pushLoop(s) }()
	}
	go func() { defer close(s.hbDone); in.pushHeartbeat(hbCtx, s) }()
	in.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"worker_id": cfg.WorkerID, "concurrency": conc})
	return b
}

// reserve takes s's id on in and its calls from the Host's bound; it
// answers an error's JSON, or "".
func (h *Host) reserve(in *instance, s *served) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	switch {
	case in.stopping:
		return string(errJSON(KindUnknownHandle, "tasker_serve: the engine is stopping"))
	case h.serving+s.conc > MaxServeConcurrency:
		return string(errJSON(KindLimit, "tasker_serve: the push workers of this process would make %d calls at once, more than %d: give less concurrency, or stop an engine first", h.serving+s.conc, MaxServeConcurrency))
	}
	for _, o := range in.served {
		if o.id == s.id {
			return string(errJSON(KindInvalid, "tasker_serve: worker_id %q is served already on this engine: give each push worker its own id", s.id))
		}
	}
	h.serving += s.conc
	in.served = append(in.served, s)
	return ""
}

// unreserve gives back what reserve took.
func (h *Host) unreserve(in *instance, s *served) {
	h.mu.Lock()
	defer h.mu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	h.serving -= s.conc
	for i, o := range in.served {
		if o == s {
			in.served = append(in.served[:i], in.served[i+1:]...)
			break
		}
	}
}

// pushLoop is one of a push worker's goroutines: a poll carries the
// completion of the event it ran last and waits for the next one. Once
// the engine stops, it sends what it holds and returns.
func (in *instance) pushLoop(s *served) {
	var done []gen.WorkerCompletion
	backoff := 10 * time.Millisecond
	for {
		stopping := in.ctx.Err() != nil
		if stopping && len(done) == 0 {
			return
		}
		want := 1
		ctx := in.ctx
		if stopping {
			// The completions still go: the stop waits for them.
			ctx, want = context.WithoutCancel(in.ctx), 0
		}
		if handsBack(done) {
			// It drains the worker: a poll would wait its whole timeout.
			want = 0
		}
		sent := done
		r, err := in.pushPoll(ctx, s, want, sent)
		s.release(sent)
		done = nil
		if err != nil {
			switch {
			case stopping:
				return
			case in.ctx.Err() != nil:
				// The stop ended the wait: the completions went first.
				continue
			}
			// Expired (a registration unseen past its ttl), deregistered
			// through tasker_call, or an engine error: the events held
			// were released with it, and these completions refused.
			s.log.Warn("push worker: poll failed; the completions it carried may be lost (their steps then run again)", "error", err, "completions", len(sent))
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
		in.answered(s, r.Completions)
		if handsBack(sent) && !stopping {
			// A hand-back drained the worker: after a while, it registers
			// again (its held events stay its own).
			select {
			case <-time.After(drainedWait):
			case <-in.ctx.Done():
			}
			in.reregister(s)
		}
		if len(r.Events) > 0 {
			s.hold(r.Events)
			done = s.run(r.Events, done, in.maxBody)
		}
	}
}

// pushPoll is one poll of s, a panic in the engine's route being an error.
func (in *instance) pushPoll(ctx context.Context, s *served, want int, done []gen.WorkerCompletion) (r gen.PollWorkerEvents200JSONResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("tasker: internal error in the poll (a bug; please report it): %v", p)
		}
	}()
	wait := int(pushWait / time.Millisecond)
	body := &gen.WorkerPollRequest{MaxEvents: &want, TimeoutMs: &wait}
	if len(done) > 0 {
		body.Completions = &done
	}
	resp, err := in.srv.PollWorkerEvents(ctx, gen.PollWorkerEventsRequestObject{WorkerId: s.id, Body: body})
	if err != nil {
		return r, err
	}
	r, ok := resp.(gen.PollWorkerEvents200JSONResponse)
	if !ok {
		return r, fmt.Errorf("tasker: the poll answered %T", resp)
	}
	return r, nil
}

// answered logs the completions the engine refused: run checks each
// against the poll route's rules first, so a refusal means the event
// timed out or its step ended meanwhile.
func (in *instance) answered(s *served, answers []gen.WorkerCompletionResult) {
	for _, a := range answers {
		if a.Status != "accepted" {
			s.log.Warn("push worker: completion refused", "event_id", a.EventId, "status", a.Status, "message", a.Message)
		}
	}
}

// handsBack reports whether done holds a hand-back, which drains the
// worker whatever the engine answers.
func handsBack(done []gen.WorkerCompletion) bool {
	for _, c := range done {
		if c.Outcome == "handed_back" {
			return true
		}
	}
	return false
}

// failure is the completion that fails an event as retryable, host_error.
func failure(id uuid.UUID, format string, args ...any) gen.WorkerCompletion {
	retry, typ := true, "host_error"
	return gen.WorkerCompletion{EventId: &id, Outcome: "failure",
		Error: &gen.WorkerStepError{Message: fmt.Sprintf(format, args...), ErrorType: &typ, Retryable: &retry}}
}

// run calls the host with events and appends their completions (the host's
// array, in the same order) to done. Whatever happens, each event gets a
// completion: one the host did not give, or gave as something other than
// a completion, fails as retryable (host_error) saying why.
func (s *served) run(events []gen.WorkerEvent, done []gen.WorkerCompletion, max int) []gen.WorkerCompletion {
	var got []hostCompletion
	why := func() (why string) {
		defer func() {
			if r := recover(); r != nil {
				why = fmt.Sprintf("the push worker failed to run the step: %v", r)
			}
		}()
		raw, err := appendEvents(make([]byte, 0, eventsBufSize), events)
		if err != nil {
			return fmt.Sprintf("the events could not be encoded: %v", err)
		}
		if s.abandoned.Load() {
			return "the engine stopped before the host ran the step"
		}
		s.inCalls.Add(1)
		if s.abandoned.Load() { // the stop may have counted this call, which does not happen
			s.inCalls.Add(-1)
			return "the engine stopped before the host ran the step"
		}
		out, err := s.call(raw, max)
		s.inCalls.Add(-1)
		if err != nil {
			return err.Error()
		}
		if got, err = hostCompletions(out); err != nil {
			return fmt.Sprintf("the host's answer is not a JSON array of completions: %v", err)
		}
		return ""
	}()
	for i := range events {
		id := events[i].EventId
		if i >= len(got) {
			msg := why
			if msg == "" {
				msg = fmt.Sprintf("the host gave %d completions for %d events: one per event, in their order", len(got), len(events))
			}
			done = append(done, failure(id, "%s", msg))
			continue
		}
		c := got[i].c
		if c.Outcome == "" {
			done = append(done, failure(id, "the host's completion %d is not a WorkerCompletion (an object with an outcome): %.200s", i, got[i].raw))
			continue
		}
		// Refused by the engine, it would leave the event held: it fails
		// now instead, saying why.
		if err := api.CheckCompletion(&c, events[i].Batch != nil); err != nil {
			done = append(done, failure(id, "the engine refuses the host's completion: %v", err))
			continue
		}
		c.EventId = &id // the event at its position, whatever the host wrote
		done = append(done, c)
	}
	return done
}

// hostCompletion is one element of the host's answer: the completion, or,
// where the element is not one, a zero completion and the element.
type hostCompletion struct {
	c   gen.WorkerCompletion
	raw json.RawMessage
}

// hostCompletions decodes the host's answer in one pass when every element
// is a completion (the common case; successes without encoding/json,
// fastCompletions); else element by element, so that an
// element that is not a completion fails its own event only, quoted. An
// error: not a JSON array.
func hostCompletions(out []byte) ([]hostCompletion, error) {
	if got, ok := fastCompletions(out); ok {
		return got, nil
	}
	var cs []gen.WorkerCompletion
	if json.Unmarshal(out, &cs) == nil && !slices.ContainsFunc(cs, func(c gen.WorkerCompletion) bool { return c.Outcome == "" }) {
		got := make([]hostCompletion, len(cs))
		for i := range cs {
			got[i].c = cs[i]
		}
		return got, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(out, &raws); err != nil {
		return nil, err
	}
	got := make([]hostCompletion, len(raws))
	for i, r := range raws {
		if json.Unmarshal(r, &got[i].c) != nil {
			got[i].c = gen.WorkerCompletion{}
		}
		got[i].raw = r
	}
	return got, nil
}

// reregister registers s again after the engine forgot it (someone
// deregistered it through tasker_call, or it expired) or drained it (it
// handed an event back).
func (in *instance) reregister(s *served) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("push worker: register again failed (a bug; please report it)", "panic", p)
		}
	}()
	if in.ctx.Err() != nil {
		return
	}
	if _, err := in.srv.RegisterWorker(in.ctx, gen.RegisterWorkerRequestObject{Body: s.reg}); err != nil {
		s.log.Warn("push worker: register again failed", "error", err)
		return
	}
	s.log.Info("push worker registered again")
}

// pushHeartbeat keeps the events of s's calls in progress from timing out
// while the host runs them, and its registration alive, as the SDK's
// heartbeat does for a polling worker: every third of the complete timeout
// (at most 10 s), for the events s holds only. A host call that never
// returns keeps its step held, as a polling worker's handler would.
func (in *instance) pushHeartbeat(ctx context.Context, s *served) {
	every := min(in.eng.Pull().CompleteTimeout()/3, 10*time.Second)
	t := time.NewTicker(max(every, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ids := s.heldIDs()
		func() {
			defer func() {
				if p := recover(); p != nil {
					s.log.Error("push worker: heartbeat failed (a bug; please report it)", "panic", p)
				}
			}()
			_, err := in.srv.HeartbeatWorker(ctx, gen.HeartbeatWorkerRequestObject{WorkerId: s.id,
				Body: &gen.WorkerHeartbeat{EventIds: &ids}})
			switch {
			case err == nil || ctx.Err() != nil:
			case api.WorkerGone(err):
				// Forgotten: the poll goroutines, in a long poll, would
				// find out only when it ends.
				in.reregister(s)
			default:
				s.log.Warn("push worker: heartbeat failed", "error", err)
			}
		}()
	}
}

// stopServing ends the push workers of in: it waits (until ctx ends) for
// their poll goroutines, which send the completions of the calls in
// progress, then stops their heartbeats and deregisters them (what they
// still hold fails as retryable). It returns how many calls of the host
// were still running at ctx's end; the events those workers hold and have
// not given the host yet fail without calling it.
func (h *Host) stopServing(ctx context.Context, in *instance) int {
	in.mu.Lock()
	in.stopping = true
	var all []*served
	for _, s := range in.served {
		// One not started yet is its Serve's: it sees the stop, and
		// deregisters and gives back its calls itself.
		if s.started {
			all = append(all, s)
		}
	}
	in.mu.Unlock()
	running := 0
	for _, s := range all {
		ended := make(chan struct{})
		go func() {
			s.loops.Wait()
			// Its calls' threads are free only now.
			h.mu.Lock()
			h.serving -= s.conc
			h.mu.Unlock()
			close(ended)
		}()
		select {
		case <-ended:
		case <-ctx.Done():
			s.abandoned.Store(true)
			running += int(s.inCalls.Load())
		}
		s.hbStop()
		<-s.hbDone
		if _, err := in.srv.DeregisterWorker(context.WithoutCancel(ctx), gen.DeregisterWorkerRequestObject{WorkerId: s.id}); err != nil && !api.WorkerGone(err) {
			s.log.Warn("push worker: deregister failed", "error", err)
		}
	}
	return running
}
