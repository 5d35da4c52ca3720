package api

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/api/gen"
)

// registryConfig bounds the registry of pull workers.
type registryConfig struct {
	maxWorkers int           // registered at once
	maxPoll    time.Duration // the longest wait of a poll
	ttl        time.Duration // a worker silent this long is deregistered
	// remember is how many finished event ids are remembered, so that a
	// late completion is answered 409 rather than 404.
	remember int
}

// pullWorker is a registered worker. Its fields but lastSeen and draining
// are set at registration and never change (a new registration replaces
// the value).
type pullWorker struct {
	id                   string
	owner                string // the registering principal's auth.Principal.ID; "" with auth off
	namespaces, handlers []string
	concurrency          int
	ns, hs               map[string]struct{}
	lastSeen             atomic.Int64 // Unix nanoseconds
	// draining: the worker handed an event back (it is stopping), so it
	// is given no more until it registers again; a worker that hands back
	// whatever it gets cannot keep a step cycling without attempts.
	draining atomic.Bool
}

// match says whether the worker takes ev: it is not draining, and ev's
// namespace and handler are the worker's. Called under the dispatch
// queue's lock: quick, no I/O.
func (w *pullWorker) match(ev *tasker.PullEvent) bool {
	return !w.draining.Load() && w.serves(ev.Namespace, ev.Handler)
}

// serves says whether the worker runs handler name in namespace.
func (w *pullWorker) serves(namespace, name string) bool {
	_, okNS := w.ns[namespace]
	_, okH := w.hs[name]
	return okNS && okH
}

// eventState is what the registry knows of an event id.
type eventState int

const (
	eventUnknown  eventState = iota
	eventHeld                // handed to a worker, not completed
	eventFinished            // completed, timed out or released (remembered)
)

type heldEvent struct {
	worker   string
	batch    bool
	finished string // for a finished event: how it finished
}

// registry is the pull workers' registry: who is registered, which events
// each holds, and the ids of recently finished events. Every map is
// bounded: workers by maxWorkers, held events by the dispatch channel's
// capacity (each is a pending event; those that time out are swept), and
// finished ids by a ring of remember entries.
type registry struct {
	cfg             registryConfig
	completeTimeout time.Duration
	capacity        int
	isPending       func(uuid.UUID) bool
	// release fails the events of workers that expired; called without
	// the lock held.
	release func(worker string, ids []uuid.UUID)

	mu          sync.RWMutex
	workers     map[string]*pullWorker
	handlerRefs map[string]int // handler name → registered workers serving it
	held        map[uuid.UUID]heldEvent
	finished    map[uuid.UUID]string
	ring        []uuid.UUID
	ringNext    int
	lastSweep   atomic.Int64 // Unix nanoseconds: sweeps run at most once a second
}

func newRegistry(cfg registryConfig, m tasker.PullMetrics, completeTimeout time.Duration, isPending func(uuid.UUID) bool) *registry {
	return &registry{
		cfg: cfg, completeTimeout: completeTimeout, capacity: m.Capacity, isPending: isPending,
		workers: map[string]*pullWorker{}, handlerRefs: map[string]int{},
		held: map[uuid.UUID]heldEvent{}, finished: map[uuid.UUID]string{},
		ring: make([]uuid.UUID, 0, cfg.remember),
	}
}

// register adds (or replaces) worker id for owner. Replacing keeps the
// events the old registration holds: the same worker may complete them.
// Only the owner of a registered id may replace it.
func (r *registry) register(id, owner string, namespaces, handlers []string, conc int, now time.Time) (*pullWorker, error) {
	r.sweep(now, false)
	w := &pullWorker{id: id, owner: owner, namespaces: sortedCopy(namespaces), handlers: sortedCopy(handlers), concurrency: conc,
		ns: map[string]struct{}{}, hs: map[string]struct{}{}}
	for _, n := range w.namespaces {
		w.ns[n] = struct{}{}
	}
	for _, h := range w.handlers {
		w.hs[h] = struct{}{}
	}
	w.lastSeen.Store(now.UnixNano())
	r.mu.Lock()
	defer r.mu.Unlock()
	old, replacing := r.workers[id]
	if replacing && old.owner != owner {
		return nil, workerForbidden(id)
	}
	if !replacing && len(r.workers) >= r.cfg.maxWorkers {
		return nil, &statusError{status: http.StatusServiceUnavailable, kind: "ServiceUnavailable",
			msg: fmt.Sprintf("%d pull workers are registered, the most this server takes: deregister idle ones (DELETE /v1/workers/{id}) or wait for silent ones to expire", r.cfg.maxWorkers)}
	}
	if replacing {
		r.unrefLocked(old)
	}
	r.workers[id] = w
	for _, h := range w.handlers {
		r.handlerRefs[h]++
	}
	return w, nil
}

func (r *registry) unrefLocked(w *pullWorker) {
	for _, h := range w.handlers {
		if r.handlerRefs[h]--; r.handlerRefs[h] <= 0 {
			delete(r.handlerRefs, h)
		}
	}
}

// deregister removes worker id, if owner's, and returns the events it held
// (no longer held by anyone: the caller fails them). They are marked
// finished before the lock is let go, so a worker registered under the same
// id meanwhile cannot complete them.
func (r *registry) deregister(id, owner string) ([]uuid.UUID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.workers[id]
	switch {
	case !ok:
		return nil, workerNotFound(id)
	case w.owner != owner:
		return nil, workerForbidden(id)
	}
	delete(r.workers, id)
	r.unrefLocked(w)
	return r.dropHeldLocked(id, "released: its worker deregistered"), nil
}

