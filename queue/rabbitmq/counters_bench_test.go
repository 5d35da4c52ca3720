package rabbitmq

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/puzpuzpuz/xsync/v4"
)

// The queue statistics (TAS-163 #10): a counter bumped on every message
// send, delivery, acknowledgement and release, from every goroutine that
// touches a queue, and read by Engine.Stats (the /metrics scrape). The
// candidates, each bumping one counter of one of 8 queues per operation
// while a reader takes every queue's figures every 100µs:
//
//   - mutexMap: the simplest correct one, a sync.Mutex and a map of plain
//     structs;
//   - rwAtomics: the analysis's RwLock<HashMap> of atomics (read lock for
//     the lookup, an atomic add);
//   - xsyncAtomics: an xsync.Map of atomics (a lock-free lookup);
//   - pointer: what the provider does, a struct of atomics made with the
//     queue's state, whose pointer the operation holds already (it looked
//     the queue up for its own work), so a bump is one atomic add; the
//     registry is a copy-on-write slice read by the reader only.
//
//	go test -run '^$' -bench QueueCounters -cpu 2 -count 6 ./queue/rabbitmq
//
// docs/concurrency.md has the figures.

var benchQueues = func() []string {
	var q []string
	for i := range 8 {
		q = append(q, fmt.Sprint("worker_ns", i))
	}
	return q
}()

type plainCounters struct{ sent, received, acked, nacked, redelivered uint64 }

type counterImpl interface {
	bump(i int)
	read() uint64
}

type mutexMap struct {
	mu sync.Mutex
	m  map[string]*plainCounters
}

func (c *mutexMap) bump(i int) {
	c.mu.Lock()
	c.m[benchQueues[i]].received++
	c.mu.Unlock()
}

func (c *mutexMap) read() (n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.m {
		n += v.received + v.sent + v.acked
	}
	return n
}

type rwAtomics struct {
	mu sync.RWMutex
	m  map[string]*queueCounters
}

func (c *rwAtomics) bump(i int) {
	c.mu.RLock()
	q := c.m[benchQueues[i]]
	c.mu.RUnlock()
	q.received.Add(1)
}

func (c *rwAtomics) read() (n uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, v := range c.m {
		n += v.received.Load() + v.sent.Load() + v.acked.Load()
	}
	return n
}

type xsyncAtomics struct {
	m *xsync.Map[string, *queueCounters]
}

func (c *xsyncAtomics) bump(i int) {
	q, _ := c.m.Load(benchQueues[i])
	q.received.Add(1)
}

func (c *xsyncAtomics) read() (n uint64) {
	c.m.Range(func(_ string, v *queueCounters) bool {
		n += v.received.Load() + v.sent.Load() + v.acked.Load()
		return true
	})
	return n
}

// pointerCounters is the provider's counters: the operations hold the
// pointers (here, a slice indexed as the queue states would be).
type pointerCounters struct {
	c   *counters
	ptr []*queueCounters
}

func (c *pointerCounters) bump(i int) { c.ptr[i].received.Add(1) }

func (c *pointerCounters) read() (n uint64) {
	for _, v := range *c.c.all.Load() {
		n += v.received.Load() + v.sent.Load() + v.acked.Load()
	}
	return n
}

func BenchmarkQueueCounters(b *testing.B) {
	impls := []struct {
		name string
		make func() counterImpl
	}{
		{"mutexMap", func() counterImpl {
			c := &mutexMap{m: map[string]*plainCounters{}}
			for _, q := range benchQueues {
				c.m[q] = &plainCounters{}
			}
			return c
		}},
		{"rwAtomics", func() counterImpl {
			c := &rwAtomics{m: map[string]*queueCounters{}}
			for _, q := range benchQueues {
				c.m[q] = &queueCounters{name: q}
			}
			return c
		}},
		{"xsyncAtomics", func() counterImpl {
			c := &xsyncAtomics{m: xsync.NewMap[string, *queueCounters]()}
			for _, q := range benchQueues {
				c.m.Store(q, &queueCounters{name: q})
			}
			return c
		}},
		{"pointer", func() counterImpl {
			c := &pointerCounters{c: newCounters()}
			for _, q := range benchQueues {
				c.ptr = append(c.ptr, c.c.queue(q))
			}
			return c
		}},
	}
	// Goroutines per CPU: 1 (a goroutine per core), 64 (a worker's
	// handlers and consumers, many per core).
	for _, par := range []int{1, 64} {
		for _, impl := range impls {
			b.Run(fmt.Sprintf("goroutines=%dxCPU/%s", par, impl.name), func(b *testing.B) {
				c := impl.make()
				stop := make(chan struct{})
				var reads atomic.Uint64
				done := make(chan struct{})
				go func() {
					defer close(done)
					t := time.NewTicker(100 * time.Microsecond)
					defer t.Stop()
					for {
						select {
						case <-stop:
							return
						case <-t.C:
							c.read()
							reads.Add(1)
						}
					}
				}()
				var next atomic.Uint32
				b.SetParallelism(par)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := int(next.Add(1))
					for pb.Next() {
						c.bump(i % len(benchQueues))
						i++
					}
				})
				b.StopTimer()
				close(stop)
				<-done
			})
		}
	}
}
