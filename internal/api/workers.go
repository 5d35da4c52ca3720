package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/api/gen"
	"github.com/tasker-go/tasker/internal/auth"
	"github.com/tasker-go/tasker/taskertype"
)

// The pull-worker routes (/v1/workers/..., docs/workers.md): a worker in
// any language registers the namespaces and handlers it serves, polls the
// engine's dispatch channel over HTTP for the steps it may run, and
// completes them. Every event passes through the channel, whose semaphore
// bounds the events in flight whatever the workers do.

// Limits of the worker routes.
const (
	maxPollEvents      = 1000 // events one poll may ask for
	maxWorkerIDLen     = 200
	maxWorkerNames     = 1000 // namespaces or handlers of one registration
	defaultMaxWorkers  = 1024
	defaultPollTimeout = 30 * time.Second
)

// The wire's enums, spelled here: the generated names change when another
// enum of the spec shares a value.
const (
	stAccepted    gen.WorkerCompletionResultStatus = "accepted"
	stNotFound    gen.WorkerCompletionResultStatus = "not_found"
	stConflict    gen.WorkerCompletionResultStatus = "conflict"
	stInvalid     gen.WorkerCompletionResultStatus = "invalid"
	outSuccess    gen.WorkerCompletionOutcome      = "success"
	outFailure    gen.WorkerCompletionOutcome      = "failure"
	outCheckpoint gen.WorkerCompletionOutcome      = "checkpoint_yield"
	outHandedBack gen.WorkerCompletionOutcome      = "handed_back"
)

// statusError is an error a handler answers with its own status.
type statusError struct {
	status int
	kind   string
	msg    string
	gone   bool // the worker named is not registered (workerNotFound)
}

func (e *statusError) Error() string { return e.msg }

// forbidden is a 403 a handler finds (auth passed the route's permission,
// but the caller may not act on this resource).
type forbidden struct{ msg string }

func (e *forbidden) Error() string { return e.msg }

func workerForbidden(id string) error {
	return &forbidden{fmt.Sprintf("pull worker %q was registered by another principal: only that principal may poll, complete, heartbeat, deregister or re-register it; register a worker of your own under another worker_id", id)}
}

// workerOwner is the principal that owns the workers the request registers
// or acts on: "" with auth off (anyone may act on any worker). With auth
// on, a token without a sub names no one and may not.
func (s *Server) workerOwner(ctx context.Context) (string, error) {
	if s.auth == nil {
		return "", nil
	}
	p := auth.PrincipalFrom(ctx)
	if p == nil || p.ID == "" {
		return "", &forbidden{"a pull worker belongs to the principal that registers it, and this token has no sub claim to name one: use a token with a subject, or an API key"}
	}
	return p.ID, nil
}

func workerNotFound(id string) error {
	return &statusError{status: http.StatusNotFound, kind: "NotFound", gone: true,
		msg: fmt.Sprintf("no worker is registered under %q (the server restarted, or the registration expired after no poll or heartbeat): register it again with POST /v1/workers", id)}
}

// WorkerGone reports whether err is the answer to a worker the server does
// not know (not registered, deregistered or expired): register it again.
func WorkerGone(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.gone
}

// CheckCompletion says what the poll route would refuse in c, a completion
// of an event with a batch (batch) or without: nil if it takes it.
func CheckCompletion(c *gen.WorkerCompletion, batch bool) error {
	_, err := pullResult(c, batch)
	return err
}

// WorkerRegistered reports whether a pull worker is registered under id.
func (s *Server) WorkerRegistered(id string) bool {
	_, err := s.workers.get(id, "", s.clock.Now())
	return !WorkerGone(err)
}

// workerInfo converts a registered worker for the metrics answer.
func workerInfo(w *pullWorker, held int) gen.WorkerInfo {
	info := gen.WorkerInfo{WorkerId: w.id, Namespaces: w.namespaces, Handlers: w.handlers, Held: held,
		LastSeen: time.Unix(0, w.lastSeen.Load()).UTC()}
	if w.concurrency > 0 {
		c := w.concurrency
		info.Concurrency = &c
	}
	return info
}

