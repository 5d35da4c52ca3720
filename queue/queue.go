// Package queue defines the messaging seam of Tasker: named queues whose
// messages are claimed with a visibility timeout, acknowledged, released with
// a delay or archived, and whose consumers are woken when work arrives.
//
// Every provider (queue/sqlite, and later PostgreSQL and RabbitMQ) passes the
// conformance suite in queue/queuetest unchanged.
package queue

import (
	"context"
	"time"
)

// Queue names used by the engine.
const (
	// ResultsQueue carries step results from workers to orchestration.
	ResultsQueue = "orchestration_results"
	// TasksQueue carries task-level commands to orchestration, such as a
	// retry falling due.
	TasksQueue = "orchestration_tasks"
	// StepsStoppedChannel is no queue: its wake-ups (store.Tx.Notify) tell
	// the workers of every process that running steps were cancelled,
	// resolved or completed by hand, so they stop those handlers at once.
	StepsStoppedChannel = "steps_stopped"
)

// StepQueue names the queue that carries the steps of a namespace to workers.
func StepQueue(namespace string) string { return "worker_" + namespace }

// Message is a claimed message.
type Message struct {
	ID    int64
	Queue string
	Body  []byte
	// ReadCount counts the claims of this message, this one included: more
	// than 1 means an earlier claim expired or was released.
	ReadCount  int
	EnqueuedAt time.Time
	// VisibleAt is when this claim expires and the message may be claimed again.
	VisibleAt time.Time
	// Priority is the message's SendParams.Priority.
	Priority int
	// Handle is the provider's own name for the delivery it holds, unique
	// in the process, or 0 when the provider needs none: a provider whose
	// message ids may collide across processes (RabbitMQ) finds the
	// delivery of a receipt by it, never by the message id.
	Handle int64
}

// SendParams describes one message to send.
type SendParams struct {
	Queue string
	Body  []byte
	// Delay keeps the message invisible for this long after it is sent.
	Delay time.Duration
	// Priority orders claims: higher is claimed first, and waiting ages a
	// message, so that low priority never starves. A message's sort key is
	// set when it is sent: the time it becomes visible less Priority times
	// the provider's aging step (DefaultPriorityAging unless configured),
	// that offset bounded by MaxPriorityBoost either way. A message of
	// priority p is claimed before one of priority q < p that became
	// visible less than (p-q) steps earlier (at most MaxPriorityBoost), and
	// after one that has waited longer. A released or expired message keeps
	// its key. A 32-bit integer, as tasker-core's task priority; default 0.
	Priority int
	// Since, when set and earlier than the time the message becomes
	// visible, is when its waiting counts from in claim order: its sort
	// key is Since less its priority's offset, but never more than
	// MaxPriorityBoost before its visibility (SortKey), as without it. The
	// engine sends a step's message with its task's creation time, so that
	// among steps of the same priority those of older tasks are claimed
	// first: a backlog finishes the tasks it has begun before it begins
	// more, and a priority gap weighs against a task's age as it does
	// against any waiting (docs/identity.md, "Priority and aging"). Zero:
	// the visibility time.
	Since time.Time
}

// SortKey is the sort key, in Unix microseconds, of a message that becomes
// visible at visible (Unix microseconds), sent with SendParams.Since since
// and SendParams.Priority priority, with aging step aging: the earlier of
// visible and since, less PriorityOffset, and no more than MaxPriorityBoost
// before visible. Providers that compute the key in their database follow
// the same rule.
func SortKey(visible int64, since time.Time, priority int, aging time.Duration) int64 {
	at := visible
	if !since.IsZero() {
		at = min(at, since.UnixMicro())
	}
	return max(at-PriorityOffset(priority, aging), visible-MaxPriorityBoost.Microseconds())
}

// DefaultPriorityAging is the waiting one point of SendParams.Priority is
// worth, unless a provider is configured otherwise: a message of priority
// 3 goes ahead of priority-0 messages that became visible up to 30s before
// it, and behind those that have waited longer.
const DefaultPriorityAging = 10 * time.Second

