package rabbitmq

import (
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tasker-go/tasker/queue"
)

// Subscribe implements queue.Queue. The first subscriber of a queue starts
// its consumer, whose deliveries wake the subscribers; the last one to
// leave stops it and gives the deliveries held ready back to the broker.
func (q *Queue) Subscribe(name string) (<-chan struct{}, func()) {
	sub := &subscriber{ch: make(chan struct{}, 1)}
	q.mu.Lock()
	s := q.stateLocked(name)
	s.subs[sub] = struct{}{}
	// A name never ensured (such as queue.StepsStoppedChannel, which is
	// no queue) has no consumer: QueueEnsure starts it if it comes.
	first := len(s.subs) == 1 && !q.closed && s.ensured
	gen := q.gen
	q.mu.Unlock()
	if first {
		q.wg.Go(func() { q.startConsumer(s, gen) })
	}
	var once bool
	cancel := func() {
		q.mu.Lock()
		if once {
			q.mu.Unlock()
			return
		}
		once = true
		delete(s.subs, sub)
		var (
			ch      *amqp.Channel
			tag     string
			release []*held
		)
		if len(s.subs) == 0 && s.tag != "" {
			ch, tag, release = s.ch, s.tag, s.ready
			s.tag, s.live, s.ready = "", "", nil
		}
		q.mu.Unlock()
		if ch != nil {
			s.rpc.Lock()
			_ = ch.Cancel(tag, false)
			s.rpc.Unlock()
			for _, h := range release {
				_ = h.ch.Nack(h.tag, false, true)
			}
		}
	}
	return sub.ch, cancel
}

// startConsumer consumes s on its claim channel, if it still has
// subscribers and the connection is generation gen, until the channel
// closes or the consumer is cancelled.
func (q *Queue) startConsumer(s *qstate, gen uint64) {
	ch, err := q.claimChannel(q.ctx, s)
	if err != nil {
		return
	}
	q.mu.Lock()
	if len(s.subs) == 0 || !s.ensured || s.tag != "" || q.gen != gen || s.ch != ch {
		q.mu.Unlock()
		return
	}
	tag := "tasker-" + strconv.FormatInt(q.ids.next(), 36)
	s.tag = tag
	q.mu.Unlock()
	s.rpc.Lock()
	deliveries, err := ch.Consume(q.bn(s.name), tag, false, false, false, false, nil)
	s.rpc.Unlock()
	if err != nil {
		q.log.Warn("rabbitmq: consume", "queue", s.name, "error", err)
		q.mu.Lock()
		if s.tag == tag {
			s.tag = ""
		}
		q.mu.Unlock()
		return
	}
	q.mu.Lock()
	if s.tag == tag && s.ch == ch {
		s.live = tag
	}
	q.mu.Unlock()
	q.wg.Go(func() {
		defer func() {
			q.mu.Lock()
			if s.live == tag {
				s.live = ""
			}
			q.mu.Unlock()
		}()
		for d := range deliveries {
			h := q.delivery(s, ch, &d)
			if !h.due.IsZero() {
				if now := q.clock.Now(); now.Before(h.due) {
					if err := q.reroute(q.ctx, s, h, now); err != nil {
						q.log.Warn("rabbitmq: delay again", "queue", s.name, "error", err)
					}
					continue
				}
			}
			q.mu.Lock()
			if s.ch == ch {
				s.insertReady(h)
				q.signalLocked(s)
			}
			q.mu.Unlock()
		}
	})
}

// signalLocked wakes every subscriber of s without blocking.
func (q *Queue) signalLocked(s *qstate) {
	for sub := range s.subs {
		select {
		case sub.ch <- struct{}{}:
			q.signals++
		default:
			q.coalesced++
		}
	}
}

// expireLoop makes ready again, every second, the claims whose visibility
// timeout passed, so their subscribers are woken without a claim call.
func (q *Queue) expireLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-t.C:
		}
		now := q.clock.Now()
		q.mu.Lock()
		for _, s := range q.queues {
			q.expireLocked(s, now)
		}
		q.mu.Unlock()
		q.refreshBrokerCounts()
	}
}

// WakeupStats implements queue.WakeupReporter: signals come from the
// consumers; Reconnects counts the connections made again.
func (q *Queue) WakeupStats() queue.WakeupStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	w := queue.WakeupStats{Signals: q.signals, Coalesced: q.coalesced, Reconnects: q.reconnects}
	for _, s := range q.queues {
		if len(s.subs) > 0 {
			w.Queues++
			w.Subscribers += len(s.subs)
		}
	}
	return w
}