// RegisterWorker implements POST /v1/workers.
func (s *Server) RegisterWorker(ctx context.Context, req gen.RegisterWorkerRequestObject) (gen.RegisterWorkerResponseObject, error) {
	owner, err := s.workerOwner(ctx)
	if err != nil {
		return nil, err
	}
	b := req.Body
	if b == nil {
		return nil, badf("no registration: send {\"worker_id\", \"namespaces\", \"handlers\"}")
	}
	if err := validWorker(b); err != nil {
		return nil, err
	}
	conc := 0
	if b.Concurrency != nil {
		if *b.Concurrency < 0 {
			return nil, badf("concurrency %d: give the steps the worker runs at once, a positive number", *b.Concurrency)
		}
		conc = *b.Concurrency
	}
	if _, err := s.workers.register(b.WorkerId, owner, b.Namespaces, b.Handlers, conc, s.clock.Now()); err != nil {
		return nil, err
	}
	s.log.Info("pull worker registered", "worker_id", b.WorkerId, "namespaces", b.Namespaces, "handlers", b.Handlers, "concurrency", conc)
	return gen.RegisterWorker200JSONResponse{
		WorkerId:          b.WorkerId,
		MaxPollTimeoutMs:  int(s.workers.cfg.maxPoll.Milliseconds()),
		CompleteTimeoutMs: int(s.workers.completeTimeout.Milliseconds()),
		RegistrationTtlMs: int(s.workers.cfg.ttl.Milliseconds()),
	}, nil
}

func validWorker(b *gen.WorkerRegistration) error {
	switch {
	case b.WorkerId == "" || len(b.WorkerId) > maxWorkerIDLen || strings.ContainsAny(b.WorkerId, "/?#"):
		return badf("worker_id %q: give a name of 1 to %d characters without '/', '?' or '#', unique among the live workers (e.g. host-pid)", b.WorkerId, maxWorkerIDLen)
	case len(b.Namespaces) == 0:
		return badf("worker %q names no namespace: list the namespaces whose steps it runs in \"namespaces\"", b.WorkerId)
	case len(b.Handlers) == 0:
		return badf("worker %q names no handler: list the handler names it runs in \"handlers\"", b.WorkerId)
	case len(b.Namespaces) > maxWorkerNames || len(b.Handlers) > maxWorkerNames:
		return badf("worker %q lists %d namespaces and %d handlers: at most %d of each", b.WorkerId, len(b.Namespaces), len(b.Handlers), maxWorkerNames)
	}
	for _, n := range append(append([]string(nil), b.Namespaces...), b.Handlers...) {
		if n == "" {
			return badf("worker %q lists an empty namespace or handler name", b.WorkerId)
		}
	}
	return nil
}

// DeregisterWorker implements DELETE /v1/workers/{worker_id}.
func (s *Server) DeregisterWorker(ctx context.Context, req gen.DeregisterWorkerRequestObject) (gen.DeregisterWorkerResponseObject, error) {
	owner, err := s.workerOwner(ctx)
	if err != nil {
		return nil, err
	}
	held, err := s.workers.deregister(req.WorkerId, owner)
	if err != nil {
		return nil, err
	}
	released := s.releaseEvents(req.WorkerId, held, "deregistered", false)
	unserved := s.releaseUnserved()
	s.log.Info("pull worker deregistered", "worker_id", req.WorkerId, "released", released, "unserved_released", unserved)
	return gen.DeregisterWorker200JSONResponse{WorkerId: req.WorkerId, Released: released}, nil
}

// releaseEvents ends the events a worker held without a result; it returns
// how many it ended. handBack: the worker never received them (it went
// away during the poll that took them), so their steps are dispatched
// again without counting the attempt; false: it received them and may
// still be running them (it deregistered, or expired, with them), so they
// fail as retryable, counted like a timeout: a step a worker keeps taking
// and dropping runs out of attempts instead of going round forever.
func (s *Server) releaseEvents(worker string, ids []uuid.UUID, why string, handBack bool) int {
	ch := s.eng.Pull()
	n := 0
	for _, id := range ids {
		msg := fmt.Sprintf("pull worker %q %s before it completed the step", worker, why)
		ok := false
		if handBack {
			ok = ch.Release(id, msg)
		} else {
			ok = ch.Complete(id, tasker.PullResult{Error: msg})
		}
		if ok {
			n++
		}
		s.workers.finish(id, "released: its worker "+why)
	}
	return n
}

