package resilience

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/puzpuzpuz/xsync/v4"

	"github.com/tasker-go/tasker/taskertype"
)

// runG runs body on g goroutines per core, through b.RunParallel:
// g1 is one per core (GOMAXPROCS goroutines), g16 sixteen per core.
func runG(b *testing.B, g int, body func(next func() bool)) {
	b.SetParallelism(g)
	b.RunParallel(func(pb *testing.PB) { body(pb.Next) })
}

var goroutines = []int{1, 16}

// Registry candidates: the read side only matters, Add runs at start-up.

type registryCand interface {
	get(name string) (*Breaker, bool)
}

type rwRegistry struct {
	mu sync.RWMutex
	m  map[string]*Breaker
}

func (r *rwRegistry) get(name string) (*Breaker, bool) {
	r.mu.RLock()
	b, ok := r.m[name]
	r.mu.RUnlock()
	return b, ok
}

type cowRegistry struct{ r *Registry }

func (c cowRegistry) get(name string) (*Breaker, bool) { return c.r.Get(name) }

type syncMapRegistry struct{ m sync.Map }

func (s *syncMapRegistry) get(name string) (*Breaker, bool) {
	v, ok := s.m.Load(name)
	if !ok {
		return nil, false
	}
	return v.(*Breaker), true
}

type xsyncRegistry struct{ m *xsync.Map[string, *Breaker] }

func (x xsyncRegistry) get(name string) (*Breaker, bool) { return x.m.Load(name) }

var benchNames = []string{"store", "queue", "queue.rabbitmq", "store.replica"}

func BenchmarkBreakerRegistry(b *testing.B) {
	var bs []*Breaker
	for _, n := range benchNames {
		br, _ := NewBreaker(n, BreakerConfig{})
		bs = append(bs, br)
	}
	rw := &rwRegistry{m: map[string]*Breaker{}}
	sm := &syncMapRegistry{}
	xm := xsyncRegistry{xsync.NewMap[string, *Breaker]()}
	for _, br := range bs {
		rw.m[br.name] = br
		sm.m.Store(br.name, br)
		xm.m.Store(br.name, br)
	}
	cands := []struct {
		name string
		r    registryCand
	}{
		{"rwmutex", rw},
		{"cow", cowRegistry{must(NewRegistry(bs...))}},
		{"syncmap", sm},
		{"xsync", xm},
	}
	for _, c := range cands {
		for _, g := range goroutines {
			b.Run(fmt.Sprintf("%s/g%d", c.name, g), func(b *testing.B) {
				var misses atomic.Int64
				runG(b, g, func(next func() bool) {
					i := 0
					for next() {
						if _, ok := c.r.get(benchNames[i&3]); !ok {
							misses.Add(1)
						}
						i++
					}
				})
				if misses.Load() != 0 {
					b.Fatal("lookup missed")
				}
			})
		}
	}
}

// mutexBreaker is the closed-state path of a breaker whose every call takes
// its mutex twice (in and out): the design the atomic fast path replaces.
type mutexBreaker struct {
	mu          sync.Mutex
	open        bool
	openedAt    time.Time
	consecutive int
	threshold   int
}

func (m *mutexBreaker) Do(fn func() error) error {
	m.mu.Lock()
	if m.open {
		m.mu.Unlock()
		return ErrOpen
	}
	m.mu.Unlock()
	err := fn()
	m.mu.Lock()
	if err != nil && DefaultIsFailure(err) {
		m.consecutive++
		if m.consecutive >= m.threshold {
			m.open, m.openedAt = true, time.Now()
		}
	} else {
		m.consecutive = 0
	}
	m.mu.Unlock()
	return err
}

func BenchmarkBreakerDo(b *testing.B) {
	br, _ := NewBreaker("store", BreakerConfig{})
	cands := []struct {
		name string
		do   func(func() error) error
	}{
		{"mutex", (&mutexBreaker{threshold: 5}).Do},
		{"atomic", br.Do},
	}
	ok := func() error { return nil }
	for _, c := range cands {
		for _, g := range goroutines {
			b.Run(fmt.Sprintf("%s/g%d", c.name, g), func(b *testing.B) {
				runG(b, g, func(next func() bool) {
					for next() {
						if err := c.do(ok); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkBreakerDoNotFound is the closed-state path with a non-failure
// error (a lookup that found nothing): the classifier runs, no lock.
func BenchmarkBreakerDoNotFound(b *testing.B) {
	br, _ := NewBreaker("store", BreakerConfig{})
	nf := func() error { return errNotFoundWrapped }
	for _, g := range goroutines {
		b.Run(fmt.Sprintf("atomic/g%d", g), func(b *testing.B) {
			runG(b, g, func(next func() bool) {
				for next() {
					_ = br.Do(nf)
				}
			})
		})
	}
}

var errNotFoundWrapped = fmt.Errorf("task 1: %w", taskertype.ErrNotFound)

func must(r *Registry, err error) *Registry {
	if err != nil {
		panic(err)
	}
	return r
}
