package events

// Bus designs measured against the current one (events.go) by
// BenchmarkBusPublish and BenchmarkBusSubscribe, and checked by the stress
// and filter tests. They share the current Bus's API and semantics:
// non-blocking Publish, bounded per-subscriber buffers, drops counted, C
// never closed, Close reports whether it removed the subscription.
//
// Figures and the command that reproduces them: docs/concurrency.md (#9).
//
// The current Bus scans every subscriber on every publish, so its cost
// grows with the WaitTask callers, and each Subscribe copies the whole
// list. The RWMutex map
// keyed by kind (the analysis's current design, "leave as-is") only splits
// by kind, so it scans as much, and its publishers' RLock holds off
// Subscribe (the stress test's churners get far fewer rounds in). sync.Map
// ranges over everything with an interface assertion per entry. An index
// by task answers a publish with one lookup whatever the number of
// per-task subscribers; with copy-on-write of the whole index, Subscribe
// copies the map, with an xsync.Map only that task's list.
//
// Done: events.go now has the task_index_xsync design ("events_go" in the
// benchmarks); "current_cow" keeps the design it replaced. The swap gave Bus the fields of xindexBus
// (mu; all atomic.Pointer[[]*Subscription]; byTask
// *xsync.Map[uuid.UUID, []*Subscription]; tasks, n atomic.Int64), its
// Subscribe/remove/Publish bodies with *Subscription for *candSub, and
// Subscribers() = n. Subscription keeps its fields; Close stays
// s.bus.remove(s), which finds s by s.filter.TaskID.

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/puzpuzpuz/xsync/v4"
)

// busAPI is what the benchmark and the stress test drive.
type busAPI interface {
	Subscribe(f Filter, size int) (subAPI, error)
	Publish(e Event)
	Subscribers() int
}

type subAPI interface {
	C() <-chan Event
	Dropped() uint64
	Close() bool
}

// currentBus adapts the Bus of events.go.
type currentBus struct{ *Bus }

// Publish takes the event by value, as the candidates do: the shipped Bus
// takes a pointer, so that the engine's events need not escape.
func (b currentBus) Publish(e Event) { b.Bus.Publish(&e) }

func (b currentBus) Subscribe(f Filter, size int) (subAPI, error) {
	s, err := b.Bus.Subscribe(f, size)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// candSub is the subscription of the candidates.
type candSub struct {
	filter  Filter
	ch      chan Event
	dropped atomic.Uint64
	remove  func(*candSub) bool
}

func newCandSub(f Filter, size int) (*candSub, error) {
	if size < 1 {
		return nil, ErrBufferSize
	}
	return &candSub{filter: f, ch: make(chan Event, size)}, nil
}

func (s *candSub) C() <-chan Event { return s.ch }
func (s *candSub) Dropped() uint64 { return s.dropped.Load() }
func (s *candSub) Close() bool     { return s.remove(s) }

func (s *candSub) offer(e *Event) {
	select {
	case s.ch <- *e:
	default:
		s.dropped.Add(1)
	}
}

// cowBus is the design events.go had before the per-task index won: every
// subscriber in one copy-on-write slice, scanned on every publish.
type cowBus struct {
	mu   sync.Mutex
	subs atomic.Pointer[[]*candSub]
}

func newCOWBus() *cowBus {
	b := &cowBus{}
	b.subs.Store(&[]*candSub{})
	return b
}

func (b *cowBus) Subscribe(f Filter, size int) (subAPI, error) {
	s, err := newCandSub(f, size)
	if err != nil {
		return nil, err
	}
	s.remove = b.remove
	b.mu.Lock()
	next := append(slices.Clip(*b.subs.Load()), s)
	b.subs.Store(&next)
	b.mu.Unlock()
	return s, nil
}

func (b *cowBus) remove(s *candSub) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.subs.Load()
	i := slices.Index(old, s)
	if i < 0 {
		return false
	}
	next := slices.Delete(slices.Clone(old), i, i+1)
	b.subs.Store(&next)
	return true
}

func (b *cowBus) Publish(e Event) {
	for _, s := range *b.subs.Load() {
		if s.filter.match(&e) {
			s.offer(&e)
		}
	}
}

func (b *cowBus) Subscribers() int { return len(*b.subs.Load()) }