// releaseUnserved gives back the queued events that no registered worker
// serves any more (their workers left before polling them): their steps
// then wait for a worker without spending an attempt, instead of holding a
// slot of the channel until their timeout fails them.
func (s *Server) releaseUnserved() int {
	return s.eng.Pull().ReleaseQueued(func(ev *tasker.PullEvent) bool {
		return !s.workers.servedNow(ev.Namespace, ev.Handler)
	}, "no registered pull worker serves the step any more")
}

// GetWorkerMetrics implements GET /v1/workers/metrics.
func (s *Server) GetWorkerMetrics(context.Context, gen.GetWorkerMetricsRequestObject) (gen.GetWorkerMetricsResponseObject, error) {
	m := s.eng.Pull().Metrics()
	now := s.clock.Now()
	s.workers.sweep(now, true)
	return gen.GetWorkerMetrics200JSONResponse{
		Queued: m.Queued, Pending: m.Pending, InFlight: m.InFlight, Capacity: m.Capacity,
		OldestPendingAgeMs: m.OldestAge.Milliseconds(), Starving: m.Starving,
		Completed: int64(m.Completed), TimedOut: int64(m.TimedOut), Abandoned: int64(m.Abandoned),
		Workers: s.workers.list(),
	}, nil
}

// HeartbeatWorker implements POST /v1/workers/{worker_id}/heartbeat.
func (s *Server) HeartbeatWorker(ctx context.Context, req gen.HeartbeatWorkerRequestObject) (gen.HeartbeatWorkerResponseObject, error) {
	owner, err := s.workerOwner(ctx)
	if err != nil {
		return nil, err
	}
	held, err := s.workers.touch(req.WorkerId, owner, s.clock.Now())
	if err != nil {
		return nil, err
	}
	ids := held
	if req.Body != nil && req.Body.EventIds != nil {
		ids = ids[:0:0]
		for _, id := range *req.Body.EventIds {
			ids = append(ids, id)
		}
	}
	ch := s.eng.Pull()
	out := gen.HeartbeatWorker200JSONResponse{WorkerId: req.WorkerId, Lost: []string{}}
	for _, id := range ids {
		if s.workers.holder(id) == req.WorkerId && ch.Extend(id) {
			out.Extended++
		} else {
			out.Lost = append(out.Lost, id.String())
		}
	}
	return out, nil
}

// CompleteWorkerEvent implements POST /v1/workers/{worker_id}/events/{event_id}/complete.
func (s *Server) CompleteWorkerEvent(ctx context.Context, req gen.CompleteWorkerEventRequestObject) (gen.CompleteWorkerEventResponseObject, error) {
	if req.Body == nil {
		return nil, badf("no completion: send {\"outcome\": \"success\", \"result\": ...} or a failure")
	}
	owner, err := s.workerOwner(ctx)
	if err != nil {
		return nil, err
	}
	w, err := s.workers.get(req.WorkerId, owner, s.clock.Now())
	if err != nil {
		return nil, err
	}
	if req.Body.EventId != nil && *req.Body.EventId != req.EventId {
		return nil, badf("the body's event_id %s is not the path's %s: leave it out, or send the same", *req.Body.EventId, req.EventId)
	}
	r := s.complete(w, req.EventId, req.Body)
	switch r.Status {
	case stAccepted:
		return gen.CompleteWorkerEvent200JSONResponse(r), nil
	case stNotFound:
		return nil, &statusError{status: http.StatusNotFound, kind: "NotFound", msg: *r.Message}
	case stConflict:
		return nil, &statusError{status: http.StatusConflict, kind: "Conflict", msg: *r.Message}
	}
	return nil, badf("%s", *r.Message)
}

