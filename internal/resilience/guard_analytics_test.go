package resilience

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tasker-go/tasker/store"
)

func (s *downStore) PerformanceStats(context.Context, *store.PerformanceParams) (*store.Performance, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) SlowSteps(context.Context, *store.SlowParams) ([]*store.SlowStep, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) SlowTasks(context.Context, *store.SlowParams) ([]*store.SlowTask, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) StateCounts(context.Context) (*store.StateCounts, error) {
	s.calls++
	return nil, s.err
}

func TestGuardStoreGuardsTheAnalytics(t *testing.T) {
	ctx := t.Context()
	b, _ := newBreaker(t, BreakerConfig{FailureThreshold: 4, OpenFor: time.Second})
	down := &downStore{err: errDown}
	s := GuardStore(down, b)
	calls := []func() error{
		func() error { _, err := s.PerformanceStats(ctx, &store.PerformanceParams{}); return err },
		func() error { _, err := s.SlowSteps(ctx, &store.SlowParams{}); return err },
		func() error { _, err := s.SlowTasks(ctx, &store.SlowParams{}); return err },
		func() error { _, err := s.StateCounts(ctx); return err },
	}
	for i, c := range calls {
		if err := c(); !errors.Is(err, errDown) {
			t.Fatalf("call %d: %v, want the backend's error", i, err)
		}
	}
	if b.State() != StateOpen || down.calls != 4 {
		t.Fatalf("state %s after %d calls", b.State(), down.calls)
	}
	for i, c := range calls {
		if err := c(); !errors.Is(err, ErrOpen) {
			t.Fatalf("open, call %d: %v, want ErrOpen", i, err)
		}
	}
}
