package dispatch

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/puzpuzpuz/xsync/v4"

	"github.com/tasker-go/tasker/taskertype"
)

// Candidates for the pending-events structure, behind pendingStore.

// rwMapStore is the analysed system's current design: RwLock<HashMap>.
type rwMapStore struct {
	mu sync.RWMutex
	m  map[uuid.UUID]*entry
}

func (s *rwMapStore) insert(id uuid.UUID, e *entry) { s.mu.Lock(); s.m[id] = e; s.mu.Unlock() }
func (s *rwMapStore) remove(id uuid.UUID) (*entry, bool) {
	s.mu.Lock()
	e, ok := s.m[id]
	delete(s.m, id)
	s.mu.Unlock()
	return e, ok
}
func (s *rwMapStore) len() int { s.mu.RLock(); defer s.mu.RUnlock(); return len(s.m) }
func (s *rwMapStore) rangeAll(f func(uuid.UUID, *entry) bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for id, e := range s.m {
		if !f(id, e) {
			return
		}
	}
}

// xsyncStore is the analysis's recommendation (DashMap, a sharded
// concurrent map): xsync.Map.
type xsyncStore struct{ m *xsync.Map[uuid.UUID, *entry] }

func (s *xsyncStore) insert(id uuid.UUID, e *entry)           { s.m.Store(id, e) }
func (s *xsyncStore) remove(id uuid.UUID) (*entry, bool)      { return s.m.LoadAndDelete(id) }
func (s *xsyncStore) len() int                                { return s.m.Size() }
func (s *xsyncStore) rangeAll(f func(uuid.UUID, *entry) bool) { s.m.Range(f) }

// syncMapStore is sync.Map. It keeps no count: len walks the map.
type syncMapStore struct{ m sync.Map }

func (s *syncMapStore) insert(id uuid.UUID, e *entry) { s.m.Store(id, e) }
func (s *syncMapStore) remove(id uuid.UUID) (*entry, bool) {
	v, ok := s.m.LoadAndDelete(id)
	if !ok {
		return nil, false
	}
	return v.(*entry), true
}
func (s *syncMapStore) len() int {
	n := 0
	s.m.Range(func(any, any) bool { n++; return true })
	return n
}
func (s *syncMapStore) rangeAll(f func(uuid.UUID, *entry) bool) {
	s.m.Range(func(k, v any) bool { return f(k.(uuid.UUID), v.(*entry)) })
}

// shardedStore is a 16-way sharded mutex map, shards padded to their own
// cache lines, keyed by the id's random tail.
type shardedStore struct{ shards [16]shard }

type shard struct {
	mu sync.Mutex
	m  map[uuid.UUID]*entry
	_  [64 - 16]byte
}

func newShardedStore() *shardedStore {
	s := &shardedStore{}
	for i := range s.shards {
		s.shards[i].m = make(map[uuid.UUID]*entry)
	}
	return s
}

func (s *shardedStore) shard(id uuid.UUID) *shard {
	return &s.shards[binary.LittleEndian.Uint64(id[8:])&15]
}
func (s *shardedStore) insert(id uuid.UUID, e *entry) {
	sh := s.shard(id)
	sh.mu.Lock()
	sh.m[id] = e
	sh.mu.Unlock()
}
func (s *shardedStore) remove(id uuid.UUID) (*entry, bool) {
	sh := s.shard(id)
	sh.mu.Lock()
	e, ok := sh.m[id]
	delete(sh.m, id)
	sh.mu.Unlock()
	return e, ok
}
func (s *shardedStore) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
func (s *shardedStore) rangeAll(f func(uuid.UUID, *entry) bool) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for id, e := range sh.m {
			if !f(id, e) {
				sh.mu.Unlock()
				return
			}
		}
		sh.mu.Unlock()
	}
}

