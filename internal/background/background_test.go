package background

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Start runs once at a time; the caller's context does not stop it, Stop
// does and waits; a Stop whose context ends first says so, and the work
// still stops.
func TestStartStop(t *testing.T) {
	var r Run
	ctx, cancelCaller := context.WithCancel(context.Background())
	started := make(chan struct{})
	if !r.Start(ctx, func(ctx context.Context) { close(started); <-ctx.Done() }) {
		t.Fatal("the first Start did not start")
	}
	<-started
	if r.Start(ctx, func(context.Context) { t.Error("a second Start ran its function") }) {
		t.Fatal("a second Start while running started")
	}
	cancelCaller()
	if !r.Running() {
		t.Fatal("cancelling the caller's context stopped the work")
	}
	if err := r.Stop(context.Background()); err != nil || r.Running() {
		t.Fatalf("Stop: %v, running %v", err, r.Running())
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatalf("a second Stop: %v", err)
	}

	release := make(chan struct{})
	r.Start(context.Background(), func(ctx context.Context) { <-ctx.Done(); <-release })
	short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := r.Stop(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop of slow work with a short context: %v, want DeadlineExceeded", err)
	}
	close(release)
	if !r.Start(context.Background(), func(ctx context.Context) { <-ctx.Done() }) {
		t.Fatal("Start after a Stop did not start")
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
