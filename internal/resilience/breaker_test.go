package resilience

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/taskertype"
)

var start = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

var errDown = errors.New("dial tcp 10.0.0.1:5432: connection refused")

func newBreaker(t *testing.T, cfg BreakerConfig) (*Breaker, *testclock.Clock) {
	t.Helper()
	clock := testclock.New(start)
	if cfg.Clock == nil {
		cfg.Clock = clock
	}
	b, err := NewBreaker("store", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, clock
}

func fail(b *Breaker, n int) {
	for range n {
		_ = b.Do(func() error { return errDown })
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name  string
		cfg   BreakerConfig
		field string
	}{
		{"store", BreakerConfig{FailureThreshold: -1}, "FailureThreshold"},
		{"store", BreakerConfig{OpenFor: -time.Second}, "OpenFor"},
		{"store", BreakerConfig{HalfOpenProbes: -2}, "HalfOpenProbes"},
		{"", BreakerConfig{}, "name"},
	}
	for _, c := range cases {
		_, err := NewBreaker(c.name, c.cfg)
		if !errors.Is(err, taskertype.ErrInvalid) {
			t.Fatalf("%s: err = %v, want ErrInvalid", c.field, err)
		}
		if !strings.Contains(err.Error(), c.field) || !strings.Contains(err.Error(), "give") {
			t.Errorf("%s: message %q should name the field and say what to give", c.field, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	b, clock := newBreaker(t, BreakerConfig{})
	if b.threshold != DefaultFailureThreshold || b.openFor != DefaultOpenFor || b.probes != DefaultHalfOpenProbes {
		t.Fatalf("defaults: threshold %d openFor %s probes %d", b.threshold, b.openFor, b.probes)
	}
	fail(b, DefaultFailureThreshold-1)
	if s := b.State(); s != StateClosed {
		t.Fatalf("after %d failures: %s, want closed", DefaultFailureThreshold-1, s)
	}
	fail(b, 1)
	if s := b.State(); s != StateOpen {
		t.Fatalf("after %d failures: %s, want open", DefaultFailureThreshold, s)
	}
	clock.Advance(DefaultOpenFor)
	if s := b.State(); s != StateHalfOpen {
		t.Fatalf("after OpenFor: %s, want half_open", s)
	}
}

func TestSuccessResetsTheCount(t *testing.T) {
	b, _ := newBreaker(t, BreakerConfig{FailureThreshold: 3})
	fail(b, 2)
	if got := b.Stats().ConsecutiveFailures; got != 2 {
		t.Fatalf("ConsecutiveFailures = %d, want 2", got)
	}
	_ = b.Do(func() error { return nil })
	if got := b.Stats().ConsecutiveFailures; got != 0 {
		t.Fatalf("after a success ConsecutiveFailures = %d, want 0", got)
	}
	fail(b, 2)
	if s := b.State(); s != StateClosed {
		t.Fatalf("2+2 failures split by a success opened it: %s", s)
	}
}

func TestAnswersAreNotFailures(t *testing.T) {
	b, _ := newBreaker(t, BreakerConfig{FailureThreshold: 1})
	answers := []error{
		fmt.Errorf("task x: %w", taskertype.ErrNotFound),
		fmt.Errorf("%w: bad", taskertype.ErrInvalid),
		&taskertype.StaleStateError{Kind: "task", ID: "x", Expected: "pending", Actual: "running"},
		fmt.Errorf("x: %w", taskertype.ErrIllegalTransition),
		fmt.Errorf("claim: %w", errors.ErrUnsupported),
		context.Canceled,
		fmt.Errorf("wrapped: %w", context.Canceled),
	}
	for _, e := range answers {
		if got := b.Do(func() error { return e }); got != e {
			t.Fatalf("Do returned %v, want the fn's error %v", got, e)
		}
		if s := b.State(); s != StateClosed {
			t.Fatalf("%v opened the breaker", e)
		}
	}
	if err := b.Do(func() error { return context.DeadlineExceeded }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	if s := b.State(); s != StateOpen {
		t.Fatalf("DeadlineExceeded is a failure; state %s", s)
	}
}

func TestCanceledDoesNotResetTheCount(t *testing.T) {
	b, _ := newBreaker(t, BreakerConfig{FailureThreshold: 2})
	fail(b, 1)
	_ = b.Do(func() error { return context.Canceled })
	fail(b, 1)
	if s := b.State(); s != StateOpen {
		t.Fatalf("a cancelled call between two failures reset the count: %s", s)
	}
}

func TestCustomClassifier(t *testing.T) {
	b, _ := newBreaker(t, BreakerConfig{FailureThreshold: 1, IsFailure: func(err error) bool {
		return errors.Is(err, taskertype.ErrNotFound)
	}})
	fail(b, 3)
	if s := b.State(); s != StateClosed {
		t.Fatalf("classifier says errDown is not a failure; state %s", s)
	}
	_ = b.Do(func() error { return taskertype.ErrNotFound })
	if s := b.State(); s != StateOpen {
		t.Fatalf("state %s, want open", s)
	}
}

func TestOpenRefusesWithAnExplainingError(t *testing.T) {
	b, clock := newBreaker(t, BreakerConfig{FailureThreshold: 2, OpenFor: 10 * time.Second})
	fail(b, 2)
	clock.Advance(3 * time.Second)
	called := false
	err := b.Do(func() error { called = true; return nil })
	if called {
		t.Fatal("an open breaker ran fn")
	}
	if !errors.Is(err, ErrOpen) {
		t.Fatalf("err = %v, want ErrOpen", err)
	}
	var oe *OpenError
	if !errors.As(err, &oe) {
		t.Fatalf("err %T is not an *OpenError", err)
	}
	if oe.Name != "store" || !oe.Since.Equal(start) || !oe.RetryAt.Equal(start.Add(10*time.Second)) || oe.Failures != 2 {
		t.Fatalf("OpenError = %+v", oe)
	}
	msg := err.Error()
	for _, want := range []string{"store", "open since 12:00:00.000", "2 consecutive failures", "connection refused", "12:00:10.000", "in 7s"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("Allow = %v", err)
	}
	st := b.Stats()
	if st.State != StateOpen || st.Opened != 1 || st.Rejected != 2 || st.ConsecutiveFailures != 2 ||
		!st.OpenedAt.Equal(start) || st.LastFailure != errDown.Error() || st.Name != "store" {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestHalfOpenTrialClosesOrReopens(t *testing.T) {
	b, clock := newBreaker(t, BreakerConfig{FailureThreshold: 1, OpenFor: time.Second})
	fail(b, 1)
	clock.Advance(time.Second)
	// The trial fails: open again, for another OpenFor from now.
	fail(b, 1)
	if st := b.Stats(); st.State != StateOpen || st.Opened != 2 || !st.OpenedAt.Equal(start.Add(time.Second)) {
		t.Fatalf("after a failed trial: %+v", st)
	}
	clock.Advance(time.Second - time.Millisecond)
	if err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("before OpenFor: Allow = %v", err)
	}
	clock.Advance(time.Millisecond)
	// Exactly one trial call at a time.
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- b.Do(func() error { close(entered); <-release; return nil })
	}()
	<-entered
	err := b.Do(func() error { return nil })
	var oe *OpenError
	if !errors.As(err, &oe) || oe.State != StateHalfOpen || !strings.Contains(err.Error(), "half-open") {
		t.Fatalf("second call while the trial is in flight: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.State != StateClosed || st.ConsecutiveFailures != 0 {
		t.Fatalf("after a successful trial: %+v", st)
	}
}

func TestSeveralProbes(t *testing.T) {
	b, clock := newBreaker(t, BreakerConfig{FailureThreshold: 1, OpenFor: time.Second, HalfOpenProbes: 2})
	fail(b, 1)
	clock.Advance(time.Second)
	for i := range 2 {
		if err := b.Allow(); err != nil {
			t.Fatalf("trial %d refused: %v", i+1, err)
		}
	}
	if err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("third call while two trials are in flight: %v", err)
	}
	b.Record(nil)
	if s := b.State(); s != StateHalfOpen {
		t.Fatalf("after one of two successes: %s", s)
	}
	b.Record(nil)
	if s := b.State(); s != StateClosed {
		t.Fatalf("after two successes: %s", s)
	}
}

func TestLostTrialIsGivenUpAfterOpenFor(t *testing.T) {
	b, clock := newBreaker(t, BreakerConfig{FailureThreshold: 1, OpenFor: time.Second})
	fail(b, 1)
	clock.Advance(time.Second)
	if err := b.Allow(); err != nil { // never recorded
		t.Fatal(err)
	}
	if err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("Allow = %v, want refusal while the trial is in flight", err)
	}
	clock.Advance(time.Second)
	if err := b.Allow(); err != nil {
		t.Fatalf("after OpenFor without a result, a new trial should go: %v", err)
	}
}

func TestStaleResultIsIgnored(t *testing.T) {
	b, clock := newBreaker(t, BreakerConfig{FailureThreshold: 1, OpenFor: time.Second})
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() { // admitted while closed, ends after the breaker opened and went half-open
		done <- b.Do(func() error { close(entered); <-release; return nil })
	}()
	<-entered
	fail(b, 1)
	clock.Advance(time.Second)
	if s := b.State(); s != StateHalfOpen {
		t.Fatalf("state %s", s)
	}
	close(release)
	<-done
	if s := b.State(); s != StateHalfOpen {
		t.Fatalf("a success from before the breaker opened closed it: %s", s)
	}
}

func TestPanicIsNeutralAndReleasesTheTrial(t *testing.T) {
	b, clock := newBreaker(t, BreakerConfig{FailureThreshold: 1, OpenFor: time.Second})
	fail(b, 1)
	clock.Advance(time.Second)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not go on")
			}
		}()
		_ = b.Do(func() error { panic("boom") })
	}()
	if s := b.State(); s != StateHalfOpen {
		t.Fatalf("after a panicking trial: %s", s)
	}
	if err := b.Do(func() error { return nil }); err != nil {
		t.Fatalf("the panicking trial kept its slot: %v", err)
	}
	if s := b.State(); s != StateClosed {
		t.Fatalf("state %s", s)
	}
}

func TestTransitionsAreLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b, clock := newBreaker(t, BreakerConfig{FailureThreshold: 1, OpenFor: time.Second, Logger: log})
	fail(b, 1)
	clock.Advance(time.Second)
	fail(b, 1)
	clock.Advance(time.Second)
	_ = b.Do(func() error { return nil })
	out := buf.String()
	for _, want := range []string{
		"level=WARN msg=\"circuit breaker opened", "level=INFO msg=\"circuit breaker half-open",
		"level=WARN msg=\"circuit breaker reopened", "level=INFO msg=\"circuit breaker closed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "dependency=store"); n != 5 {
		t.Errorf("%d lines name the dependency, want 5:\n%s", n, out)
	}
}

