package postgres

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/puzpuzpuz/xsync/v4"
)

// The structure that fans notifications out to a queue's subscribers (TAS-163
// #10, our #11), against its candidates, on its pattern: a dispatch by queue
// name on every notification, from the listener and from every sender, and a
// rare subscribe/unsubscribe. A process subscribes to few queues: the
// orchestrator to the results and the task commands, a worker to one step
// queue per namespace, one consumer loop each (queues=4: two namespaces);
// queues=64 is a worker of many namespaces.
//
//	go test -run '^$' -bench Demux ./queue/postgres/ (repeated, interleaved)
//
// g1 runs one goroutine per core (b.SetParallelism(1)), g16 sixteen.

// demuxer is what each candidate implements.
type demuxer interface {
	subscribe(name string) func()
	signal(name string)
}

const churnEvery = 1024 // dispatches per subscribe+unsubscribe

var demuxCandidates = []struct {
	name string
	new  func() demuxer
}{
	{"mutex-map(ours)", func() demuxer { return oursDemux{newDemux()} }},
	{"rwmutex-map(current)", func() demuxer { return &rwDemux{m: map[string][]chan struct{}{}} }},
	{"xsync.Map(before)", func() demuxer { return newXsyncDemux() }},
	{"sync.Map", func() demuxer { return &syncMapDemux{} }},
	{"cow-atomic", func() demuxer { return newCOWDemux() }},
}

func BenchmarkDemux(b *testing.B) {
	for _, queues := range []int{4, 64} {
		names := []string{"tasker_results", "tasker_task_commands"}
		for i := 0; len(names) < queues; i++ {
			names = append(names, fmt.Sprint("worker_ns", i))
		}
		for _, g := range []int{1, 16} {
			for _, c := range demuxCandidates {
				b.Run(fmt.Sprintf("queues=%d/g%d/%s", queues, g, c.name), func(b *testing.B) {
					d := c.new()
					var cancels []func()
					for _, n := range names {
						cancels = append(cancels, d.subscribe(n))
					}
					var seed atomic.Uint64
					b.SetParallelism(g)
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						i := int(seed.Add(1) * 7919)
						for pb.Next() {
							i++
							name := names[i&(queues-1)]
							if i%churnEvery == 0 {
								d.subscribe(name)()
							}
							d.signal(name)
						}
					})
					b.StopTimer()
					for _, cancel := range cancels {
						cancel()
					}
				})
			}
		}
	}
}

// counts counts signals and coalesced signals, as the demux does for
// queue.WakeupStats: every candidate pays for them.
type counts struct{ signals, coalesced atomic.Uint64 }

func (c *counts) send(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
		c.signals.Add(1)
	default:
		c.coalesced.Add(1)
	}
}

// oursDemux is the structure in use (demux.go).
type oursDemux struct{ d *demux }

func (o oursDemux) subscribe(name string) func() {
	s := o.d.subscribe(name)
	return func() { o.d.unsubscribe(name, s) }
}

func (o oursDemux) signal(name string) { o.d.signal(name) }

// xsyncDemux is the design this replaced: an xsync.Map from queue name to
// a copy-on-write slice of subscribers, with striped counters.
type xsyncDemux struct {
	subs               *xsync.Map[string, []chan struct{}]
	signals, coalesced *xsync.Counter
}

func newXsyncDemux() *xsyncDemux {
	return &xsyncDemux{subs: xsync.NewMap[string, []chan struct{}](), signals: xsync.NewCounter(), coalesced: xsync.NewCounter()}
}

func (d *xsyncDemux) subscribe(name string) func() {
	ch := make(chan struct{}, 1)
	d.subs.Compute(name, func(old []chan struct{}, _ bool) ([]chan struct{}, xsync.ComputeOp) {
		return append(slices.Clip(old), ch), xsync.UpdateOp
	})
	return func() {
		d.subs.Compute(name, func(old []chan struct{}, _ bool) ([]chan struct{}, xsync.ComputeOp) {
			i := slices.Index(old, ch)
			switch {
			case i < 0:
				return old, xsync.CancelOp
			case len(old) == 1:
				return nil, xsync.DeleteOp
			}
			return slices.Delete(slices.Clone(old), i, i+1), xsync.UpdateOp
		})
	}
}

func (d *xsyncDemux) signal(name string) {
	list, _ := d.subs.Load(name)
	for _, ch := range list {
		select {
		case ch <- struct{}{}:
			d.signals.Inc()
		default:
			d.coalesced.Inc()
		}
	}
}

// rwDemux is the analysis's current design: RwLock<HashMap<String, Sender>>,
// here with a slice of subscribers per queue.
type rwDemux struct {
	counts
	mu sync.RWMutex
	m  map[string][]chan struct{}
}

func (d *rwDemux) subscribe(name string) func() {
	ch := make(chan struct{}, 1)
	d.mu.Lock()
	d.m[name] = append(d.m[name], ch)
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		list := d.m[name]
		if i := slices.Index(list, ch); i >= 0 {
			list = slices.Delete(list, i, i+1)
		}
		if len(list) == 0 {
			delete(d.m, name)
		} else {
			d.m[name] = list
		}
	}
}

func (d *rwDemux) signal(name string) {
	d.mu.RLock()
	for _, ch := range d.m[name] {
		d.send(ch)
	}
	d.mu.RUnlock()
}

// syncMapDemux keeps a copy-on-write slice per queue in a sync.Map; a mutex
// serializes the writers.
type syncMapDemux struct {
	counts
	mu sync.Mutex
	m  sync.Map
}

func (d *syncMapDemux) subscribe(name string) func() {
	ch := make(chan struct{}, 1)
	d.mu.Lock()
	old, _ := d.m.Load(name)
	list, _ := old.([]chan struct{})
	d.m.Store(name, append(slices.Clip(list), ch))
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		old, _ := d.m.Load(name)
		list, _ := old.([]chan struct{})
		if i := slices.Index(list, ch); i >= 0 {
			list = slices.Delete(slices.Clone(list), i, i+1)
		}
		if len(list) == 0 {
			d.m.Delete(name)
		} else {
			d.m.Store(name, list)
		}
	}
}

func (d *syncMapDemux) signal(name string) {
	if v, ok := d.m.Load(name); ok {
		for _, ch := range v.([]chan struct{}) {
			d.send(ch)
		}
	}
}

// cowDemux is a copy-on-write map behind an atomic.Pointer: a dispatch is an
// atomic load and a map lookup; a writer copies the whole map under a mutex.
type cowDemux struct {
	counts
	mu sync.Mutex
	m  atomic.Pointer[map[string][]chan struct{}]
}

func newCOWDemux() *cowDemux {
	d := &cowDemux{}
	d.m.Store(&map[string][]chan struct{}{})
	return d
}

func (d *cowDemux) subscribe(name string) func() {
	ch := make(chan struct{}, 1)
	d.mu.Lock()
	m := maps.Clone(*d.m.Load())
	m[name] = append(slices.Clip(m[name]), ch)
	d.m.Store(&m)
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		m := maps.Clone(*d.m.Load())
		list := m[name]
		if i := slices.Index(list, ch); i >= 0 {
			list = slices.Delete(slices.Clone(list), i, i+1)
		}
		if len(list) == 0 {
			delete(m, name)
		} else {
			m[name] = list
		}
		d.m.Store(&m)
	}
}

func (d *cowDemux) signal(name string) {
	for _, ch := range (*d.m.Load())[name] {
		d.send(ch)
	}
}
