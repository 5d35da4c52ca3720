package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/taskertype"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newChannel(t *testing.T, cfg Config) *Channel {
	t.Helper()
	if cfg.Capacity == 0 {
		cfg.Capacity = 8
	}
	if cfg.CompleteTimeout == 0 {
		cfg.CompleteTimeout = time.Minute
	}
	if cfg.StarvationThreshold == 0 {
		cfg.StarvationThreshold = time.Minute
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func stepInput(name string) *taskertype.StepInput {
	return &taskertype.StepInput{
		TaskID: uuid.New(), StepID: uuid.New(), StepName: name, Namespace: "py", Attempt: 2,
		Context: json.RawMessage(`{"order":42}`),
		Results: map[string]json.RawMessage{"fetch": json.RawMessage(`[1,2]`)},
	}
}

type handled struct {
	v   any
	err error
}

// dispatch runs Handle in a goroutine; the result arrives on the channel.
func dispatch(ctx context.Context, h taskertype.Handler, in *taskertype.StepInput) <-chan handled {
	ch := make(chan handled, 1)
	go func() {
		v, err := h.Handle(ctx, in)
		ch <- handled{v, err}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan handled) handled {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Handle did not return")
		return handled{}
	}
}

func notReturned(t *testing.T, ch <-chan handled, d time.Duration) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("Handle returned early: %v, %v", r.v, r.err)
	case <-time.After(d):
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func pollWait(t *testing.T, c *Channel) *Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := c.PollWait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// logSink records log records.
type logSink struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	s.mu.Lock()
	s.recs = append(s.recs, r.Clone())
	s.mu.Unlock()
	return nil
}
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *logSink) WithGroup(string) slog.Handler      { return s }
func (s *logSink) warnings() []slog.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []slog.Record
	for _, r := range s.recs {
		if r.Level == slog.LevelWarn {
			out = append(out, r)
		}
	}
	return out
}

func attr(r slog.Record, key string) (slog.Value, bool) {
	var v slog.Value
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v, found = a.Value, true
			return false
		}
		return true
	})
	return v, found
}

