package postgres

import (
	"slices"

	"github.com/puzpuzpuz/xsync/v4"
)

// demux fans the wake-ups of each queue out to that queue's subscribers in
// this process: it is what the analysis (TAS-163 #10, our #11) calls the
// PGMQ demux senders. The process's one listener connection receives every
// notification and dispatches it here by queue name, as do the process's
// own senders after their commits.
//
// The pattern: a lookup and a fan-out on every notification, from the
// listener and from every sender; subscribe and unsubscribe rarely (a
// consumer starts or stops). An xsync.Map from queue name to a
// copy-on-write slice of subscribers: a dispatch is a lock-free lookup that
// writes nothing shared; a subscribe or an unsubscribe replaces one queue's
// slice under that entry's lock (Compute).
//
// Measured by BenchmarkDemux (demux_bench_test.go) against the simplest
// (one mutex over a map), the analysis's RWMutex map, sync.Map and a
// copy-on-write map, with a process's real queue count (4) and 64, every
// candidate counting its signals as this one does for
// queue.WakeupStats: figures and command in docs/concurrency.md (#11). At
// the rate notifications arrive (one per commit that sends messages) every
// candidate costs well under a microsecond per notification.
type demux struct {
	subs *xsync.Map[string, []*subscriber]
	// Striped counters: a dispatch still writes no cache line that the
	// other dispatching goroutines write.
	signals, coalesced *xsync.Counter
}

type subscriber struct {
	ch chan struct{}
}

func newDemux() *demux {
	return &demux{subs: xsync.NewMap[string, []*subscriber](), signals: xsync.NewCounter(), coalesced: xsync.NewCounter()}
}

// signal wakes every subscriber of a queue without blocking: a full channel
// already holds a signal its subscriber has not taken yet.
func (d *demux) signal(name string) {
	list, _ := d.subs.Load(name)
	d.wake(list)
}

// signalAll wakes every subscriber of every queue.
func (d *demux) signalAll() {
	d.subs.Range(func(_ string, list []*subscriber) bool {
		d.wake(list)
		return true
	})
}

func (d *demux) wake(list []*subscriber) {
	for _, s := range list {
		select {
		case s.ch <- struct{}{}:
			d.signals.Inc()
		default:
			d.coalesced.Inc()
		}
	}
}

// subscribe adds a subscriber to a queue.
func (d *demux) subscribe(name string) *subscriber {
	s := &subscriber{ch: make(chan struct{}, 1)}
	d.subs.Compute(name, func(old []*subscriber, _ bool) ([]*subscriber, xsync.ComputeOp) {
		// A new slice: a dispatch may be reading the old one.
		return append(slices.Clip(old), s), xsync.UpdateOp
	})
	return s
}

// unsubscribe removes a subscriber; removing it twice is harmless.
func (d *demux) unsubscribe(name string, s *subscriber) {
	d.subs.Compute(name, func(old []*subscriber, _ bool) ([]*subscriber, xsync.ComputeOp) {
		i := slices.Index(old, s)
		switch {
		case i < 0:
			return old, xsync.CancelOp
		case len(old) == 1:
			return nil, xsync.DeleteOp
		}
		return slices.Delete(slices.Clone(old), i, i+1), xsync.UpdateOp
	})
}

// len counts the subscribers of all queues.
func (d *demux) len() int {
	n := 0
	d.subs.Range(func(_ string, list []*subscriber) bool {
		n += len(list)
		return true
	})
	return n
}

// counts returns the queues with subscribers, the subscribers, and the
// signals and coalesced signals so far.
func (d *demux) counts() (queues, subs int, signals, coalesced uint64) {
	d.subs.Range(func(_ string, list []*subscriber) bool {
		if len(list) > 0 {
			queues++
			subs += len(list)
		}
		return true
	})
	return queues, subs, uint64(d.signals.Value()), uint64(d.coalesced.Value())
}

// names returns the queues that have subscribers, sorted.
func (d *demux) names() []string {
	var out []string
	d.subs.Range(func(name string, list []*subscriber) bool {
		if len(list) > 0 {
			out = append(out, name)
		}
		return true
	})
	slices.Sort(out)
	return out
}
