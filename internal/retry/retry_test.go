package retry

import (
	"testing"
	"time"

	"github.com/tasker-go/tasker/taskertype"
)

func policy(b taskertype.Backoff) taskertype.RetryPolicy {
	return taskertype.RetryPolicy{Retryable: true, MaxAttempts: 10, Backoff: b, Base: 100 * time.Millisecond, Cap: 2 * time.Second}
}

func TestDelayGrowsByPolicyAndStopsAtCap(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		backoff taskertype.Backoff
		want    []time.Duration // attempts 1..n
	}{
		{taskertype.BackoffExponential, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms}},
		{taskertype.BackoffLinear, []time.Duration{100 * ms, 200 * ms, 300 * ms, 400 * ms}},
		{taskertype.BackoffFibonacci, []time.Duration{100 * ms, 100 * ms, 200 * ms, 300 * ms, 500 * ms, 800 * ms, 1300 * ms, 2000 * ms}},
		{taskertype.BackoffNone, []time.Duration{0, 0, 0}},
	}
	for _, c := range cases {
		t.Run(string(c.backoff), func(t *testing.T) {
			for i, want := range c.want {
				if got := Delay(policy(c.backoff), i+1, nil); got != want {
					t.Errorf("attempt %d: delay %v, want %v", i+1, got, want)
				}
			}
		})
	}
}

func TestDelayNeverOverflowsOnHugeAttemptCounts(t *testing.T) {
	p := policy(taskertype.BackoffExponential)
	p.Cap = 0
	if d := Delay(p, 10_000, nil); d <= 0 {
		t.Fatalf("delay %v, want a large positive duration", d)
	}
	p.Backoff = taskertype.BackoffFibonacci
	if d := Delay(p, 10_000, nil); d <= 0 {
		t.Fatalf("fibonacci delay %v, want a large positive duration", d)
	}
}

func TestJitterSpreadsWithinTheFraction(t *testing.T) {
	p := policy(taskertype.BackoffLinear)
	p.Jitter = 0.5
	if got := Delay(p, 2, func() float64 { return 0 }); got != 100*time.Millisecond {
		t.Errorf("lowest jitter: %v, want 100ms", got)
	}
	if got := Delay(p, 2, func() float64 { return 0.999999 }); got < 299*time.Millisecond || got > 300*time.Millisecond {
		t.Errorf("highest jitter: %v, want just under 300ms", got)
	}
	p.Cap = 250 * time.Millisecond
	if got := Delay(p, 2, func() float64 { return 0.999 }); got != 250*time.Millisecond {
		t.Errorf("jittered delay above cap: %v, want the cap", got)
	}
}

func TestDecide(t *testing.T) {
	retryable := &taskertype.StepFailure{Retryable: true}
	cases := []struct {
		name    string
		policy  taskertype.RetryPolicy
		failure *taskertype.StepFailure
		attempt int
		retry   bool
		delay   time.Duration
	}{
		{"a retryable error with attempts left is retried after the backoff", policy(taskertype.BackoffLinear), retryable, 2, true, 200 * time.Millisecond},
		{"a permanent error is not retried", policy(taskertype.BackoffLinear), &taskertype.StepFailure{}, 1, false, 0},
		{"the last attempt is not retried", policy(taskertype.BackoffLinear), retryable, 10, false, 0},
		{"a non-retryable policy wins over a retryable error", taskertype.RetryPolicy{MaxAttempts: 5}, retryable, 1, false, 0},
		{"retry-after wins over the backoff", policy(taskertype.BackoffExponential), &taskertype.StepFailure{Retryable: true, RetryAfter: 7 * time.Second}, 1, true, 7 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.policy, c.failure, c.attempt, nil)
			if d.Retry != c.retry || d.Delay != c.delay {
				t.Fatalf("Decide = %+v, want retry=%v delay=%v", d, c.retry, c.delay)
			}
			if !d.Retry && d.Reason == "" {
				t.Fatal("a refusal must give a reason")
			}
		})
	}
}
