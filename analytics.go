package tasker

import (
	"context"
	"fmt"
	"time"

	"github.com/tasker-go/tasker/store"
)

// Analytics reads, computed by the database (store.Store's analytics
// methods; docs/api.md says what each figure is).

// Performance counts the tasks created since a time by what they became,
// with average task and step run times.
func (e *Engine) Performance(ctx context.Context, since time.Time) (*store.Performance, error) {
	p, err := e.store.PerformanceStats(ctx, &store.PerformanceParams{Since: since})
	if err != nil {
		return nil, fmt.Errorf("tasker: %w", err)
	}
	return p, nil
}

// SlowSteps returns up to limit steps slowest on average, by template
// version and step name, of those that ran at least minRuns times.
func (e *Engine) SlowSteps(ctx context.Context, limit, minRuns int) ([]*store.SlowStep, error) {
	s, err := e.store.SlowSteps(ctx, &store.SlowParams{Limit: limit, MinExecutions: minRuns})
	if err != nil {
		return nil, fmt.Errorf("tasker: %w", err)
	}
	return s, nil
}

// SlowTasks returns up to limit template versions whose finished tasks
// were slowest on average, of those with at least minRuns finished.
func (e *Engine) SlowTasks(ctx context.Context, limit, minRuns int) ([]*store.SlowTask, error) {
	s, err := e.store.SlowTasks(ctx, &store.SlowParams{Limit: limit, MinExecutions: minRuns})
	if err != nil {
		return nil, fmt.Errorf("tasker: %w", err)
	}
	return s, nil
}

// StateCounts counts every stored task and step by state.
func (e *Engine) StateCounts(ctx context.Context) (*store.StateCounts, error) {
	c, err := e.store.StateCounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("tasker: %w", err)
	}
	return c, nil
}
