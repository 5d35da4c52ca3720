// Package background runs a component's goroutines between Start and Stop:
// started at most once at a time, stopped by cancelling their context, and
// waited for until they return or the caller's context ends.
package background

import (
	"context"
	"sync"
)

// Run is the zero-value-ready lifecycle of one component's background work.
type Run struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs fn in a goroutine with a context that ctx's cancellation does
// not end (only Stop does), and reports whether it started it: false when
// it runs already. fn must return once its context is cancelled.
func (r *Run) Start(ctx context.Context, fn func(ctx context.Context)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return false
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	r.cancel, r.done = cancel, done
	go func() {
		defer close(done)
		fn(runCtx)
	}()
	return true
}

// Running reports whether Start ran fn and Stop has not been called since.
func (r *Run) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cancel != nil
}

// Stop cancels fn's context and waits for fn to return, or for ctx to end
// (its error is returned then; fn still stops, later). Stopping what does
// not run does nothing.
func (r *Run) Stop(ctx context.Context) error {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel = nil
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