func TestChannel(t *testing.T) {
	t.Run("a polled and completed event returns its output through Handle", func(t *testing.T) {
		clk := testclock.New(t0)
		c := newChannel(t, Config{Clock: clk})
		in := stepInput("charge")
		got := dispatch(context.Background(), c.HandlerFor("charge_card"), in)
		ev := pollWait(t, c)
		if ev.TaskID != in.TaskID || ev.StepID != in.StepID || ev.StepName != "charge" || ev.Namespace != "py" ||
			ev.Handler != "charge_card" || ev.Attempt != 2 || string(ev.Context) != `{"order":42}` || string(ev.Results["fetch"]) != `[1,2]` {
			t.Fatalf("event does not carry the step input: %+v", ev)
		}
		if ev.ID.Version() != 7 {
			t.Errorf("event id %s is version %d, want 7", ev.ID, ev.ID.Version())
		}
		if !ev.DispatchedAt.Equal(t0) || !ev.PolledAt.Equal(t0) {
			t.Errorf("DispatchedAt %v, PolledAt %v; want both %v", ev.DispatchedAt, ev.PolledAt, t0)
		}
		if n := c.PendingCount(); n != 1 {
			t.Fatalf("PendingCount = %d after poll, want 1", n)
		}
		if !c.Complete(ev.ID, Result{Output: json.RawMessage(`{"charged":true}`)}) {
			t.Fatal("Complete of a polled event returned false")
		}
		r := wait(t, got)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if raw, ok := r.v.(json.RawMessage); !ok || string(raw) != `{"charged":true}` {
			t.Fatalf("Handle returned %#v, want the output as json.RawMessage", r.v)
		}
		if n := c.PendingCount(); n != 0 {
			t.Errorf("PendingCount = %d after completion, want 0", n)
		}
		if m := c.Metrics(); m.Completed != 1 || m.InFlight != 0 {
			t.Errorf("metrics after completion: %+v", m)
		}
	})

	t.Run("a nil output returns JSON null", func(t *testing.T) {
		c := newChannel(t, Config{})
		got := dispatch(context.Background(), c.Handler(), stepInput("s"))
		ev := pollWait(t, c)
		if ev.Handler != "" {
			t.Errorf("Handler() event has Handler %q, want empty", ev.Handler)
		}
		c.Complete(ev.ID, Result{})
		r := wait(t, got)
		if raw, ok := r.v.(json.RawMessage); r.err != nil || !ok || string(raw) != "null" {
			t.Fatalf("Handle returned %#v, %v; want json null", r.v, r.err)
		}
	})

	t.Run("Poll never blocks and returns false on an empty channel", func(t *testing.T) {
		c := newChannel(t, Config{})
		done := make(chan bool)
		go func() {
			ev, ok := c.Poll()
			done <- ok || ev != nil
		}()
		select {
		case got := <-done:
			if got {
				t.Fatal("Poll on an empty channel returned an event")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Poll blocked")
		}
		got := dispatch(context.Background(), c.Handler(), stepInput("s"))
		var ev *Event
		eventually(t, "the event is queued", func() bool {
			var ok bool
			ev, ok = c.Poll()
			return ok
		})
		if _, ok := c.Poll(); ok {
			t.Fatal("the same event was polled twice")
		}
		c.Complete(ev.ID, Result{Output: json.RawMessage(`1`)})
		wait(t, got)
	})

	t.Run("events are polled oldest first", func(t *testing.T) {
		c := newChannel(t, Config{})
		var gots []<-chan handled
		for i := range 3 {
			gots = append(gots, dispatch(context.Background(), c.Handler(), stepInput(string(rune('a'+i)))))
			eventually(t, "the event is queued", func() bool { return c.Metrics().Queued == i+1 })
		}
		for i := range 3 {
			ev := pollWait(t, c)
			if want := string(rune('a' + i)); ev.StepName != want {
				t.Fatalf("poll %d took %q, want %q", i, ev.StepName, want)
			}
			c.Complete(ev.ID, Result{})
		}
		for _, g := range gots {
			wait(t, g)
		}
	})

	t.Run("PollWait waits and honours ctx", func(t *testing.T) {
		c := newChannel(t, Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := c.PollWait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("PollWait on an empty channel = %v, want the ctx's deadline error", err)
		}
		if d := time.Since(start); d < 25*time.Millisecond {
			t.Fatalf("PollWait returned after %v, before its ctx ended", d)
		}
		cause := errors.New("client shutting down")
		cctx, ccancel := context.WithCancelCause(context.Background())
		ccancel(cause)
		if _, err := c.PollWait(cctx); !errors.Is(err, cause) {
			t.Fatalf("PollWait with an ended ctx = %v, want its cause", err)
		}

		evs := make(chan *Event, 1)
		go func() {
			ev, err := c.PollWait(context.Background())
			if err != nil {
				t.Error(err)
			}
			evs <- ev
		}()
		select {
		case <-evs:
			t.Fatal("PollWait returned with nothing queued")
		case <-time.After(30 * time.Millisecond):
		}
		got := dispatch(context.Background(), c.Handler(), stepInput("woken"))
		var ev *Event
		select {
		case ev = <-evs:
		case <-time.After(10 * time.Second):
			t.Fatal("PollWait was not woken by a dispatch")
		}
		if ev.StepName != "woken" {
			t.Fatalf("PollWait took %q", ev.StepName)
		}
		c.Complete(ev.ID, Result{})
		wait(t, got)
	})

	t.Run("many PollWait callers each get one of many events", func(t *testing.T) {
		c := newChannel(t, Config{Capacity: 64})
		const n = 50
		evs := make(chan *Event, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				ev, err := c.PollWait(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				evs <- ev
			})
		}
		var gots []<-chan handled
		for range n {
			gots = append(gots, dispatch(context.Background(), c.Handler(), stepInput("s")))
		}
		wg.Wait()
		close(evs)
		seen := map[uuid.UUID]bool{}
		for ev := range evs {
			if seen[ev.ID] {
				t.Fatalf("event %s polled twice", ev.ID)
			}
			seen[ev.ID] = true
			c.Complete(ev.ID, Result{})
		}
		for _, g := range gots {
			if r := wait(t, g); r.err != nil {
				t.Fatal(r.err)
			}
		}
	})

	t.Run("completing an unknown, already completed or not-yet-polled id returns false and changes nothing", func(t *testing.T) {
		c := newChannel(t, Config{Clock: testclock.New(t0)})
		first := dispatch(context.Background(), c.Handler(), stepInput("first"))
		ev := pollWait(t, c)
		second := dispatch(context.Background(), c.Handler(), stepInput("second"))
		eventually(t, "the second event is queued", func() bool { return c.Metrics().Queued == 1 })
		var queuedID uuid.UUID
		c.walk(func(e *entry) { queuedID = e.ev.ID }, func(uuid.UUID, *entry) {})

		before := c.Metrics()
		if c.Complete(uuid.Must(uuid.NewV7()), Result{Output: json.RawMessage(`1`)}) {
			t.Error("Complete of an unknown id returned true")
		}
		if c.Complete(queuedID, Result{Output: json.RawMessage(`1`)}) {
			t.Error("Complete of a queued, not polled id returned true")
		}
		if after := c.Metrics(); after != before {
			t.Errorf("metrics changed:\nbefore %+v\nafter  %+v", before, after)
		}
		notReturned(t, first, 10*time.Millisecond)
		notReturned(t, second, 0)

		if !c.Complete(ev.ID, Result{Output: json.RawMessage(`"once"`)}) {
			t.Fatal("Complete of the polled event returned false")
		}
		before = c.Metrics()
		if c.Complete(ev.ID, Result{Output: json.RawMessage(`"twice"`)}) {
			t.Error("a second Complete of the same id returned true")
		}
		if after := c.Metrics(); after != before {
			t.Errorf("metrics changed:\nbefore %+v\nafter  %+v", before, after)
		}
		if r := wait(t, first); string(r.v.(json.RawMessage)) != `"once"` {
			t.Errorf("Handle returned %s, want the first completion's output", r.v)
		}
		ev2 := pollWait(t, c)
		if ev2.ID != queuedID {
			t.Fatal("the queued event was not the one polled next")
		}
		c.Complete(ev2.ID, Result{})
		wait(t, second)
	})

	t.Run("a permanent error and a retry-after reach the handler's error", func(t *testing.T) {
		c := newChannel(t, Config{})
		for _, tc := range []struct {
			name       string
			r          Result
			handlerErr bool
			permanent  bool
			retryAfter time.Duration
		}{
			{"permanent", Result{Error: "card declined", Permanent: true}, true, true, 0},
			{"retry after", Result{Error: "rate limited", RetryAfter: 3 * time.Second}, true, false, 3 * time.Second},
			{"plain", Result{Error: "flaky upstream"}, false, false, 0},
		} {
			got := dispatch(context.Background(), c.Handler(), stepInput(tc.name))
			ev := pollWait(t, c)
			c.Complete(ev.ID, tc.r)
			r := wait(t, got)
			if r.err == nil || !strings.Contains(r.err.Error(), tc.r.Error) {
				t.Fatalf("%s: Handle error = %v, want one saying %q", tc.name, r.err, tc.r.Error)
			}
			var he *taskertype.HandlerError
			if errors.As(r.err, &he) != tc.handlerErr {
				t.Fatalf("%s: errors.As(*HandlerError) = %v, want %v", tc.name, !tc.handlerErr, tc.handlerErr)
			}
			if he != nil && (he.Permanent != tc.permanent || he.RetryAfter != tc.retryAfter) {
				t.Errorf("%s: HandlerError{Permanent: %v, RetryAfter: %v}, want {%v, %v}", tc.name, he.Permanent, he.RetryAfter, tc.permanent, tc.retryAfter)
			}
			f := taskertype.FailureFromError(r.err, 1)
			if f.Retryable == tc.permanent || f.RetryAfter != tc.retryAfter {
				t.Errorf("%s: step failure %+v", tc.name, f)
			}
		}
	})

	t.Run("CleanupTimeouts turns an overdue pending event into a retryable timeout failure of its Handle", func(t *testing.T) {
		clk := testclock.New(t0)
		c := newChannel(t, Config{Clock: clk, CompleteTimeout: 30 * time.Second})
		got := dispatch(context.Background(), c.Handler(), stepInput("slow"))
		ev := pollWait(t, c)
		queuedLong := dispatch(context.Background(), c.Handler(), stepInput("queued"))
		eventually(t, "the second event is queued", func() bool { return c.Metrics().Queued == 1 })

		clk.Advance(30 * time.Second)
		if n := c.CleanupTimeouts(); n != 0 {
			t.Fatalf("CleanupTimeouts at exactly the timeout = %d, want 0", n)
		}
		clk.Advance(time.Millisecond)
		if n := c.CleanupTimeouts(); n != 1 {
			t.Fatalf("CleanupTimeouts past the timeout = %d, want 1 (a queued event is not timed out)", n)
		}
		r := wait(t, got)
		var he *taskertype.HandlerError
		if !errors.As(r.err, &he) || he.Permanent {
			t.Fatalf("Handle error = %#v, want a retryable *taskertype.HandlerError", r.err)
		}
		if !errors.Is(r.err, ErrCompleteTimeout) || !strings.Contains(r.err.Error(), "did not complete") || !strings.Contains(r.err.Error(), "30s") {
			t.Errorf("timeout error %q does not say the pull worker did not complete within the timeout", r.err)
		}
		if !taskertype.FailureFromError(r.err, 1).Retryable {
			t.Error("a timeout failure is not retryable")
		}
		if c.Complete(ev.ID, Result{}) {
			t.Error("a timed-out event could still be completed")
		}
		if m := c.Metrics(); m.TimedOut != 1 || m.Pending != 0 || m.Queued != 1 || c.PendingCount() != 0 {
			t.Errorf("metrics after timeout: %+v", m)
		}
		notReturned(t, queuedLong, 0)
		ev2 := pollWait(t, c)
		c.Complete(ev2.ID, Result{})
		wait(t, queuedLong)
	})

	t.Run("Run times out overdue events periodically until ctx ends", func(t *testing.T) {
		clk := testclock.New(t0)
		c := newChannel(t, Config{Clock: clk, CompleteTimeout: 40 * time.Millisecond, StarvationThreshold: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan struct{})
		go func() { c.Run(ctx); close(ran) }()
		got := dispatch(context.Background(), c.Handler(), stepInput("s"))
		pollWait(t, c)
		clk.Advance(time.Second)
		if r := wait(t, got); !errors.Is(r.err, ErrCompleteTimeout) {
			t.Fatalf("Handle = %v, want a complete timeout", r.err)
		}
		cancel()
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return when its ctx ended")
		}
	})

	t.Run("Metrics reports ages, oldest id and starving count; CheckStarvation logs each starving event", func(t *testing.T) {
		clk := testclock.New(t0)
		sink := &logSink{}
		c := newChannel(t, Config{Clock: clk, StarvationThreshold: 10 * time.Second, Capacity: 5, Logger: slog.New(sink)})
		if m := c.Metrics(); m != (Metrics{Capacity: 5}) {
			t.Fatalf("metrics of an empty channel: %+v", m)
		}
		// a dispatched at t0, b at t0+5s, c at t0+8s; a polled at t0+8s,
		// b at t0+12s; now t0+15s.
		var gots []<-chan handled
		for i, d := range []time.Duration{0, 5 * time.Second, 3 * time.Second} {
			clk.Advance(d)
			gots = append(gots, dispatch(context.Background(), c.Handler(), stepInput(string(rune('a'+i)))))
			eventually(t, "the event is queued", func() bool { return c.Metrics().Queued == i+1 })
		}
		a := pollWait(t, c)
		clk.Advance(4 * time.Second)
		b := pollWait(t, c)
		clk.Advance(3 * time.Second)

		m := c.Metrics()
		want := Metrics{
			Queued: 1, Pending: 2, InFlight: 3, Capacity: 5,
			OldestAge: 7 * time.Second, NewestAge: 3 * time.Second, OldestID: a.ID,
			Starving: 1, // a: 15s > 10s; b: exactly 10s is not "longer"; c: 7s
		}
		if m != want {
			t.Fatalf("metrics:\n got %+v\nwant %+v", m, want)
		}
		clk.Advance(5 * time.Second) // a 20s, b 15s, c 12s: all starving
		if m := c.Metrics(); m.Starving != 3 || m.OldestAge != 12*time.Second || m.NewestAge != 8*time.Second {
			t.Fatalf("metrics 5s later: %+v", m)
		}
		if n := c.CheckStarvation(); n != 3 {
			t.Fatalf("CheckStarvation = %d, want 3", n)
		}
		warns := sink.warnings()
		if len(warns) != 3 {
			t.Fatalf("CheckStarvation logged %d warnings, want 3", len(warns))
		}
		ages := map[string]time.Duration{}
		for _, r := range warns {
			id, ok1 := attr(r, "event_id")
			age, ok2 := attr(r, "age")
			_, ok3 := attr(r, "task_id")
			_, ok4 := attr(r, "step_id")
			if !ok1 || !ok2 || !ok3 || !ok4 {
				t.Fatalf("starvation warning lacks ids or age: %v", r)
			}
			ages[id.String()] = age.Duration()
		}
		if ages[a.ID.String()] != 20*time.Second || ages[b.ID.String()] != 15*time.Second {
			t.Errorf("logged ages %v", ages)
		}
		for _, ev := range []*Event{a, b, pollWait(t, c)} {
			c.Complete(ev.ID, Result{})
		}
		for _, g := range gots {
			wait(t, g)
		}
		if m := c.Metrics(); m.Starving != 0 || m.OldestAge != 0 || m.OldestID != uuid.Nil || m.Completed != 3 {
			t.Errorf("metrics after completion: %+v", m)
		}
	})

	t.Run("the semaphore bounds in-flight events", func(t *testing.T) {
		c := newChannel(t, Config{Capacity: 2})
		first := dispatch(context.Background(), c.Handler(), stepInput("1"))
		eventually(t, "the first event is queued", func() bool { return c.Metrics().Queued == 1 })
		second := dispatch(context.Background(), c.Handler(), stepInput("2"))
		eventually(t, "two events are queued", func() bool { return c.Metrics().Queued == 2 })
		ev1 := pollWait(t, c)

		// The Capacity+1-th waits, and gives up when its ctx ends.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		third := dispatch(ctx, c.Handler(), stepInput("3"))
		r := wait(t, third)
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("Handle over capacity = %v, want its ctx's deadline error", r.err)
		}
		if m := c.Metrics(); m.InFlight != 2 || m.Abandoned != 0 {
			t.Fatalf("a Handle that never got a slot changed the metrics: %+v", m)
		}

		fourth := dispatch(context.Background(), c.Handler(), stepInput("4"))
		notReturned(t, fourth, 30*time.Millisecond)
		if m := c.Metrics(); m.InFlight != 2 {
			t.Fatalf("in flight = %d over capacity 2", m.InFlight)
		}
		c.Complete(ev1.ID, Result{})
		wait(t, first)
		eventually(t, "the waiting Handle queues its event", func() bool { return c.Metrics().Queued == 2 })
		for range 2 {
			ev := pollWait(t, c)
			c.Complete(ev.ID, Result{})
		}
		wait(t, second)
		wait(t, fourth)
		if n := len(c.sem); n != 0 {
			t.Fatalf("%d slots still taken", n)
		}
	})

	t.Run("a handler whose ctx ends mid-wait abandons its event", func(t *testing.T) {
		c := newChannel(t, Config{Capacity: 1})
		cause := errors.New("step timeout")

		// While queued: the event can no longer be polled.
		ctx, cancel := context.WithCancelCause(context.Background())
		got := dispatch(ctx, c.Handler(), stepInput("queued"))
		eventually(t, "the event is queued", func() bool { return c.Metrics().Queued == 1 })
		cancel(cause)
		if r := wait(t, got); !errors.Is(r.err, cause) {
			t.Fatalf("Handle = %v, want its ctx's cause", r.err)
		}
		if ev, ok := c.Poll(); ok {
			t.Fatalf("an abandoned event was polled: %+v", ev)
		}

		// While pending: it can no longer be completed. The slot (the
		// only one) was released, or this dispatch would wait forever.
		ctx, cancel = context.WithCancelCause(context.Background())
		got = dispatch(ctx, c.Handler(), stepInput("pending"))
		ev := pollWait(t, c)
		cancel(cause)
		if r := wait(t, got); !errors.Is(r.err, cause) {
			t.Fatalf("Handle = %v, want its ctx's cause", r.err)
		}
		if c.Complete(ev.ID, Result{}) {
			t.Fatal("an abandoned event could be completed")
		}
		if m := c.Metrics(); m.Abandoned != 2 || m.InFlight != 0 || c.PendingCount() != 0 {
			t.Fatalf("metrics after abandonment: %+v", m)
		}

		got = dispatch(context.Background(), c.Handler(), stepInput("next"))
		ev = pollWait(t, c)
		c.Complete(ev.ID, Result{})
		if r := wait(t, got); r.err != nil {
			t.Fatal(r.err)
		}
	})

	t.Run("Close releases everyone", func(t *testing.T) {
		c := newChannel(t, Config{Capacity: 2})
		pending := dispatch(context.Background(), c.Handler(), stepInput("pending"))
		pollWait(t, c)
		queued := dispatch(context.Background(), c.Handler(), stepInput("queued"))
		eventually(t, "the event is queued", func() bool { return c.Metrics().Queued == 1 })
		waitingForSlot := dispatch(context.Background(), c.Handler(), stepInput("no room"))
		// PollWait waits only on an empty channel: use another one.
		empty := newChannel(t, Config{})
		polled := make(chan error, 1)
		go func() {
			_, err := empty.PollWait(context.Background())
			polled <- err
		}()
		notReturned(t, waitingForSlot, 20*time.Millisecond)

		c.Close()
		empty.Close()
		for name, ch := range map[string]<-chan handled{"pending": pending, "queued": queued, "waiting for a slot": waitingForSlot} {
			r := wait(t, ch)
			if !errors.Is(r.err, taskertype.ErrClosed) {
				t.Errorf("%s Handle = %v, want ErrClosed", name, r.err)
			}
			if !taskertype.FailureFromError(r.err, 1).Retryable {
				t.Errorf("%s Handle error after Close is not retryable", name)
			}
		}
		select {
		case err := <-polled:
			if !errors.Is(err, taskertype.ErrClosed) {
				t.Errorf("PollWait = %v, want ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("PollWait not released by Close")
		}
		if _, err := c.PollWait(context.Background()); !errors.Is(err, taskertype.ErrClosed) {
			t.Errorf("PollWait after Close = %v, want ErrClosed", err)
		}
		if _, ok := c.Poll(); ok {
			t.Error("Poll after Close returned an event")
		}
		if _, err := c.Handler().Handle(context.Background(), stepInput("late")); !errors.Is(err, taskertype.ErrClosed) {
			t.Errorf("Handle after Close = %v, want ErrClosed", err)
		}
		c.Close() // idempotent
		if m := c.Metrics(); m.InFlight != 0 || m.Abandoned != 2 || len(c.sem) != 0 {
			t.Errorf("metrics after Close: %+v, %d slots taken", m, len(c.sem))
		}
	})

	t.Run("config errors name the field", func(t *testing.T) {
		ok := Config{Capacity: 1, CompleteTimeout: time.Second, StarvationThreshold: time.Second}
		if _, err := New(ok); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			field string
			edit  func(*Config)
		}{
			{"Capacity", func(c *Config) { c.Capacity = 0 }},
			{"Capacity", func(c *Config) { c.Capacity = -3 }},
			{"CompleteTimeout", func(c *Config) { c.CompleteTimeout = 0 }},
			{"CompleteTimeout", func(c *Config) { c.CompleteTimeout = -time.Second }},
			{"StarvationThreshold", func(c *Config) { c.StarvationThreshold = 0 }},
		} {
			cfg := ok
			tc.edit(&cfg)
			c, err := New(cfg)
			if c != nil || !errors.Is(err, taskertype.ErrInvalid) {
				t.Fatalf("New(%+v) = %v, %v; want ErrInvalid", cfg, c, err)
			}
			if !strings.Contains(err.Error(), "Config."+tc.field) || !strings.Contains(err.Error(), "give") {
				t.Errorf("error %q does not name %s and say what to give", err, tc.field)
			}
		}
		_, err := New(Config{})
		for _, f := range []string{"Capacity", "CompleteTimeout", "StarvationThreshold"} {
			if err == nil || !strings.Contains(err.Error(), f) {
				t.Errorf("New(Config{}) = %v: does not name %s", err, f)
			}
		}
	})
}

