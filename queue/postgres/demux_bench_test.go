package postgres

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// The structure that fans notifications out to a queue's subscribers (TAS-163
// #10, our #11), against its candidates, on its pattern: a dispatch by queue
// name on every notification, from the listener and from every sender, and a
// rare subscribe/unsubscribe.
//
//	go test -run '^$' -bench Demux -count 5 ./queue/postgres/
//
// g1 runs one goroutine per core (b.SetParallelism(1)), g16 sixteen.

// demuxer is what each candidate implements.
type demuxer interface {
	subscribe(name string) func()
	signal(name string)
}

const (
	benchQueues      = 64
	benchSubsByQueue = 2
	churnEvery       = 1024 // dispatches per subscribe+unsubscribe
)

var demuxCandidates = []struct {
	name string
	new  func() demuxer
}{
	{"rwmutex-map(current)", func() demuxer { return &rwDemux{m: map[string][]chan struct{}{}} }},
	{"xsync.Map(ours)", func() demuxer { return oursDemux{newDemux()} }},
	{"sync.Map", func() demuxer { return &syncMapDemux{} }},
	{"cow-atomic", func() demuxer { return newCOWDemux() }},
}

func BenchmarkDemux(b *testing.B) {
	names := make([]string, benchQueues)
	for i := range names {
		names[i] = fmt.Sprint("worker_ns", i)
	}
	for _, c := range demuxCandidates {
		for _, g := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/g%d", c.name, g), func(b *testing.B) {
				d := c.new()
				var cancels []func()
				for _, n := range names {
					for range benchSubsByQueue {
						cancels = append(cancels, d.subscribe(n))
					}
				}
				var seed atomic.Uint64
				b.SetParallelism(g)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					i := int(seed.Add(1) * 7919)
					for pb.Next() {
						i++
						name := names[i&(benchQueues-1)]
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

func send(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// oursDemux is the structure in use (demux.go).
type oursDemux struct{ d *demux }

func (o oursDemux) subscribe(name string) func() {
	s := o.d.subscribe(name)
	return func() { o.d.unsubscribe(name, s) }
}

func (o oursDemux) signal(name string) { o.d.signal(name) }

// rwDemux is the analysis's current design: RwLock<HashMap<String, Sender>>,
// here with a slice of subscribers per queue.
type rwDemux struct {
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
		send(ch)
	}
	d.mu.RUnlock()
}

// syncMapDemux keeps a copy-on-write slice per queue in a sync.Map; a mutex
// serializes the writers.
type syncMapDemux struct {
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
			send(ch)
		}
	}
}

// cowDemux is a copy-on-write map behind an atomic.Pointer: a dispatch is an
// atomic load and a map lookup; a writer copies the whole map under a mutex.
type cowDemux struct {
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
		send(ch)
	}
}
