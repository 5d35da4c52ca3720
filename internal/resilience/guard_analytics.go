package resilience

import (
	"context"

	"github.com/tasker-go/tasker/store"
)

// The analytics reads, guarded as the others are.

func (g *guardedStore) PerformanceStats(ctx context.Context, p *store.PerformanceParams) (*store.Performance, error) {
	return call(ctx, g.b, func() (*store.Performance, error) { return g.s.PerformanceStats(ctx, p) })
}

func (g *guardedStore) SlowSteps(ctx context.Context, p *store.SlowParams) ([]*store.SlowStep, error) {
	return call(ctx, g.b, func() ([]*store.SlowStep, error) { return g.s.SlowSteps(ctx, p) })
}

func (g *guardedStore) SlowTasks(ctx context.Context, p *store.SlowParams) ([]*store.SlowTask, error) {
	return call(ctx, g.b, func() ([]*store.SlowTask, error) { return g.s.SlowTasks(ctx, p) })
}

func (g *guardedStore) StateCounts(ctx context.Context) (*store.StateCounts, error) {
	return call(ctx, g.b, func() (*store.StateCounts, error) { return g.s.StateCounts(ctx) })
}
