package resilience

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/benchutil"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// The engine has two breakers, the store's and the queue's, made at
// start-up and handed to GuardStore and GuardQueue: no call looks a breaker
// up by name, so there is no registry to measure (the analysis's #7,
// RwLock<HashMap>, is two fields here). What every guarded call pays is the
// breaker's check around it, measured below on the calls production makes
// most: a transaction (InTx) and a plain read (TaskGet).

// nopStore answers at once, so that the figures are the guard's cost. The
// methods the benchmarks do not call are the embedded nil interface's.
type nopStore struct {
	store.Store
	task taskertype.Task
}

func (s *nopStore) InTx(_ context.Context, fn func(store.Tx) error) error { return fn(nil) }

func (s *nopStore) TaskGet(context.Context, uuid.UUID) (*taskertype.Task, error) { return &s.task, nil }

// mutexBreaker is the closed-state path of a breaker whose every call takes
// its mutex twice (in and out), as a breaker is first written: the design
// the atomic fast path replaces.
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

// BenchmarkBreakerGuard is a guarded store call in the closed state, the
// state a working engine is in: no guard at all (the simplest) against
// GuardStore with our breaker, whose InTx also wraps the Tx to classify its
// methods' errors. A mutex breaker is compared on the check alone
// (BenchmarkBreakerDo): a guard written around it would have to do the
// same wrapping.
//
//	go test -run '^$' -bench 'BreakerGuard|BreakerDo' ./internal/resilience (repeated, interleaved)
func BenchmarkBreakerGuard(b *testing.B) {
	nop := &nopStore{}
	ours, err := NewBreaker("store", BreakerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	cands := []struct {
		name string
		s    store.Store
	}{
		{"none", nop},
		{"guarded", GuardStore(nop, ours)},
	}
	tx := func(store.Tx) error { return nil }
	calls := []struct {
		name string
		call func(ctx context.Context, s store.Store) error
	}{
		{"InTx", func(ctx context.Context, s store.Store) error { return s.InTx(ctx, tx) }},
		{"TaskGet", func(ctx context.Context, s store.Store) error { _, err := s.TaskGet(ctx, uuid.Nil); return err }},
	}
	for _, call := range calls {
		for _, g := range benchutil.Goroutines {
			for _, c := range cands {
				b.Run(fmt.Sprintf("%s/g%d/%s", call.name, g, c.name), func(b *testing.B) {
					ctx := context.Background()
					b.ReportAllocs()
					benchutil.RunG(b, g, func(_ uint64, next func() bool) {
						for next() {
							if err := call.call(ctx, c.s); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		}
	}
}

// BenchmarkBreakerDo is the breaker's check around a call that succeeds:
// none, ours (an atomic fast path) and a mutex breaker.
func BenchmarkBreakerDo(b *testing.B) {
	ours, err := NewBreaker("store", BreakerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ok := func() error { return nil }
	cands := []struct {
		name string
		do   func(func() error) error
	}{
		{"none", func(fn func() error) error { return fn() }},
		{"atomic", ours.Do},
		{"mutex", (&mutexBreaker{threshold: 5}).Do},
	}
	for _, g := range benchutil.Goroutines {
		for _, c := range cands {
			b.Run(fmt.Sprintf("g%d/%s", g, c.name), func(b *testing.B) {
				benchutil.RunG(b, g, func(_ uint64, next func() bool) {
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
	for _, g := range benchutil.Goroutines {
		b.Run(fmt.Sprintf("atomic/g%d", g), func(b *testing.B) {
			benchutil.RunG(b, g, func(_ uint64, next func() bool) {
				for next() {
					_ = br.Do(nf)
				}
			})
		})
	}
}

var errNotFoundWrapped = fmt.Errorf("task 1: %w", taskertype.ErrNotFound)