func TestDrainGivesBackTheStepsNoPullWorkerTook(t *testing.T) {
	c := newChannel(t, Config{})
	h := c.HandlerFor("py.work")
	polled := dispatch(t.Context(), h, stepInput("polled"))
	var ev *Event
	for ev == nil {
		ev, _ = c.Poll()
	}
	queued := dispatch(t.Context(), h, stepInput("queued"))
	for c.Metrics().Queued != 1 {
		time.Sleep(time.Millisecond)
	}

	c.Drain()
	if r := wait(t, queued); !errors.Is(r.err, taskertype.ErrReleased) {
		t.Fatalf("the unpolled step: %v, want ErrReleased", r.err)
	}
	if r := wait(t, dispatch(t.Context(), h, stepInput("late"))); !errors.Is(r.err, taskertype.ErrReleased) {
		t.Fatalf("a step dispatched after Drain: %v, want ErrReleased", r.err)
	}
	notReturned(t, polled, 20*time.Millisecond) // a pull worker has it: still awaited
	if !c.Complete(ev.ID, Result{Output: json.RawMessage(`1`)}) {
		t.Fatal("completing the polled step failed")
	}
	if r := wait(t, polled); r.err != nil {
		t.Fatalf("the polled step: %v", r.err)
	}
	if m := c.Metrics(); m.InFlight != 0 || m.Abandoned != 1 || m.Completed != 1 {
		t.Fatalf("metrics %+v: want nothing in flight, 1 given back, 1 completed", m)
	}
}