// MinPriorityAging and MaxPriorityAging bound a provider's aging step.
const (
	MinPriorityAging = time.Millisecond
	MaxPriorityAging = time.Hour
)

// MaxPriorityBoost bounds the waiting any priority gap is worth: a message
// never waits behind higher-priority messages that became visible more than
// a day after it, so nothing starves however far apart priorities are.
const MaxPriorityBoost = 24 * time.Hour

// PriorityOffset is how much earlier than its visibility a message of
// priority prio counts as visible in claim order, with aging step aging, in
// microseconds: prio steps, at most MaxPriorityBoost either way. Providers
// store the visibility time less it (the message's sort key) when the
// message is sent and claim in the order of that key.
func PriorityOffset(prio int, aging time.Duration) int64 {
	bound := MaxPriorityBoost.Microseconds()
	o := int64(prio) * aging.Microseconds() // |prio| < 2^31, aging <= 1h: no overflow
	return min(max(o, -bound), bound)
}

// CheckPriorityAging checks a provider's configured aging step: zero
// (DefaultPriorityAging), or from MinPriorityAging to MaxPriorityAging. Its
// errors wrap taskertype.ErrInvalid.
func CheckPriorityAging(aging time.Duration) error {
	if aging != 0 && (aging < MinPriorityAging || aging > MaxPriorityAging) {
		return invalid("config", "priority aging %v: want %v to %v (0 means %v)", aging, MinPriorityAging, MaxPriorityAging, DefaultPriorityAging)
	}
	return nil
}

// ClaimParams asks for up to Max visible messages of Queue, in claim order:
// by sort key (SortKey), the one that has waited longest first when
// priorities are equal (waiting counts from the visibility, or from
// SendParams.Since when that is earlier).
type ClaimParams struct {
	Queue string
	// Max is the most messages to return; at least 1.
	Max int
	// VisibilityTimeout hides the claimed messages from other claims for
	// this long; if not acknowledged by then, they are delivered again.
	VisibilityTimeout time.Duration
}

// Receipt names one claim of a message. Acknowledging, releasing, extending
// and archiving take the receipt of the claim: once that claim has expired
// and the message was claimed again, the old receipt matches nothing, so a
// worker that lost its claim cannot disturb the message's new holder.
type Receipt struct {
	ID        int64
	ReadCount int
	// Handle is the claimed message's Handle: a provider that sets it
	// finds the claim by it; a receipt made by hand without it is found
	// by ID.
	Handle int64
}

// Receipt returns the receipt of this claim of m.
func (m *Message) Receipt() Receipt {
	return Receipt{ID: m.ID, ReadCount: m.ReadCount, Handle: m.Handle}
}

// AckParams acknowledges claimed messages: they are deleted. A receipt that
// matches no message (acknowledged already, or claimed again since) is
// skipped without an error, so an acknowledgement may be repeated.
type AckParams struct {
	Queue    string
	Receipts []Receipt
}

// NackParams gives a claimed message back, to be claimed again after Delay.
// A receipt that matches no message is an error wrapping ErrNotFound.
type NackParams struct {
	Queue   string
	Receipt Receipt
	Delay   time.Duration
}

// ExtendParams extends the claim of a message whose work takes longer than
// the visibility timeout it was claimed with. A receipt that matches no
// message is an error wrapping ErrNotFound: the claim was lost.
type ExtendParams struct {
	Queue             string
	Receipt           Receipt
	VisibilityTimeout time.Duration // from now
}

// ArchiveParams moves claimed messages to the queue's archive, where they are
// kept for inspection instead of deleted. Receipts that match no message are
// skipped.
type ArchiveParams struct {
	Queue    string
	Receipts []Receipt
}

