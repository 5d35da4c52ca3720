package dispatch

import (
	"sync"

	"github.com/google/uuid"
)

// pendingStore is the pending-events structure (event id → entry polled and
// not completed): insert on poll, remove on complete, len for
// PendingCount, a full walk for Metrics, CleanupTimeouts and
// CheckStarvation. bench_test.go compares candidates behind it.
type pendingStore interface {
	insert(id uuid.UUID, e *entry)
	remove(id uuid.UUID) (*entry, bool)
	len() int
	// rangeAll calls f for each entry until f returns false. f must not
	// block, nor call the store's other methods.
	rangeAll(f func(id uuid.UUID, e *entry) bool)
}

// pendingMap is a plain sync.Mutex + map, chosen by BenchmarkPendingEvents
// (bench_test.go): per op, insert a new id and remove an older one; a full
// walk every 1000 ops; at 1 and 16 goroutines per core, against the
// analysed system's RWMutex + map, a 16-way sharded map, xsync.Map (≈
// DashMap) and sync.Map. Figures and command: docs/concurrency.md (#1).
// Each critical section is one map operation, shorter than the cost of
// choosing a shard or of a lock-free map's allocation, and the walk is
// rare, so an RWMutex's read side buys nothing. The map is a small part
// of a round trip (BenchmarkDispatchRoundTrip).
type pendingMap struct {
	mu sync.Mutex
	m  map[uuid.UUID]*entry
}

var _ pendingStore = (*pendingMap)(nil)

// newPendingMap returns an empty map sized for up to hint entries.
func newPendingMap(hint int) *pendingMap {
	return &pendingMap{m: make(map[uuid.UUID]*entry, min(hint, 1024))}
}

func (p *pendingMap) insert(id uuid.UUID, e *entry) {
	p.mu.Lock()
	p.m[id] = e
	p.mu.Unlock()
}

func (p *pendingMap) remove(id uuid.UUID) (*entry, bool) {
	p.mu.Lock()
	e, ok := p.m[id]
	if ok {
		delete(p.m, id)
	}
	p.mu.Unlock()
	return e, ok
}

func (p *pendingMap) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}

func (p *pendingMap) rangeAll(f func(uuid.UUID, *entry) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, e := range p.m {
		if !f(id, e) {
			return
		}
	}
}

// rangeOne calls f with the entry of id, if there is one, under the lock:
// f must not block, nor call the map's other methods.
func (p *pendingMap) rangeOne(id uuid.UUID, f func(e *entry)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.m[id]; ok {
		f(e)
	}
}
