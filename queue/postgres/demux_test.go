package postgres

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestDemuxStress: subscribers come and go on many goroutines while
// notifications are dispatched; every subscriber present during the
// dispatches is woken, and none is left behind.
func TestDemuxStress(t *testing.T) {
	const queues, subscribers, rounds = 8, 32, 300
	d := newDemux()
	names := make([]string, queues)
	for i := range names {
		names[i] = fmt.Sprint("q", i)
	}
	stop := make(chan struct{})
	var dispatchers sync.WaitGroup
	for g := range 4 {
		dispatchers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%64 == 0 {
					d.signalAll()
				} else {
					d.signal(names[(g+i)%queues])
				}
			}
		})
	}
	var subs sync.WaitGroup
	for g := range subscribers {
		subs.Go(func() {
			for i := range rounds {
				name := names[(g*7+i)%queues]
				s := d.subscribe(name)
				select {
				case <-s.ch:
				case <-time.After(10 * time.Second):
					t.Errorf("subscriber %d of %s never woken", g, name)
				}
				d.unsubscribe(name, s)
				d.unsubscribe(name, s) // twice is harmless
			}
		})
	}
	subs.Wait()
	close(stop)
	dispatchers.Wait()
	if n := d.len(); n != 0 {
		t.Fatalf("%d subscribers left after every one unsubscribed", n)
	}
	if n := len(d.subs); n != 0 {
		t.Fatalf("%d queue entries left", n)
	}
}
