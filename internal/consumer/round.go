package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/tasker-go/tasker/queue"
)

// ErrPoison marks a message that can never be processed (malformed, or
// naming what does not exist): it is set aside instead of being delivered
// again and again.
var ErrPoison = errors.New("unprocessable message")

// BatchError is one message's failure inside a round's shared transaction.
type BatchError struct{ Err error }

func (e *BatchError) Error() string { return e.Err.Error() }
func (e *BatchError) Unwrap() error { return e.Err }

// Failed wraps the failure of message m inside a round's shared
// transaction, naming the message.
func Failed(m *queue.Message, err error) error {
	return &BatchError{Err: fmt.Errorf("message %d: %w", m.ID, err)}
}

// Round claims and handles up to max messages of the queue name. When the
// queue shares the store's database (shared), inTx claims and handles them
// all in one transaction. If that transaction fails after it claimed
// messages (one of them failed, or the commit did), it rolled back with its
// claims, and oneByOne claims them again through the queue and handles each
// in a transaction of its own: one bad message cannot fail every batch it
// is in. Both return how many messages they claimed; inTx returns it even
// when it fails.
func Round(ctx context.Context, log *slog.Logger, name string, shared bool, inTx, oneByOne func() (int, error)) (int, error) {
	if shared {
		n, err := inTx()
		var be *BatchError
		switch {
		case err == nil:
			return n, nil
		case n == 0 || ctx.Err() != nil:
			return 0, err // rolled back: nothing was claimed
		case errors.As(err, &be):
			log.Debug("a message failed in a batch; handling the messages one by one", "queue", name, "error", err)
		default:
			log.Warn("a batch failed; handling its messages one by one", "queue", name, "error", err)
		}
	}
	return oneByOne()
}