func TestLastFailureIsBounded(t *testing.T) {
	b, _ := newBreaker(t, BreakerConfig{})
	_ = b.Do(func() error { return errors.New(strings.Repeat("é", 1000)) })
	if got := b.Stats().LastFailure; len(got) > maxFailureLen+len("…") || !strings.HasSuffix(got, "…") {
		t.Fatalf("LastFailure has %d bytes", len(got))
	}
}

// TestConcurrentCalls runs the state machine under the race detector.
func TestConcurrentCalls(t *testing.T) {
	b, clock := newBreaker(t, BreakerConfig{FailureThreshold: 3, OpenFor: time.Millisecond, HalfOpenProbes: 2})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 2000 {
				_ = b.Do(func() error {
					if (i+g)%7 == 0 {
						return errDown
					}
					return nil
				})
				if i%100 == 0 {
					clock.Advance(time.Millisecond)
				}
				_ = b.State()
			}
		})
	}
	wg.Wait()
	st := b.Stats()
	if st.Opened == 0 || st.Rejected == 0 {
		t.Logf("stats %+v", st)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inFlight < 0 || b.inFlight > b.probes {
		t.Fatalf("inFlight = %d", b.inFlight)
	}
}

func TestACallersExpiredDeadlineDoesNotOpenTheBreaker(t *testing.T) {
	b, err := NewBreaker("store", BreakerConfig{FailureThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	for range 5 {
		if err := b.doCtx(ctx, func() error { return ctx.Err() }); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("doCtx returned %v, want the caller's deadline error unwrapped", err)
		}
	}
	if s := b.State(); s != StateClosed {
		t.Fatalf("five calls whose caller gave up opened the breaker: %s", s)
	}
	// A deadline inside the call, the caller still waiting: a failure.
	for range 2 {
		b.doCtx(context.Background(), func() error { return context.DeadlineExceeded })
	}
	if s := b.State(); s != StateOpen {
		t.Fatalf("backend timeouts did not open the breaker: %s", s)
	}
}