// PollWorkerEvents implements POST /v1/workers/{worker_id}/poll: the
// completions first, then a long poll.
func (s *Server) PollWorkerEvents(ctx context.Context, req gen.PollWorkerEventsRequestObject) (gen.PollWorkerEventsResponseObject, error) {
	b := req.Body
	if b == nil {
		b = &gen.WorkerPollRequest{}
	}
	owner, err := s.workerOwner(ctx)
	if err != nil {
		return nil, err
	}
	w, err := s.workers.get(req.WorkerId, owner, s.clock.Now())
	if err != nil {
		return nil, err
	}
	maxEvents, timeout := 1, time.Duration(0)
	if b.MaxEvents != nil {
		if *b.MaxEvents < 0 || *b.MaxEvents > maxPollEvents {
			return nil, badf("max_events %d: give 0 to %d", *b.MaxEvents, maxPollEvents)
		}
		maxEvents = *b.MaxEvents
	}
	if b.TimeoutMs != nil {
		if *b.TimeoutMs < 0 {
			return nil, badf("timeout_ms %d: give how long to wait for an event, 0 or more milliseconds", *b.TimeoutMs)
		}
		timeout = min(time.Duration(*b.TimeoutMs)*time.Millisecond, s.workers.cfg.maxPoll)
	}
	out := gen.PollWorkerEvents200JSONResponse{Completions: []gen.WorkerCompletionResult{}, Events: []gen.WorkerEvent{}}
	if b.Completions != nil {
		for i := range *b.Completions {
			c := &(*b.Completions)[i]
			if c.EventId == nil {
				msg := fmt.Sprintf("completion %d has no event_id: each completion in a poll names its event", i)
				out.Completions = append(out.Completions, gen.WorkerCompletionResult{EventId: "", Status: stInvalid, Message: &msg})
				continue
			}
			out.Completions = append(out.Completions, s.complete(w, *c.EventId, c))
		}
	}
	if maxEvents == 0 {
		return out, nil
	}
	if w.draining.Load() {
		// It handed an event back: it is stopping, and gets nothing more
		// until it registers again. Its poll waits as one that found
		// nothing, so that a client polling on does not spin.
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		return out, nil
	}
	ch := s.eng.Pull()
	var first *tasker.PullEvent
	if timeout > 0 {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		ev, err := ch.PollWaitMatch(pctx, w.match)
		cancel()
		switch {
		case err == nil:
			first = ev
		case ctx.Err() != nil:
			return nil, ctx.Err() // the worker went away: nothing was taken
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, taskertype.ErrClosed):
			// No event within the timeout, or the engine is stopping.
		default:
			return nil, err
		}
	} else if ev, ok := ch.PollMatch(w.match); ok {
		first = ev
	}
	if first == nil {
		return out, nil
	}
	events := []*tasker.PullEvent{first}
	for len(events) < maxEvents {
		ev, ok := ch.PollMatch(w.match)
		if !ok {
			break
		}
		events = append(events, ev)
	}
	for _, ev := range events {
		s.workers.hold(ev.ID, req.WorkerId, ev.Batch != nil)
	}
	if _, err := s.workers.get(req.WorkerId, owner, s.clock.Now()); err != nil {
		// Deregistered (or expired, and perhaps registered again by
		// another principal) during the wait: the poller may not complete
		// these events, so their steps must not wait for the timeout.
		ids := make([]uuid.UUID, len(events))
		for i, ev := range events {
			ids[i] = ev.ID
		}
		s.releaseEvents(req.WorkerId, ids, "was deregistered while it polled", true)
		return nil, err
	}
	if ctx.Err() != nil {
		// The worker went away while we polled: its steps must not wait
		// for the complete timeout.
		ids := make([]uuid.UUID, len(events))
		for i, ev := range events {
			ids[i] = ev.ID
		}
		s.releaseEvents(req.WorkerId, ids, "went away", true)
		return nil, ctx.Err()
	}
	out.Events = make([]gen.WorkerEvent, len(events))
	for i, ev := range events {
		out.Events[i] = wireEvent(ev)
		s.addAncestry(ctx, &out.Events[i], ev)
	}
	return out, nil
}