// rwBus is the analysis's current design (its recommendation: leave as-is):
// Arc<RwLock<HashMap<String, Vec<Callback>>>>, keyed by event kind ("" for
// subscribers of every kind). Publish holds the read lock while it offers.
type rwBus struct {
	mu     sync.RWMutex
	byKind map[string][]*candSub
	n      int
}

func newRWBus() *rwBus { return &rwBus{byKind: map[string][]*candSub{}} }

func kindsOf(f Filter) []string {
	if len(f.Kinds) == 0 {
		return []string{""}
	}
	ks := slices.Clone(f.Kinds)
	slices.Sort(ks)
	return slices.Compact(ks)
}

func (b *rwBus) Subscribe(f Filter, size int) (subAPI, error) {
	s, err := newCandSub(f, size)
	if err != nil {
		return nil, err
	}
	s.remove = b.remove
	b.mu.Lock()
	for _, k := range kindsOf(f) {
		b.byKind[k] = append(b.byKind[k], s)
	}
	b.n++
	b.mu.Unlock()
	return s, nil
}

func (b *rwBus) remove(s *candSub) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	found := false
	for _, k := range kindsOf(s.filter) {
		l := b.byKind[k]
		if i := slices.Index(l, s); i >= 0 {
			b.byKind[k] = slices.Delete(l, i, i+1)
			found = true
		}
	}
	if found {
		b.n--
	}
	return found
}

func (b *rwBus) Publish(e Event) {
	b.mu.RLock()
	for _, s := range b.byKind[e.Kind] {
		if s.filter.match(&e) {
			s.offer(&e)
		}
	}
	for _, s := range b.byKind[""] {
		if s.filter.match(&e) {
			s.offer(&e)
		}
	}
	b.mu.RUnlock()
}

func (b *rwBus) Subscribers() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.n
}

// syncMapBus keeps the subscriptions in a sync.Map keyed by subscription;
// Publish ranges over all of them.
type syncMapBus struct {
	m sync.Map // *candSub → struct{}
	n atomic.Int64
}

func (b *syncMapBus) Subscribe(f Filter, size int) (subAPI, error) {
	s, err := newCandSub(f, size)
	if err != nil {
		return nil, err
	}
	s.remove = b.remove
	b.m.Store(s, struct{}{})
	b.n.Add(1)
	return s, nil
}

func (b *syncMapBus) remove(s *candSub) bool {
	if _, ok := b.m.LoadAndDelete(s); ok {
		b.n.Add(-1)
		return true
	}
	return false
}

func (b *syncMapBus) Publish(e Event) {
	b.m.Range(func(k, _ any) bool {
		if s := k.(*candSub); s.filter.match(&e) {
			s.offer(&e)
		}
		return true
	})
}

func (b *syncMapBus) Subscribers() int { return int(b.n.Load()) }

// indexBus indexes subscribers by task: one copy-on-write snapshot holds the
// subscribers of every task (a plain slice, as the current Bus) and a map
// task → subscribers of that task. Publish reads the snapshot with one
// atomic load, offers to the all-task subscribers and looks the event's
// task up: it never looks at another task's subscribers. Subscribe and
// Close copy the map: O(tasks watched).
type indexBus struct {
	mu   sync.Mutex
	snap atomic.Pointer[indexSnap]
}

type indexSnap struct {
	all    []*candSub
	byTask map[uuid.UUID][]*candSub
	n      int
}

func newIndexBus() *indexBus {
	b := &indexBus{}
	b.snap.Store(&indexSnap{byTask: map[uuid.UUID][]*candSub{}})
	return b
}

func (b *indexBus) Subscribe(f Filter, size int) (subAPI, error) {
	s, err := newCandSub(f, size)
	if err != nil {
		return nil, err
	}
	s.remove = b.remove
	b.mu.Lock()
	old := b.snap.Load()
	next := &indexSnap{all: old.all, byTask: old.byTask, n: old.n + 1}
	if f.TaskID == uuid.Nil {
		next.all = append(slices.Clip(old.all), s)
	} else {
		next.byTask = maps.Clone(old.byTask)
		next.byTask[f.TaskID] = append(slices.Clip(old.byTask[f.TaskID]), s)
	}
	b.snap.Store(next)
	b.mu.Unlock()
	return s, nil
}

