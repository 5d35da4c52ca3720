package tasker

import (
	"context"
	"fmt"
	"time"

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

// RequeueDeadLetter sends the dead letter id back to its queue as a new
// message, visible at once, and deletes the dead letter, in one
// transaction. The orchestrator that claims it processes it as it would
// have (processing is idempotent: a result or a wake-up whose step or task
// moved on meanwhile is acknowledged). It returns the new message's id. An
// unknown id is an error matching taskertype.ErrNotFound.
//
// This is what an operator does with a dead letter once its cause is
// fixed: a set-aside result or wake-up otherwise leaves its task waiting
// for it for ever.
func (e *Engine) RequeueDeadLetter(ctx context.Context, id int64) (int64, error) {
	msg, err := e.queue.DeadLetterRequeue(ctx, &queue.DeadLetterRequeueParams{ID: id})
	if err != nil {
		return 0, fmt.Errorf("tasker: requeue dead letter: %w", err)
	}
	e.log.Info("dead letter requeued", "dead_letter", id, "message_id", msg)
	return msg, nil
}

// PurgeDeadLetters deletes the dead letters set aside before before (of
// one queue, or all when queueName is "") and returns how many.
func (e *Engine) PurgeDeadLetters(ctx context.Context, before time.Time, queueName string) (int64, error) {
	n, err := e.queue.DeadLetterPurge(ctx, &queue.DeadLetterPurgeParams{Before: before, Queue: queueName})
	if err != nil {
		return 0, fmt.Errorf("tasker: purge dead letters: %w", err)
	}
	return n, nil
}
