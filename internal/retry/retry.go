// Package retry decides whether a failed step runs again and after how long.
package retry

import (
	"time"

	"github.com/tasker-go/tasker/taskertype"
)

// Decision is the verdict on a failed attempt.
type Decision struct {
	Retry bool
	// Delay before the next attempt; meaningful only when Retry.
	Delay time.Duration
	// Reason explains a refusal in words, for the log and the step's record.
	Reason string
}

// Decide applies a step's policy to its failed attempt number attempt (1-based).
// rnd returns a uniform value in [0, 1) and spreads the delay by the policy's
// jitter; pass nil for no jitter.
func Decide(p taskertype.RetryPolicy, f *taskertype.StepFailure, attempt int, rnd func() float64) Decision {
	switch {
	case !p.Retryable:
		return Decision{Reason: "the step's retry policy is not retryable"}
	case f != nil && !f.Retryable:
		return Decision{Reason: "the error is permanent"}
	case attempt >= p.MaxAttempts:
		return Decision{Reason: "no attempts left"}
	}
	if f != nil && f.RetryAfter > 0 {
		return Decision{Retry: true, Delay: f.RetryAfter}
	}
	return Decision{Retry: true, Delay: Delay(p, attempt, rnd)}
}

// Delay is the policy's wait after failed attempt number attempt (1-based),
// jittered with rnd (nil: none) and bounded by the cap.
func Delay(p taskertype.RetryPolicy, attempt int, rnd func() float64) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	var d time.Duration
	switch p.Backoff {
	case taskertype.BackoffNone:
		return 0
	case taskertype.BackoffLinear:
		d = mulCapped(p.Base, int64(attempt), p.Cap)
	case taskertype.BackoffFibonacci:
		a, b := int64(1), int64(1)
		for i := 1; i < attempt && b < 1<<40; i++ {
			a, b = b, a+b
		}
		d = mulCapped(p.Base, a, p.Cap)
	default: // exponential
		shift := min(attempt-1, 40)
		d = mulCapped(p.Base, int64(1)<<shift, p.Cap)
	}
	if rnd != nil && p.Jitter > 0 {
		spread := 1 + p.Jitter*(2*rnd()-1)
		d = time.Duration(float64(d) * spread)
	}
	if p.Cap > 0 && d > p.Cap {
		d = p.Cap
	}
	return max(d, 0)
}

// mulCapped returns base·n, saturating at limit (or at the largest duration
// when limit is zero) instead of overflowing.
func mulCapped(base time.Duration, n int64, limit time.Duration) time.Duration {
	if limit <= 0 {
		limit = time.Duration(1<<63 - 1)
	}
	if base <= 0 {
		return 0
	}
	if n > int64(limit/base) {
		return limit
	}
	return base * time.Duration(n)
}