func (b *indexBus) remove(s *candSub) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.snap.Load()
	next := &indexSnap{all: old.all, byTask: old.byTask, n: old.n - 1}
	if s.filter.TaskID == uuid.Nil {
		i := slices.Index(old.all, s)
		if i < 0 {
			return false
		}
		next.all = slices.Delete(slices.Clone(old.all), i, i+1)
	} else {
		l := old.byTask[s.filter.TaskID]
		i := slices.Index(l, s)
		if i < 0 {
			return false
		}
		next.byTask = maps.Clone(old.byTask)
		if len(l) == 1 {
			delete(next.byTask, s.filter.TaskID)
		} else {
			next.byTask[s.filter.TaskID] = slices.Delete(slices.Clone(l), i, i+1)
		}
	}
	b.snap.Store(next)
	return true
}

func (b *indexBus) Publish(e Event) {
	sn := b.snap.Load()
	for _, s := range sn.all {
		if s.filter.match(&e) {
			s.offer(&e)
		}
	}
	if len(sn.byTask) == 0 {
		return
	}
	for _, s := range sn.byTask[e.TaskID] {
		if s.filter.match(&e) {
			s.offer(&e)
		}
	}
}

func (b *indexBus) Subscribers() int { return b.snap.Load().n }

// xindexBus is indexBus with the per-task index in an xsync.Map of
// copy-on-write slices, so Subscribe and Close of a task's subscriber copy
// only that task's list (O(1) in the number of tasks watched); the
// all-task subscribers stay a copy-on-write slice.
type xindexBus struct {
	mu     sync.Mutex // serialises writers
	all    atomic.Pointer[[]*candSub]
	byTask *xsync.Map[uuid.UUID, []*candSub]
	tasks  atomic.Int64 // tasks with subscribers: skips the lookup when 0
	n      atomic.Int64
}

func newXIndexBus() *xindexBus {
	b := &xindexBus{byTask: xsync.NewMap[uuid.UUID, []*candSub]()}
	b.all.Store(&[]*candSub{})
	return b
}

func (b *xindexBus) Subscribe(f Filter, size int) (subAPI, error) {
	s, err := newCandSub(f, size)
	if err != nil {
		return nil, err
	}
	s.remove = b.remove
	b.mu.Lock()
	if f.TaskID == uuid.Nil {
		next := append(slices.Clip(*b.all.Load()), s)
		b.all.Store(&next)
	} else {
		l, _ := b.byTask.Load(f.TaskID)
		if len(l) == 0 {
			b.tasks.Add(1)
		}
		b.byTask.Store(f.TaskID, append(slices.Clip(l), s))
	}
	b.n.Add(1)
	b.mu.Unlock()
	return s, nil
}

func (b *xindexBus) remove(s *candSub) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.filter.TaskID == uuid.Nil {
		old := *b.all.Load()
		i := slices.Index(old, s)
		if i < 0 {
			return false
		}
		next := slices.Delete(slices.Clone(old), i, i+1)
		b.all.Store(&next)
	} else {
		l, _ := b.byTask.Load(s.filter.TaskID)
		i := slices.Index(l, s)
		if i < 0 {
			return false
		}
		if len(l) == 1 {
			b.byTask.Delete(s.filter.TaskID)
			b.tasks.Add(-1)
		} else {
			b.byTask.Store(s.filter.TaskID, slices.Delete(slices.Clone(l), i, i+1))
		}
	}
	b.n.Add(-1)
	return true
}

func (b *xindexBus) Publish(e Event) {
	for _, s := range *b.all.Load() {
		if s.filter.match(&e) {
			s.offer(&e)
		}
	}
	if b.tasks.Load() == 0 {
		return
	}
	l, _ := b.byTask.Load(e.TaskID)
	for _, s := range l {
		if s.filter.match(&e) {
			s.offer(&e)
		}
	}
}

func (b *xindexBus) Subscribers() int { return int(b.n.Load()) }

// candidates lists the designs by benchmark name.
var candidates = []struct {
	name string
	new  func() busAPI
}{
	{"events_go", func() busAPI { return currentBus{NewBus()} }}, // the chosen design, as shipped
	{"current_cow", func() busAPI { return newCOWBus() }},
	{"rwmutex_map", func() busAPI { return newRWBus() }},
	{"syncmap", func() busAPI { return &syncMapBus{} }},
	{"task_index_cow", func() busAPI { return newIndexBus() }},
	{"task_index_xsync", func() busAPI { return newXIndexBus() }},
}
