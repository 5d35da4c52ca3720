package postgres

import (
	"slices"
	"sync"
	"sync/atomic"
)

// demux fans the wake-ups of each queue out to that queue's subscribers in
// this process: it is what the analysis (TAS-163 #10, our #11) calls the
// PGMQ demux senders. The process's one listener connection receives every
// notification and dispatches it here by queue name, as do the process's
// own senders after their commits.
//
// The pattern: a lookup and a fan-out on every notification, from the
// listener and from every sender; subscribe and unsubscribe rarely (a
// consumer starts or stops); few queues (the orchestrator's two, a
// worker's one per namespace). The simplest: one sync.Mutex over a map
// from queue name to its subscribers, held for the lookup and the
// non-blocking sends, never across anything that blocks.
//
// Measured by BenchmarkDemux (demux_bench_test.go) against the analysis's
// "current" RWMutex map (which it says to leave as it is), an xsync.Map of
// copy-on-write slices (the design this replaced, which no longer won: a
// tie on a quiet machine, a loss on a busy one), sync.Map and a
// copy-on-write map, with a process's real queue count (4) and 64, every candidate
// counting its signals as this one does for queue.WakeupStats: figures and
// command in docs/concurrency.md (#11). At the rate notifications arrive
// (one per commit that sends messages) every candidate costs well under a
// microsecond per notification.
type demux struct {
	mu   sync.Mutex
	subs map[string][]*subscriber

	signals, coalesced atomic.Uint64
}

type subscriber struct {
	ch chan struct{}
}

func newDemux() *demux {
	return &demux{subs: map[string][]*subscriber{}}
}

// signal wakes every subscriber of a queue without blocking: a full channel
// already holds a signal its subscriber has not taken yet.
func (d *demux) signal(name string) {
	d.mu.Lock()
	d.wake(d.subs[name])
	d.mu.Unlock()
}

// signalAll wakes every subscriber of every queue.
func (d *demux) signalAll() {
	d.mu.Lock()
	for _, list := range d.subs {
		d.wake(list)
	}
	d.mu.Unlock()
}

func (d *demux) wake(list []*subscriber) {
	for _, s := range list {
		select {
		case s.ch <- struct{}{}:
			d.signals.Add(1)
		default:
			d.coalesced.Add(1)
		}
	}
}

// subscribe adds a subscriber to a queue.
func (d *demux) subscribe(name string) *subscriber {
	s := &subscriber{ch: make(chan struct{}, 1)}
	d.mu.Lock()
	d.subs[name] = append(d.subs[name], s)
	d.mu.Unlock()
	return s
}

// unsubscribe removes a subscriber; removing it twice is harmless.
func (d *demux) unsubscribe(name string, s *subscriber) {
	d.mu.Lock()
	defer d.mu.Unlock()
	list := d.subs[name]
	i := slices.Index(list, s)
	switch {
	case i < 0:
	case len(list) == 1:
		delete(d.subs, name)
	default:
		d.subs[name] = slices.Delete(list, i, i+1)
	}
}

// len counts the subscribers of all queues.
func (d *demux) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, list := range d.subs {
		n += len(list)
	}
	return n
}

// counts returns the queues with subscribers, the subscribers, and the
// signals and coalesced signals so far.
func (d *demux) counts() (queues, subs int, signals, coalesced uint64) {
	d.mu.Lock()
	for _, list := range d.subs {
		queues++
		subs += len(list)
	}
	d.mu.Unlock()
	return queues, subs, d.signals.Load(), d.coalesced.Load()
}

// names returns the queues that have subscribers, sorted.
func (d *demux) names() []string {
	d.mu.Lock()
	out := make([]string, 0, len(d.subs))
	for name := range d.subs {
		out = append(out, name)
	}
	d.mu.Unlock()
	slices.Sort(out)
	return out
}
