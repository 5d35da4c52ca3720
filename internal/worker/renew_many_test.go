package worker_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/worker"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

// Many long-running handlers started together keep their claims: the
// heartbeat renews them all although only 16 renewals run at once. (It used
// to skip the claims beyond those 16 until the next tick, which renewed at
// most 64 claims per window: beyond that, healthy claims lapsed and their
// handlers were cancelled.)
func TestManyLongHandlersKeepTheirClaims(t *testing.T) {
	for _, n := range []int{160} {
		t.Run(fmt.Sprintf("%d slots", n), func(t *testing.T) {
			// A lease of 2s leaves a third of it, 667ms, for each claim's
			// renewal to start: ample, even under -race on a loaded machine.
			const lease, run = 2 * time.Second, 5 * time.Second
			st := openStore(t)
			bus := events.NewBus()
			for range n {
				enqueue(t, st, bus)
			}
			var running, lost, other atomic.Int32
			allRunning := make(chan struct{})
			var once sync.Once
			h := taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
				if running.Add(1) == int32(n) {
					once.Do(func() { close(allRunning) })
				}
				select {
				case <-time.After(run): // 2.5 leases
					return "ok", nil
				case <-ctx.Done():
					c := context.Cause(ctx)
					if c != nil && strings.Contains(c.Error(), "claim on the step was lost") {
						lost.Add(1)
					} else {
						other.Add(1)
					}
					return nil, c
				}
			})
			w, err := worker.New(worker.Config{Store: st, Queue: st.Queue(), Bus: bus, Processor: "a",
				Namespaces: []string{ns}, Handlers: map[string]taskertype.Handler{"slow": h}, Concurrency: n,
				VisibilityTimeout: lease, IdlePoll: 20 * time.Millisecond, CancelCheck: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			select {
			case <-allRunning:
			case <-time.After(5 * time.Second):
				t.Logf("only %d running", running.Load())
			}
			time.Sleep(run + 500*time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = w.Stop(ctx)
			t.Logf("%d slots: handlers started %d, cancelled because the claim was lost: %d, otherwise cancelled: %d",
				n, running.Load(), lost.Load(), other.Load())
			if lost.Load() > 0 {
				t.Errorf("%d of %d healthy attempts lost their claims", lost.Load(), n)
			}
		})
	}
}

// ReportGroups is bounded, and a bad value is refused with the field named.
func TestReportGroupsAreChecked(t *testing.T) {
	st, err := storesqlite.Open(t.Context(), storesqlite.Config{Path: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := taskertype.HandlerFunc(func(context.Context, *taskertype.StepInput) (any, error) { return nil, nil })
	for _, n := range []int{-1, 257} {
		_, err := worker.New(worker.Config{Store: st, Queue: st.Queue(), Namespaces: []string{ns},
			Handlers: map[string]taskertype.Handler{"h": h}, ReportGroups: n})
		if err == nil || !strings.Contains(err.Error(), "ReportGroups") {
			t.Errorf("ReportGroups %d: %v, want an error naming ReportGroups", n, err)
		}
	}
	if _, err := worker.New(worker.Config{Store: st, Queue: st.Queue(), Namespaces: []string{ns},
		Handlers: map[string]taskertype.Handler{"h": h}, ReportGroups: 4}); err != nil {
		t.Errorf("ReportGroups 4: %v", err)
	}
}
