package rabbitmq

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

// Headers of a dead letter (besides the message's own) and of an archived
// message.
const (
	hDeadID     = "x-tasker-dead-id"
	hDeadAt     = "x-tasker-dead-at"
	hReason     = "x-tasker-reason"
	hArchivedAt = "x-tasker-archived-at"
)

// MessageDeadLetter implements queue.Queue: the message is published to
// the queue's dead-letter exchange (N_dlx, bound to N_dlq) with the reason,
// then its delivery is acknowledged.
func (q *Queue) MessageDeadLetter(ctx context.Context, p *queue.DeadLetterParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	now := q.clock.Now()
	id := q.ids.next()
	return q.setAside(ctx, "dead letter", q.state(p.Queue), []queue.Receipt{p.Receipt}, true, q.bn(dlxName(p.Queue)), "", func(h amqp.Table) {
		h[hDeadID], h[hDeadAt], h[hReason] = id, micros(now), p.Reason
	})
}

// browsed is a dead letter read from a _dlq on a browsing channel.
type browsed struct {
	d    *queue.DeadLetter
	tag  uint64
	prio int // the message's priority, kept when it is requeued
}

// browse reads up to MaxBrowse dead letters of a queue on a channel of its
// own and calls fn with them and the channel: fn may acknowledge some (they
// leave the _dlq); the others go back when the channel closes, in their
// order. Another browse at the same time sees only what this one did not
// take.
func (q *Queue) browse(ctx context.Context, name string, fn func(ch *amqp.Channel, ds []browsed) error) error {
	return q.channel(ctx, func(ch *amqp.Channel) error {
		var ds []browsed
		for len(ds) < q.cfg.MaxBrowse {
			m, ok, err := ch.Get(q.bn(dlqName(name)), false)
			if err != nil {
				return notFound(err, "dead letters", q.bn(dlqName(name)))
			}
			if !ok {
				break
			}
			ds = append(ds, browsed{tag: m.DeliveryTag, prio: int(headerInt(m.Headers, hPriority)), d: &queue.DeadLetter{
				ID: headerInt(m.Headers, hDeadID), Queue: name, MessageID: headerInt(m.Headers, hID), Body: m.Body,
				ReadCount:  int(headerInt(m.Headers, hReads)),
				EnqueuedAt: time.UnixMicro(headerInt(m.Headers, hEnqueued)).UTC(),
				DeadAt:     time.UnixMicro(headerInt(m.Headers, hDeadAt)).UTC(),
				Reason:     headerString(m.Headers, hReason),
			}})
		}
		return fn(ch, ds)
	})
}

func headerString(h amqp.Table, k string) string {
	s, _ := h[k].(string)
	return s
}

// names returns the queue p names, or every queue this process knows.
func (q *Queue) names(name string) []string {
	if name != "" {
		return []string{name}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var names []string
	for n, s := range q.queues {
		if s.ensured {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// DeadLetterList implements queue.Queue by browsing the _dlq of the queue
// named, or of every queue this process ensured or used (a broker does not
// list its queues over AMQP): newest first.
func (q *Queue) DeadLetterList(ctx context.Context, p *queue.DeadLetterListParams) ([]*queue.DeadLetter, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var all []*queue.DeadLetter
	for _, name := range q.names(p.Queue) {
		err := q.browse(ctx, name, func(_ *amqp.Channel, ds []browsed) error {
			for _, b := range ds {
				all = append(all, b.d)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(all, func(a, b *queue.DeadLetter) int { return cmp.Compare(b.ID, a.ID) })
	limit := cmp.Or(p.Limit, 100)
	return all[:min(limit, len(all))], nil
}

// DeadLetterRequeue implements queue.Queue: the dead letter is published to
// its queue as a new message, confirmed, then acknowledged in its _dlq.
func (q *Queue) DeadLetterRequeue(ctx context.Context, p *queue.DeadLetterRequeueParams) (int64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	var newID int64
	for _, name := range q.names("") {
		err := q.browse(ctx, name, func(ch *amqp.Channel, ds []browsed) error {
			for _, b := range ds {
				if b.d.ID != p.ID {
					continue
				}
				now := q.clock.Now()
				m := &queue.Message{ID: q.ids.next(), Queue: name, Body: b.d.Body, EnqueuedAt: now, Priority: b.prio}
				if err := q.publish(ctx, "", q.bn(name), publishing(m, time.Time{}, 0)); err != nil {
					return err
				}
				if err := ch.Ack(b.tag, false); err != nil {
					return fmt.Errorf("rabbitmq: requeue dead letter %d: remove it from %s: %w", p.ID, q.bn(dlqName(name)), err)
				}
				q.state(name).ctr.sent.Add(1)
				newID = m.ID
				return nil
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		if newID != 0 {
			return newID, nil
		}
	}
	return 0, fmt.Errorf("rabbitmq: requeue dead letter %d: no such dead letter: %w", p.ID, taskertype.ErrNotFound)
}

// DeadLetterPurge implements queue.Queue: the dead letters set aside
// before p.Before are acknowledged in their _dlq.
func (q *Queue) DeadLetterPurge(ctx context.Context, p *queue.DeadLetterPurgeParams) (int64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	var n int64
	for _, name := range q.names(p.Queue) {
		err := q.browse(ctx, name, func(ch *amqp.Channel, ds []browsed) error {
			for _, b := range ds {
				if b.d.DeadAt.Before(p.Before) {
					if err := ch.Ack(b.tag, false); err != nil {
						return err
					}
					n++
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
