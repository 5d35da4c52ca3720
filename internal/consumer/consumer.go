// Package consumer runs the claim loop shared by orchestration and workers:
// claim and handle a round of messages; when a round comes back short, wait
// for a wake-up from the queue, with a slow poll as the fallback for lost
// signals and for delayed messages coming due.
package consumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/tasker-go/tasker/queue"
)

// Loop drives rounds of work on one queue.
type Loop struct {
	// Queue and Name say where wake-ups come from.
	Queue queue.Queue
	Name  string
	// Batch is the most messages one round may claim.
	Batch int
	// IdlePoll is the fallback poll interval when no wake-up arrives.
	IdlePoll time.Duration
	Logger   *slog.Logger
	// Acquire, if set, blocks until there is room for at least one message
	// and returns how many (at most max) the round may claim. Release gives
	// back the room the round did not use.
	Acquire func(ctx context.Context, max int) (int, error)
	Release func(n int)
	// Round claims at most max messages, handles them (or hands them on)
	// and returns how many it claimed.
	Round func(ctx context.Context, max int) (int, error)
}

// Run drives rounds until ctx ends. A round that fills its batch is followed
// by another at once; a short one means the queue is drained, so the loop
// waits. The subscription is taken before the first round, so a message sent
// after a round looked is always signalled.
func (l *Loop) Run(ctx context.Context) {
	wake, cancel := l.Queue.Subscribe(l.Name)
	defer cancel()
	poll := time.NewTimer(l.IdlePoll)
	defer poll.Stop()
	errDelay := time.Duration(0)
	for ctx.Err() == nil {
		n := l.Batch
		if l.Acquire != nil {
			var err error
			if n, err = l.Acquire(ctx, l.Batch); err != nil {
				return
			}
		}
		got, err := l.Round(ctx, n)
		if l.Release != nil && got < n {
			l.Release(n - got)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			errDelay = min(max(2*errDelay, 50*time.Millisecond), 5*time.Second)
			l.Logger.Warn("claim failed; backing off", "queue", l.Name, "backoff", errDelay, "error", err)
			sleep(ctx, errDelay)
			continue
		}
		errDelay = 0
		if got == n {
			continue
		}
		poll.Reset(l.IdlePoll) // Go ≥1.23 timers: no drain needed
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-poll.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