var pendingCandidates = []struct {
	name string
	new  func() pendingStore
}{
	{"rwmutex_map", func() pendingStore { return &rwMapStore{m: make(map[uuid.UUID]*entry)} }},
	{"xsync_map", func() pendingStore { return &xsyncStore{m: xsync.NewMap[uuid.UUID, *entry]()} }},
	{"sync_map", func() pendingStore { return &syncMapStore{} }},
	{"sharded16_mutex", func() pendingStore { return newShardedStore() }},
	{"mutex_map", func() pendingStore { return newPendingMap(0) }}, // the production store
}

// The access pattern of the pending map: each op inserts a new id (a poll)
// and removes one inserted window ops earlier by the same goroutine (its
// completion), so each goroutine keeps window events pending; every
// iterEvery ops a goroutine walks the whole map as Metrics does.
const (
	benchWindow    = 64
	benchIterEvery = 1000
	benchIDsPerG   = 1024 // ids a goroutine cycles through (> benchWindow)
)

func BenchmarkPendingEvents(b *testing.B) {
	for _, cand := range pendingCandidates {
		b.Run(cand.name, func(b *testing.B) {
			for _, par := range []int{1, 16} {
				b.Run(fmt.Sprintf("g%d", par), func(b *testing.B) {
					benchPending(b, cand.new(), par)
				})
			}
		})
	}
}

func benchPending(b *testing.B, s pendingStore, parallelism int) {
	goroutines := parallelism * runtime.GOMAXPROCS(0)
	// Ids and entries made up front, so the loop measures the map alone.
	ids := make([]uuid.UUID, goroutines*benchIDsPerG)
	entries := make([]*entry, len(ids))
	now := time.Now()
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
		entries[i] = &entry{ev: Event{ID: ids[i], PolledAt: now.Add(time.Duration(i))}}
		entries[i].state.Store(statePending)
	}
	var next atomic.Int64
	var sink atomic.Int64
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := int(next.Add(1) - 1)
		mine := ids[g*benchIDsPerG : (g+1)*benchIDsPerG]
		myEntries := entries[g*benchIDsPerG : (g+1)*benchIDsPerG]
		var oldest time.Time
		for i := 0; pb.Next(); i++ {
			s.insert(mine[i%benchIDsPerG], myEntries[i%benchIDsPerG])
			if i >= benchWindow {
				s.remove(mine[(i-benchWindow)%benchIDsPerG])
			}
			if i%benchIterEvery == benchIterEvery-1 {
				n := 0
				s.rangeAll(func(_ uuid.UUID, e *entry) bool {
					if e.state.Load() == statePending {
						n++
						if p := e.ev.PolledAt; oldest.IsZero() || p.Before(oldest) {
							oldest = p
						}
					}
					return true
				})
				sink.Add(int64(n))
			}
		}
	})
}

// BenchmarkDispatchRoundTrip: Handle → PollWait → Complete through a real
// Channel, with the given number of in-process pull clients; Handle calls
// come from 4 × GOMAXPROCS goroutines. One op is one step's round trip.
func BenchmarkDispatchRoundTrip(b *testing.B) {
	for _, clients := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("clients%d", clients), func(b *testing.B) {
			c, err := New(Config{Capacity: 256, CompleteTimeout: time.Minute, StarvationThreshold: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			out := json.RawMessage(`{"ok":true}`)
			for range clients {
				wg.Go(func() {
					for {
						ev, err := c.PollWait(ctx)
						if err != nil {
							return
						}
						c.Complete(ev.ID, Result{Output: out})
					}
				})
			}
			h := c.Handler()
			in := &taskertype.StepInput{
				TaskID: uuid.New(), StepID: uuid.New(), StepName: "bench", Namespace: "py", Attempt: 1,
				Context: json.RawMessage(`{"n":1}`),
			}
			b.SetParallelism(4)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := h.Handle(context.Background(), in); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			cancel()
			wg.Wait()
			c.Close()
		})
	}
}
