package resilience

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

func (s *downStore) DLQList(context.Context, *store.DLQListParams) ([]*taskertype.DLQEntry, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) DLQGet(context.Context, uuid.UUID) (*taskertype.DLQEntry, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) DLQUpdate(context.Context, *store.DLQUpdateParams) (*taskertype.DLQEntry, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) DLQStats(context.Context, *store.DLQStatsParams) ([]*store.DLQStats, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) TaskStaleTemplates(context.Context, *store.TaskStaleTemplatesParams) ([]store.TemplateKey, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) TaskStaleList(context.Context, *store.TaskStaleListParams) ([]*taskertype.Task, error) {
	s.calls++
	return nil, s.err
}

func (s *downStore) LockTry(context.Context, string) (func(), bool, error) {
	s.calls++
	return nil, false, s.err
}

func TestGuardStoreGuardsTheDLQMethods(t *testing.T) {
	ctx := t.Context()
	b, _ := newBreaker(t, BreakerConfig{FailureThreshold: 7, OpenFor: time.Second})
	down := &downStore{err: errDown}
	s := GuardStore(down, b)
	calls := []func() error{
		func() error { _, err := s.DLQList(ctx, &store.DLQListParams{}); return err },
		func() error { _, err := s.DLQGet(ctx, uuid.New()); return err },
		func() error { _, err := s.DLQUpdate(ctx, &store.DLQUpdateParams{}); return err },
		func() error { _, err := s.DLQStats(ctx, &store.DLQStatsParams{}); return err },
		func() error { _, err := s.TaskStaleTemplates(ctx, &store.TaskStaleTemplatesParams{}); return err },
		func() error { _, err := s.TaskStaleList(ctx, &store.TaskStaleListParams{}); return err },
		func() error { _, _, err := s.LockTry(ctx, "x"); return err },
	}
	for i, c := range calls {
		if err := c(); !errors.Is(err, errDown) {
			t.Fatalf("call %d: %v, want the backend's error", i, err)
		}
	}
	if b.State() != StateOpen || down.calls != 7 {
		t.Fatalf("state %s after %d calls", b.State(), down.calls)
	}
	for i, c := range calls {
		if err := c(); !errors.Is(err, ErrOpen) {
			t.Fatalf("open, call %d: %v, want ErrOpen", i, err)
		}
	}
}