// Release gives a polled event back without a verdict: Handle returns an
// error wrapping taskertype.ErrHandedBack (not a failure the worker
// counts), the event can no longer be completed, and a queued event or an
// unknown id cannot be released.
func TestReleaseHandsTheStepBackWithoutAVerdict(t *testing.T) {
	c := newChannel(t, Config{})
	res := dispatch(t.Context(), c.HandlerFor("py.a"), stepInput("a"))
	ev, err := c.PollWait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if c.Release(uuid.New(), "unknown") {
		t.Error("an unknown id was released")
	}
	if !c.Release(ev.ID, `pull worker "w" deregistered`) {
		t.Fatal("the polled event was not released")
	}
	r := wait(t, res)
	if !errors.Is(r.err, taskertype.ErrHandedBack) || !strings.Contains(r.err.Error(), "deregistered") {
		t.Fatalf("Handle returned %v, %v; want an error wrapping ErrHandedBack that says why", r.v, r.err)
	}
	if c.Complete(ev.ID, Result{}) || c.Release(ev.ID, "again") {
		t.Error("a released event was completed or released again")
	}
	if m := c.Metrics(); m.InFlight != 0 || m.Abandoned != 1 || m.Completed != 0 {
		t.Errorf("metrics %+v, want nothing in flight and the release counted as abandoned", m)
	}
}

