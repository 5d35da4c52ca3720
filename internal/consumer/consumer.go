// Package consumer runs the claim loop shared by orchestration and workers:
// claim a batch, hand it over, and when the queue is empty wait for a wake-up
// from the provider, with a slow poll as the fallback for lost signals and
// for delayed messages coming due.
package consumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/tasker-go/tasker/queue"
)

// Loop claims messages from one queue.
type Loop struct {
	Queue queue.Queue
	Name  string
	// Batch is the most messages one claim returns.
	Batch int
	// VisibilityTimeout hides claimed messages while they are handled.
	VisibilityTimeout time.Duration
	// IdlePoll is the fallback poll interval when no wake-up arrives.
	IdlePoll time.Duration
	Logger   *slog.Logger
	// Acquire, if set, blocks until there is room for at least one message
	// and returns how many (at most max) may be claimed. Release gives back
	// the room a claim did not use.
	Acquire func(ctx context.Context, max int) (int, error)
	Release func(n int)
	// Handle takes a claimed batch; it owns acknowledging the messages.
	Handle func(ctx context.Context, msgs []*queue.Message)
}

// Run claims until ctx ends.
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
		msgs, err := l.Queue.MessageClaim(ctx, &queue.ClaimParams{Queue: l.Name, Max: n, VisibilityTimeout: l.VisibilityTimeout})
		if l.Release != nil && len(msgs) < n {
			l.Release(n - len(msgs))
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
		if len(msgs) > 0 {
			l.Handle(ctx, msgs)
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
