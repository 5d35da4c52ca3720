package tasker

import (
	"context"
	"fmt"

	"github.com/tasker-go/tasker/queue"
)

type (
	// DeadLetter is a message of the orchestration queues set aside because
	// processing it kept failing (Config.MaxDeliveries times) or could never
	// succeed: its queue, body, deliveries, the last error and when.
	DeadLetter = queue.DeadLetter
	// DeadLetterListParams filters DeadLetters: one queue or all, and how
	// many (zero: 100).
	DeadLetterListParams = queue.DeadLetterListParams
)

// DeadLetters returns the messages set aside as dead letters, newest first,
// by every process of the database.
func (e *Engine) DeadLetters(ctx context.Context, p DeadLetterListParams) ([]*DeadLetter, error) {
	ds, err := e.queue.DeadLetterList(ctx, &p)
	if err != nil {
		return nil, fmt.Errorf("tasker: dead letters: %w", err)
	}
	return ds, nil
}