// ReleaseQueued gives back the queued events its filter accepts, and only
// those: their Handle returns ErrHandedBack; the others stay to be polled.
func TestReleaseQueuedGivesBackOnlyTheMatchingEvents(t *testing.T) {
	c := newChannel(t, Config{})
	gone := dispatch(t.Context(), c.HandlerFor("py.gone"), stepInput("a"))
	kept := dispatch(t.Context(), c.HandlerFor("py.kept"), stepInput("b"))
	for c.Metrics().Queued != 2 {
		time.Sleep(time.Millisecond)
	}
	if n := c.ReleaseQueued(func(ev *Event) bool { return ev.Handler == "py.gone" }, "no pull worker serves py.gone any more"); n != 1 {
		t.Fatalf("released %d, want 1", n)
	}
	if r := wait(t, gone); !errors.Is(r.err, taskertype.ErrHandedBack) {
		t.Fatalf("the released step's Handle returned %v, %v; want ErrHandedBack", r.v, r.err)
	}
	ev, ok := c.Poll()
	if !ok || ev.Handler != "py.kept" {
		t.Fatalf("poll after the release: %+v, %v; want the kept event", ev, ok)
	}
	c.Complete(ev.ID, Result{Output: json.RawMessage(`1`)})
	if r := wait(t, kept); r.err != nil {
		t.Fatalf("the kept step: %v", r.err)
	}
}