// DeadLetterParams sets a claimed message aside for good: it leaves its
// queue for the dead letters, with the reason it could not be processed, and
// is never delivered again. A receipt that matches no message (acknowledged,
// or claimed again since) is an error wrapping ErrNotFound.
type DeadLetterParams struct {
	Queue   string
	Receipt Receipt
	// Reason says why the message was set aside: the last error met while
	// processing it. Required.
	Reason string
}

// DeadLetter is a message set aside by MessageDeadLetter.
type DeadLetter struct {
	ID        int64 // the dead letter's own id, in the order they were set aside
	Queue     string
	MessageID int64 // the message's id in its queue
	Body      []byte
	// ReadCount is the deliveries of the message, the last one included.
	ReadCount  int
	EnqueuedAt time.Time
	DeadAt     time.Time // when it was set aside
	Reason     string
}

// DeadLetterListParams filters DeadLetterList.
type DeadLetterListParams struct {
	// Queue keeps the dead letters of one queue; empty keeps all.
	Queue string
	// Limit bounds the answer; zero means 100.
	Limit int
}

// DeadLetterRequeueParams names a dead letter to send back to its queue.
type DeadLetterRequeueParams struct {
	ID int64 // DeadLetter.ID
}

// DeadLetterPurgeParams deletes dead letters set aside before a time.
type DeadLetterPurgeParams struct {
	// Before: the dead letters whose DeadAt is before it are deleted.
	// Required.
	Before time.Time
	// Queue keeps the purge to one queue; empty purges every queue's.
	Queue string
}

// Stats counts the messages of a queue.
type Stats struct {
	Queue     string
	Visible   int64 // ready to be claimed
	Claimed   int64 // claimed and not yet acknowledged
	Delayed   int64 // sent with a delay or released with one, not yet visible
	Archived  int64
	OldestAge time.Duration // age of the oldest message not archived; 0 if none
}

// Queue is a set of named message queues.
//
// Wake-ups: Subscribe returns a channel that receives a value after messages
// become visible on the queue (sent, or released without delay). Signals
// coalesce and may be spurious, so a consumer claims until a claim comes back
// empty after each one. A provider that cannot push says so in Capabilities
// and consumers fall back to polling.
type Queue interface {
	// QueueEnsure creates the queue if it does not exist. Sending to a queue
	// that was never ensured is an error wrapping taskertype.ErrNotFound.
	QueueEnsure(ctx context.Context, name string) error
	MessageSend(ctx context.Context, p *SendParams) (int64, error)
	MessageClaim(ctx context.Context, p *ClaimParams) ([]*Message, error)
	MessageAck(ctx context.Context, p *AckParams) error
	MessageNack(ctx context.Context, p *NackParams) error
	MessageExtend(ctx context.Context, p *ExtendParams) error
	MessageArchive(ctx context.Context, p *ArchiveParams) error
	// MessageDeadLetter moves a claimed message to the dead letters.
	MessageDeadLetter(ctx context.Context, p *DeadLetterParams) error
	// DeadLetterList returns dead letters, newest first.
	DeadLetterList(ctx context.Context, p *DeadLetterListParams) ([]*DeadLetter, error)
	// DeadLetterRequeue sends a dead letter back to its queue as a new
	// message (visible at once, never read) and deletes the dead letter,
	// in one transaction; it returns the new message's id. An unknown id
	// is an error wrapping taskertype.ErrNotFound.
	DeadLetterRequeue(ctx context.Context, p *DeadLetterRequeueParams) (int64, error)
	// DeadLetterPurge deletes the dead letters set aside before p.Before
	// and returns how many it deleted.
	DeadLetterPurge(ctx context.Context, p *DeadLetterPurgeParams) (int64, error)
	QueueStats(ctx context.Context, name string) (*Stats, error)
	// QueueDepth returns the messages of a queue visible now, waiting to
	// be claimed: Stats.Visible, counted on the live messages only (never
	// the archive), so it stays cheap enough to call every second.
	QueueDepth(ctx context.Context, name string) (int64, error)
	// Subscribe registers for wake-ups on a queue until the returned cancel
	// function is called. The channel has a buffer of one and is never closed.
	Subscribe(name string) (wake <-chan struct{}, cancel func())
	Capabilities() Capabilities
	Close() error
}

