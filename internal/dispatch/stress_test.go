package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/taskertype"
)

// TestStress dispatches 2000 steps from 64 goroutines (some with short
// deadlines) to 32 pull clients that poll and complete with random delays
// and outcomes (some never complete), while Metrics and CleanupTimeouts run
// alongside, and checks that every step got exactly one outcome and that
// the accounting adds up.
func TestStress(t *testing.T) {
	const (
		steps       = 2000
		dispatchers = 64
		clients     = 32
		capacity    = 24
	)
	c, err := New(Config{Capacity: capacity, CompleteTimeout: 15 * time.Millisecond, StarvationThreshold: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var inFlight, highWater, dispatched atomic.Int64
	c.slotHook = func(delta int) {
		n := inFlight.Add(int64(delta))
		if delta > 0 {
			dispatched.Add(1)
		}
		for {
			hw := highWater.Load()
			if n <= hw || highWater.CompareAndSwap(hw, n) {
				break
			}
		}
	}

	// Pull clients.
	type outcomeKind int
	const (
		okResult outcomeKind = iota
		plainErr
		permanentErr
		retryAfterErr
		forget // never completes: CleanupTimeouts must time it out
	)
	var completedByClients atomic.Int64
	clientCtx, stopClients := context.WithCancel(context.Background())
	var clientWG sync.WaitGroup
	for range clients {
		clientWG.Go(func() {
			for {
				ev, err := c.PollWait(clientCtx)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						t.Errorf("PollWait: %v", err)
					}
					return
				}
				if ev.PolledAt.IsZero() || ev.PolledAt.Before(ev.DispatchedAt) {
					t.Errorf("event times: dispatched %v, polled %v", ev.DispatchedAt, ev.PolledAt)
				}
				if rand.IntN(4) == 0 {
					time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
				}
				var r Result
				switch kind := outcomeKind(rand.IntN(20)); {
				case kind == 0:
					continue // forget
				case kind < 4:
					r = Result{Error: "boom " + ev.StepID.String()}
				case kind < 6:
					r = Result{Error: "fatal " + ev.StepID.String(), Permanent: true}
				case kind < 8:
					r = Result{Error: "later " + ev.StepID.String(), RetryAfter: time.Second}
				default:
					r = Result{Output: json.RawMessage(fmt.Sprintf(`{"step":%q}`, ev.StepID))}
				}
				if c.Complete(ev.ID, r) {
					completedByClients.Add(1)
				}
			}
		})
	}

	// Housekeeping alongside.
	hkCtx, stopHK := context.WithCancel(context.Background())
	var hkWG sync.WaitGroup
	var timedOutByCleanup atomic.Int64
	hkWG.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-hkCtx.Done():
				return
			case <-tick.C:
			}
			m := c.Metrics()
			if m.InFlight > capacity || m.InFlight != m.Queued+m.Pending || m.Starving > m.InFlight {
				t.Errorf("metrics out of bounds: %+v", m)
			}
			timedOutByCleanup.Add(int64(c.CleanupTimeouts()))
			c.CheckStarvation()
			_ = c.PendingCount()
		}
	})

	// Dispatchers.
	var (
		next                                     atomic.Int64
		returned                                 [steps]atomic.Int32
		succeeded, clientErrs, timeouts, ctxErrs atomic.Int64
		permanents, retryAfters                  atomic.Int64
		dispatchWG                               sync.WaitGroup
	)
	h := c.HandlerFor("stress")
	for range dispatchers {
		dispatchWG.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= steps {
					return
				}
				in := &taskertype.StepInput{TaskID: uuid.New(), StepID: uuid.New(), StepName: fmt.Sprint("s", i), Namespace: "py", Attempt: 1}
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if rand.IntN(5) == 0 {
					ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(5000))*time.Microsecond)
				}
				v, err := h.Handle(ctx, in)
				cancel()
				returned[i].Add(1)
				var he *taskertype.HandlerError
				switch {
				case err == nil:
					want := fmt.Sprintf(`{"step":%q}`, in.StepID)
					if raw, ok := v.(json.RawMessage); !ok || string(raw) != want {
						t.Errorf("step %d got %v, want %s", i, v, want)
					}
					succeeded.Add(1)
				case errors.Is(err, ErrCompleteTimeout):
					if !errors.As(err, &he) || he.Permanent {
						t.Errorf("timeout is not a retryable HandlerError: %v", err)
					}
					timeouts.Add(1)
				case errors.Is(err, context.DeadlineExceeded):
					ctxErrs.Add(1)
				default:
					if !strings.HasSuffix(err.Error(), in.StepID.String()) && !strings.Contains(err.Error(), in.StepID.String()+" (retry") {
						t.Errorf("step %d got another step's error: %v", i, err)
					}
					if errors.As(err, &he) {
						if he.Permanent {
							permanents.Add(1)
						} else if he.RetryAfter == time.Second {
							retryAfters.Add(1)
						}
					}
					clientErrs.Add(1)
				}
			}
		})
	}
	dispatchWG.Wait()
	stopHK()
	hkWG.Wait()
	stopClients()
	clientWG.Wait()

	for i := range returned {
		if n := returned[i].Load(); n != 1 {
			t.Fatalf("step %d: Handle returned %d times", i, n)
		}
	}
	m := c.Metrics()
	d := uint64(dispatched.Load())
	t.Logf("dispatched %d of %d (the rest ended before a slot); completed %d (ok %d, failed %d: permanent %d, retry-after %d), timed out %d, abandoned %d; in-flight high water %d/%d",
		d, steps, m.Completed, succeeded.Load(), clientErrs.Load(), permanents.Load(), retryAfters.Load(), m.TimedOut, m.Abandoned, highWater.Load(), capacity)
	if m.Completed+m.TimedOut+m.Abandoned != d {
		t.Errorf("completed %d + timed out %d + abandoned %d != dispatched %d", m.Completed, m.TimedOut, m.Abandoned, d)
	}
	if m.Completed != uint64(completedByClients.Load()) {
		t.Errorf("Completed = %d, but clients' Complete returned true %d times", m.Completed, completedByClients.Load())
	}
	if m.Completed != uint64(succeeded.Load()+clientErrs.Load()) {
		t.Errorf("Completed = %d, but Handle returned %d results and %d client errors", m.Completed, succeeded.Load(), clientErrs.Load())
	}
	if m.TimedOut != uint64(timeouts.Load()) || m.TimedOut != uint64(timedOutByCleanup.Load()) {
		t.Errorf("TimedOut = %d, Handle saw %d timeouts, CleanupTimeouts reported %d", m.TimedOut, timeouts.Load(), timedOutByCleanup.Load())
	}
	if want := m.Abandoned + (steps - d); uint64(ctxErrs.Load()) != want {
		t.Errorf("%d Handles returned their ctx's error, want abandoned %d + never dispatched %d", ctxErrs.Load(), m.Abandoned, steps-d)
	}
	if hw := highWater.Load(); hw > capacity || hw < 1 {
		t.Errorf("in-flight high water %d, capacity %d", hw, capacity)
	}
	if n := c.PendingCount(); n != 0 || m.InFlight != 0 || inFlight.Load() != 0 || len(c.sem) != 0 {
		t.Errorf("left over: pending %d, metrics %+v, slots %d/%d", n, m, inFlight.Load(), len(c.sem))
	}
	if m.TimedOut == 0 || m.Abandoned == 0 || m.Completed == 0 {
		t.Logf("note: a path was not exercised this run: %+v", m)
	}
}
