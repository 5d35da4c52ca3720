package resilience

import (
	"context"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// The DLQ's and the staleness detector's store methods, guarded as the
// others are.

func (g *guardedStore) DLQList(ctx context.Context, p *store.DLQListParams) ([]*taskertype.DLQEntry, error) {
	return call(ctx, g.b, func() ([]*taskertype.DLQEntry, error) { return g.s.DLQList(ctx, p) })
}

func (g *guardedStore) DLQGet(ctx context.Context, id uuid.UUID) (*taskertype.DLQEntry, error) {
	return call(ctx, g.b, func() (*taskertype.DLQEntry, error) { return g.s.DLQGet(ctx, id) })
}

func (g *guardedStore) DLQUpdate(ctx context.Context, p *store.DLQUpdateParams) (*taskertype.DLQEntry, error) {
	return call(ctx, g.b, func() (*taskertype.DLQEntry, error) { return g.s.DLQUpdate(ctx, p) })
}

func (g *guardedStore) DLQStats(ctx context.Context, p *store.DLQStatsParams) ([]*store.DLQStats, error) {
	return call(ctx, g.b, func() ([]*store.DLQStats, error) { return g.s.DLQStats(ctx, p) })
}

func (g *guardedStore) TaskStaleTemplates(ctx context.Context, p *store.TaskStaleTemplatesParams) ([]store.TemplateKey, error) {
	return call(ctx, g.b, func() ([]store.TemplateKey, error) { return g.s.TaskStaleTemplates(ctx, p) })
}

func (g *guardedStore) TaskStaleList(ctx context.Context, p *store.TaskStaleListParams) ([]*taskertype.Task, error) {
	return call(ctx, g.b, func() ([]*taskertype.Task, error) { return g.s.TaskStaleList(ctx, p) })
}

func (g *guardedStore) LockTry(ctx context.Context, name string) (func(), bool, error) {
	type lock struct {
		release func()
		held    bool
	}
	l, err := call(ctx, g.b, func() (lock, error) {
		release, held, err := g.s.LockTry(ctx, name)
		return lock{release, held}, err
	})
	return l.release, l.held, err
}

func (t *guardedTx) DLQEntryCreate(ctx context.Context, p *store.DLQEntryCreateParams) (bool, error) {
	created, err := t.tx.DLQEntryCreate(ctx, p)
	return created, t.note(err)
}