// WakeupStats describes a provider's wake-ups since it was opened.
type WakeupStats struct {
	Queues      int // queues with at least one subscriber
	Subscribers int
	// Signals counts wake-ups put in a subscriber's channel; Coalesced
	// those a subscriber already had pending (nothing is lost: one pending
	// wake-up makes it claim until its queue is empty).
	Signals, Coalesced uint64
	// Notifications counts the wake-ups received from other processes;
	// Reconnects the times their listener connected again after losing
	// its connection.
	Notifications, Reconnects uint64
	// Polls counts the fallback polls run; PollWakeups the queues they
	// found with a visible message and woke.
	Polls, PollWakeups uint64
}

// WakeupReporter is implemented by providers that report their wake-ups.
type WakeupReporter interface {
	WakeupStats() WakeupStats
}

// Capabilities says what a provider can do beyond the interface's minimum.
type Capabilities struct {
	// Wakeups: Subscribe signals new messages; without it consumers poll.
	Wakeups bool
	// CrossProcessWakeups: a message sent by another process wakes this one.
	CrossProcessWakeups bool
	// SharesStoreDatabase: the store sends messages in its own transactions
	// (store.Tx.MessageSend), so a state change and its message commit together.
	SharesStoreDatabase bool
	// PollsSubscribed: the provider itself looks, at a low rate, for
	// visible messages on the queues that have subscribers and signals
	// them, so a lost wake-up or a claim that expired (its process died) is
	// found without each consumer polling. Consumers then keep only a slow
	// poll of their own as a last resort.
	PollsSubscribed bool
	// BrokerClock: delays (SendParams.Delay, NackParams.Delay) run on a
	// broker's timers, in real time, not on the clock the provider was
	// given; and the provider knows only this process's claims, so
	// Stats.Claimed counts those and Stats.OldestAge is 0 (RabbitMQ).
	// Visibility timeouts still run on the given clock.
	BrokerClock bool
}

// Counters counts the messages of one queue that went through this
// process (TAS-163 #10), and what the broker holds.
type Counters struct {
	Queue string
	// Sent: published by this process; Received: delivered to it (by a
	// consumer or a get); Acked: acknowledged; Nacked: released, with a
	// delay or without; Redelivered: delivered or claimed again after an
	// earlier delivery of the same message.
	Sent, Received, Acked, Nacked, Redelivered uint64
	// BrokerMessages is the broker's count of ready messages at its last
	// look (a passive declare, every few seconds); -1 before the first.
	BrokerMessages int64
}

// BatchSender is a Queue that publishes many messages with one wait for
// the broker: the transactional outbox's relay uses it when it can.
type BatchSender interface {
	// MessageSendBatch sends every message, or returns an error (some may
	// have been sent: the caller sends them all again).
	MessageSendBatch(ctx context.Context, msgs []*SendParams) error
}

// CounterReporter is implemented by providers that count their messages
// per queue (RabbitMQ).
type CounterReporter interface {
	Counters() []Counters
}

// DepthEstimator is a Queue that can estimate the size of a queue for far
// less than QueueDepth costs, without reading its messages: admission reads
// it, and counts with QueueDepth only when the estimate reaches its bound.
type DepthEstimator interface {
	// QueueDepthEstimate returns an estimate of the messages a queue
	// holds, visible or not: never below QueueDepth, and as close to the
	// messages it holds as the backend can tell cheaply. A queue never
	// ensured is an error
	// wrapping taskertype.ErrNotFound; a wrapped queue whose backend has
	// no estimate returns an error wrapping errors.ErrUnsupported.
	QueueDepthEstimate(ctx context.Context, name string) (int64, error)
}