// addAncestry gives an event what tasker-core's handlers receive beyond
// the step's input: the results of every completed ancestor (not only the
// direct dependencies), which the event carries when the transaction that
// started the step held their rows (PullEvent.Ancestors) and which are
// read otherwise, in one query of those steps only (polledTasks remembers
// a task's steps without dependencies: a step whose dependencies are all
// such steps has no ancestor beyond them, and a step without dependencies
// none, so neither reads its ancestors). When the read fails the event
// keeps what it has: its direct dependencies (the step's own input, which
// is the truth for them).
func (s *Server) addAncestry(ctx context.Context, we *gen.WorkerEvent, ev *tasker.PullEvent) {
	if len(ev.Results) == 0 {
		// The step's input names each dependency (a null result
		// included): it has none.
		s.polled.addRoot(ev.TaskID, ev.StepName)
		return
	}
	anc := ev.Ancestors
	if anc == nil {
		if s.polled.onlyRoots(ev.TaskID, ev.Results) {
			return
		}
		var err error
		if anc, err = s.eng.StepAncestorResults(ctx, ev.TaskID, ev.StepID); err != nil {
			s.log.Warn("pull event: read the results of the step's ancestors", "task_id", ev.TaskID, "step_id", ev.StepID, "error", err)
			return
		}
	}
	// The direct dependencies' results came with the step's input and are
	// kept as they are.
	for name, r := range anc {
		if _, direct := we.DependencyResults[name]; direct || len(r) == 0 {
			continue
		}
		if we.DependencyResults == nil {
			we.DependencyResults = map[string]json.RawMessage{}
		}
		we.DependencyResults[name] = r
	}
}

// wireEvent converts an event for the wire. The task context and the
// results are passed through as the JSON they are.
func wireEvent(ev *tasker.PullEvent) gen.WorkerEvent {
	we := gen.WorkerEvent{
		EventId: ev.ID, TaskUuid: ev.TaskID, StepUuid: ev.StepID, StepName: ev.StepName,
		Namespace: ev.Namespace, HandlerName: ev.Handler, Attempt: ev.Attempt, MaxAttempts: ev.MaxAttempts,
		TaskContext: ev.Context, DependencyResults: ev.Results, DispatchedAt: ev.DispatchedAt.UTC(),
	}
	if len(we.TaskContext) == 0 {
		we.TaskContext = json.RawMessage("{}")
	}
	if we.DependencyResults == nil {
		we.DependencyResults = map[string]json.RawMessage{}
	}
	// The task's, read with the step's input when it started.
	if id := ev.CorrelationID; id != uuid.Nil {
		we.CorrelationId = &id
	}
	if id := ev.ParentCorrelationID; id != uuid.Nil {
		we.ParentCorrelationId = &id
	}
	if ev.AttemptID != uuid.Nil {
		id := ev.AttemptID
		we.AttemptId = &id
	}
	if ev.Method != "" {
		m := ev.Method
		we.HandlerMethod = &m
	}
	if len(ev.Config) > 0 {
		c := ev.Config
		we.Initialization = &c
	}
	if ev.Batch != nil {
		if raw, err := json.Marshal(ev.Batch); err == nil {
			r := json.RawMessage(raw)
			we.Batch = &r
		}
		if cp := ev.Batch.Checkpoint; cp != nil {
			if raw, err := json.Marshal(cp); err == nil {
				r := json.RawMessage(raw)
				we.Checkpoint = &r
			}
		}
	}
	return we
}

// complete applies one completion of worker w; its answer says what
// happened. An accepted hand-back drains w: no more events until it
// registers again.
func (s *Server) complete(w *pullWorker, id uuid.UUID, c *gen.WorkerCompletion) gen.WorkerCompletionResult {
	worker := w.id
	answer := func(st gen.WorkerCompletionResultStatus, format string, args ...any) gen.WorkerCompletionResult {
		msg := fmt.Sprintf(format, args...)
		return gen.WorkerCompletionResult{EventId: id.String(), Status: st, Message: &msg}
	}
	h, state := s.workers.lookup(id)
	switch {
	case state == eventUnknown:
		return answer(stNotFound, "event %s is unknown: it was never handed out by this server (or so long ago it is forgotten); nothing changed", id)
	case state == eventFinished:
		return answer(stConflict, "event %s is already %s; nothing changed", id, h.finished)
	case h.worker != worker:
		return answer(stConflict, "event %s is held by worker %q, not %q; nothing changed", id, h.worker, worker)
	}
	r, err := pullResult(c, h.batch)
	if err != nil {
		return answer(stInvalid, "event %s: %v; nothing changed, complete it again with a valid outcome", id, err)
	}
	if c.Outcome == outHandedBack && !w.draining.Swap(true) {
		// Drained before the step is queued again, so that it cannot come
		// back to this worker; the queued events only it served wait for
		// another worker without spending an attempt.
		s.log.Info("pull worker handed back an event: it is stopping, and gets no more events until it registers again", "worker_id", worker)
		defer s.releaseUnserved()
	}
	if !s.eng.Pull().Complete(id, r) {
		s.workers.finish(id, "timed out or abandoned (its step ended without it)")
		return answer(stConflict, "event %s was no longer pending: it timed out (complete it within complete_timeout_ms, or heartbeat) or its step ended; nothing changed", id)
	}
	if c.Outcome == outHandedBack {
		s.workers.finish(id, "handed back")
	} else {
		s.workers.finish(id, "completed")
	}
	return gen.WorkerCompletionResult{EventId: id.String(), Status: stAccepted}
}