// A step whose handler no worker serves any more once its event is queued
// (the last worker left between the engine's check and the queueing, so
// the ReleaseQueued of its deregistration ran too early) is given back at
// once instead of waiting out its complete timeout; one still served stays
// queued for a worker.
func TestHandlerForServedGivesBackAStepNoWorkerServesOnceQueued(t *testing.T) {
	c := newChannel(t, Config{CompleteTimeout: time.Hour})
	var servedNow atomic.Bool
	served := func(namespace, name string) bool { return servedNow.Load() }
	gone := dispatch(t.Context(), c.HandlerForServed("py.a", served), stepInput("a"))
	if r := wait(t, gone); !errors.Is(r.err, taskertype.ErrHandedBack) {
		t.Fatalf("Handle returned %v, %v; want ErrHandedBack", r.v, r.err)
	}
	if m := c.Metrics(); m.Queued != 0 || m.Abandoned != 1 {
		t.Fatalf("metrics %+v: want nothing queued and the event given back", m)
	}
	servedNow.Store(true)
	kept := dispatch(t.Context(), c.HandlerForServed("py.a", served), stepInput("b"))
	ev, err := c.PollWait(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c.Complete(ev.ID, Result{Output: json.RawMessage(`1`)})
	if r := wait(t, kept); r.err != nil {
		t.Fatalf("the served step: %v", r.err)
	}
}