// dropHeldLocked marks the events worker holds as finished, how, and
// returns their ids.
func (r *registry) dropHeldLocked(worker, how string) []uuid.UUID {
	ids := r.heldByLocked(worker)
	for _, id := range ids {
		r.finishLocked(id, how)
	}
	return ids
}

func (r *registry) heldByLocked(worker string) []uuid.UUID {
	var ids []uuid.UUID
	for id, h := range r.held {
		if h.worker == worker {
			ids = append(ids, id)
		}
	}
	return ids
}

// get returns worker id, if owner's, and marks it seen: 404 when it is not
// registered, 403 when another principal registered it (which does not
// mark it seen).
func (r *registry) get(id, owner string, now time.Time) (*pullWorker, error) {
	r.sweep(now, false)
	r.mu.RLock()
	w, ok := r.workers[id]
	r.mu.RUnlock()
	switch {
	case !ok:
		return nil, workerNotFound(id)
	case w.owner != owner:
		return nil, workerForbidden(id)
	}
	w.lastSeen.Store(now.UnixNano())
	return w, nil
}

// touch is get that also returns the events the worker holds.
func (r *registry) touch(id, owner string, now time.Time) ([]uuid.UUID, error) {
	if _, err := r.get(id, owner, now); err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.heldByLocked(id), nil
}

// serves reports whether a registered worker, not draining, serves
// handler name in namespace. The count by handler answers most questions; when some worker
// serves the handler, the workers (at most maxWorkers, each two map
// lookups) are checked for one that serves the namespace too.
func (r *registry) serves(namespace, name string, now time.Time) bool {
	r.sweep(now, false)
	return r.servedNow(namespace, name)
}

// servedNow is serves without the sweep: for a filter called under the
// dispatch queue's lock (the sweep may release events, which takes it).
func (r *registry) servedNow(namespace, name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.handlerRefs[name] == 0 {
		return false
	}
	for _, w := range r.workers {
		if !w.draining.Load() && w.serves(namespace, name) {
			return true
		}
	}
	return false
}

// hold records that worker holds event id.
func (r *registry) hold(id uuid.UUID, worker string, batch bool) {
	r.mu.Lock()
	r.held[id] = heldEvent{worker: worker, batch: batch}
	over := len(r.held) > 2*r.capacity
	r.mu.Unlock()
	if over {
		r.sweepHeld()
	}
}

// holder returns the worker holding event id, "" if none.
func (r *registry) holder(id uuid.UUID) string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.held[id].worker
}

// lookup says what the registry knows of event id.
func (r *registry) lookup(id uuid.UUID) (heldEvent, eventState) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if h, ok := r.held[id]; ok {
		return h, eventHeld
	}
	if how, ok := r.finished[id]; ok {
		return heldEvent{finished: how}, eventFinished
	}
	return heldEvent{}, eventUnknown
}

// finish records that event id finished, how.
func (r *registry) finish(id uuid.UUID, how string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finishLocked(id, how)
}

func (r *registry) finishLocked(id uuid.UUID, how string) {
	delete(r.held, id)
	if _, ok := r.finished[id]; ok {
		r.finished[id] = how
		return
	}
	if r.cfg.remember <= 0 {
		return
	}
	if len(r.ring) < r.cfg.remember {
		r.ring = append(r.ring, id)
	} else {
		delete(r.finished, r.ring[r.ringNext])
		r.ring[r.ringNext] = id
		r.ringNext = (r.ringNext + 1) % r.cfg.remember
	}
	r.finished[id] = how
}

// sweepHeld forgets the held events that are no longer pending in the
// channel (timed out, or their step ended).
func (r *registry) sweepHeld() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.held {
		if !r.isPending(id) {
			r.finishLocked(id, "timed out (not completed within the complete timeout) or abandoned (its step ended)")
		}
	}
}

// sweep deregisters the workers silent for longer than the ttl (failing
// the events they held) and forgets held events no longer pending; at most
// once a second unless forced.
func (r *registry) sweep(now time.Time, force bool) {
	// serves calls this for every step handed to a pull worker: the check
	// is one atomic load, no lock.
	if last := r.lastSweep.Load(); !force && (now.UnixNano()-last < int64(time.Second) || !r.lastSweep.CompareAndSwap(last, now.UnixNano())) {
		return
	}
	r.lastSweep.Store(now.UnixNano())
	r.mu.Lock()
	type gone struct {
		id  string
		ids []uuid.UUID
	}
	var expired []gone
	for id, w := range r.workers {
		if now.Sub(time.Unix(0, w.lastSeen.Load())) > r.cfg.ttl {
			delete(r.workers, id)
			r.unrefLocked(w)
			expired = append(expired, gone{id, r.dropHeldLocked(id, "released: its worker expired")})
		}
	}
	r.mu.Unlock()
	r.sweepHeld()
	for _, g := range expired {
		if r.release != nil {
			r.release(g.id, g.ids)
		}
	}
}

// list returns the registered workers, by id.
func (r *registry) list() []gen.WorkerInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	counts := map[string]int{}
	for _, h := range r.held {
		counts[h.worker]++
	}
	out := make([]gen.WorkerInfo, 0, len(r.workers))
	for _, w := range r.workers {
		out = append(out, workerInfo(w, counts[w.id]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].WorkerId < out[j].WorkerId })
	return out
}