// pullResult converts a wire completion; an error names what is wrong.
func pullResult(c *gen.WorkerCompletion, batch bool) (tasker.PullResult, error) {
	switch c.Outcome {
	case outSuccess:
		if c.Result == nil || len(*c.Result) == 0 {
			return tasker.PullResult{Output: json.RawMessage("{}")}, nil
		}
		return tasker.PullResult{Output: *c.Result}, nil
	case outFailure:
		e := c.Error
		if e == nil || e.Message == "" {
			return tasker.PullResult{}, errors.New(`a failure needs "error": {"message": ..., "error_type": ..., "retryable": ...}`)
		}
		msg := e.Message
		if e.ErrorType != nil && *e.ErrorType != "" {
			msg = *e.ErrorType + ": " + msg
		}
		if e.Metadata != nil && len(*e.Metadata) > 0 {
			if raw, err := json.Marshal(*e.Metadata); err == nil {
				msg += " " + string(raw)
			}
		}
		r := tasker.PullResult{Error: msg, Permanent: e.Retryable != nil && !*e.Retryable}
		if e.RetryAfterSeconds != nil {
			if *e.RetryAfterSeconds < 0 {
				return tasker.PullResult{}, fmt.Errorf("retry_after_seconds %v: give a delay of 0 seconds or more", *e.RetryAfterSeconds)
			}
			r.RetryAfter = time.Duration(float64(*e.RetryAfterSeconds) * float64(time.Second))
		}
		return r, nil
	case outCheckpoint:
		cp := c.Checkpoint
		switch {
		case !batch:
			return tasker.PullResult{}, errors.New("a checkpoint_yield is only for batch workers (events with a batch), and this step is none: complete it with a success or a failure")
		case cp == nil || len(cp.Cursor) == 0 || string(cp.Cursor) == "null":
			return tasker.PullResult{}, errors.New(`a checkpoint_yield needs "checkpoint": {"cursor": <where the next run starts>, "items_processed": n}`)
		case cp.ItemsProcessed != nil && *cp.ItemsProcessed < 0:
			return tasker.PullResult{}, fmt.Errorf("items_processed %d: it counts the items processed so far, never negative", *cp.ItemsProcessed)
		}
		wire := map[string]any{"type": "checkpoint_yield", "cursor": cp.Cursor, "items_processed": int64(0)}
		if cp.ItemsProcessed != nil {
			wire["items_processed"] = *cp.ItemsProcessed
		}
		if cp.AccumulatedResults != nil && len(*cp.AccumulatedResults) > 0 {
			wire["accumulated_results"] = *cp.AccumulatedResults
		}
		raw, err := json.Marshal(wire)
		if err != nil {
			return tasker.PullResult{}, fmt.Errorf("the checkpoint is not valid JSON: %w", err)
		}
		return tasker.PullResult{Output: raw}, nil
	case outHandedBack:
		why := "the worker handed it back without running it"
		if c.Error != nil && c.Error.Message != "" {
			why += ": " + c.Error.Message
		}
		return tasker.PullResult{Error: why, HandedBack: true}, nil
	}
	return tasker.PullResult{}, fmt.Errorf("outcome %q: give success, failure, checkpoint_yield or handed_back", c.Outcome)
}

// sortedCopy returns names sorted, without duplicates.
func sortedCopy(names []string) []string {
	out := append([]string(nil), names...)
	sort.Strings(out)
	j := 0
	for i, n := range out {
		if i == 0 || n != out[j-1] {
			out[j] = n
			j++
		}
	}
	return out[:j]
}
