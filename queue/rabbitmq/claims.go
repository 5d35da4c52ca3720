package rabbitmq

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

// Headers carried by every message: its id, the claims before this
// publish, when it was first sent and, for a delayed one, when it is due
// (unix microseconds on the provider's clock).
const (
	hID       = "x-tasker-id"
	hReads    = "x-tasker-reads"
	hEnqueued = "x-tasker-enqueued"
	hDue      = "x-tasker-due"
	hPriority = "x-tasker-priority"
	hSince    = "x-tasker-since" // queue.SendParams.Since, Unix µs; absent when not set
)

// qstate is what this process holds of one queue. Guarded by Queue.mu.
type qstate struct {
	name    string
	ensured bool // declared (or seen) by this process
	ctr     *queueCounters

	ch    *amqp.Channel // the claim channel (gets, consumer, acks); nil if none
	chGen uint64        // the connection generation of ch
	tag   string        // the consumer's tag; "" without a consumer
	// live is tag once the broker started the consumer (basic.consume-ok),
	// until it ends: the broker then pushes the queue's messages here, up
	// to Prefetch unacknowledged.
	live    string
	ready   []*held         // deliveries held here, not claimed, in claim order
	claimed map[int64]*held // by handle (queue.Message.Handle)
	subs    map[*subscriber]struct{}
	delays  map[int64]time.Time // delay levels declared (ms) → when
	// rpc serializes the synchronous methods (basic.get, basic.consume,
	// basic.cancel) on the claim channel: AMQP allows one in flight per
	// channel, and the client matches replies to calls in order. It
	// guards no state, and it is the only lock held across a network call.
	rpc sync.Mutex
}

// held is a delivery this process holds: claimed, or ready to be.
type held struct {
	ch  *amqp.Channel
	tag uint64
	due time.Time // zero: not delayed
	// key orders claims: when the message became visible (sent, or due),
	// or its since if earlier, less its priority's worth of waiting
	// (queue.SortKey), in microseconds; a release or an expired claim
	// keeps it.
	key int64
	// since is the message's queue.SendParams.Since in Unix microseconds,
	// 0 when not set: it goes with the message when it is published again.
	since int64
	msg   queue.Message
}

// setVisible sets when h became visible, and so its claim order.
func (q *Queue) setVisible(h *held, at time.Time) {
	var since time.Time
	if h.since != 0 {
		since = time.UnixMicro(h.since)
	}
	h.key = queue.SortKey(at.UnixMicro(), since, h.msg.Priority, q.cfg.PriorityAging)
}

type subscriber struct{ ch chan struct{} }

// dropLocked forgets the deliveries of a lost channel: the broker requeues
// them.
func (s *qstate) dropLocked() {
	s.ch, s.tag, s.live, s.ready = nil, "", "", nil
	clear(s.claimed)
}

// stateLocked returns the state of a queue, made if missing.
func (q *Queue) stateLocked(name string) *qstate {
	s := q.queues[name]
	if s == nil {
		s = &qstate{name: name, ctr: q.stats.queue(name), claimed: make(map[int64]*held),
			subs: make(map[*subscriber]struct{}), delays: make(map[int64]time.Time)}
		q.queues[name] = s
	}
	return s
}

// bn is the broker's name of a queue: Config.Prefix and the name.
func (q *Queue) bn(name string) string { return q.cfg.Prefix + name }

func dlxName(name string) string     { return name + "_dlx" }
func dlqName(name string) string     { return name + "_dlq" }
func archiveName(name string) string { return name + "_archive" }

// QueueEnsure implements queue.Queue: the queue, its dead-letter exchange
// and queue, and its archive, all durable.
func (q *Queue) QueueEnsure(ctx context.Context, name string) error {
	if err := queue.CheckName("ensure", name); err != nil {
		return err
	}
	err := q.channel(ctx, func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(q.bn(dlxName(name)), amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			return err
		}
		if _, err := ch.QueueDeclare(q.bn(dlqName(name)), true, false, false, false, nil); err != nil {
			return err
		}
		if err := ch.QueueBind(q.bn(dlqName(name)), "", q.bn(dlxName(name)), false, nil); err != nil {
			return err
		}
		if _, err := ch.QueueDeclare(q.bn(archiveName(name)), true, false, false, false, nil); err != nil {
			return err
		}
		_, err := ch.QueueDeclare(q.bn(name), true, false, false, false, amqp.Table{"x-dead-letter-exchange": q.bn(dlxName(name))})
		return err
	})
	if err != nil {
		return fmt.Errorf("rabbitmq: ensure queue %q: %w: a queue declared before with other arguments must be deleted first", name, err)
	}
	q.mu.Lock()
	s := q.stateLocked(name)
	s.ensured = true
	consume := len(s.subs) > 0 && s.tag == "" && !q.closed
	gen := q.gen
	q.mu.Unlock()
	if consume { // subscribed before it was ensured
		q.wg.Go(func() { q.startConsumer(s, gen) })
	}
	return nil
}

// known returns the state of a queue that exists: ensured by this process,
// or found on the broker by a passive declare.
func (q *Queue) known(ctx context.Context, op, name string) (*qstate, error) {
	q.mu.Lock()
	s := q.queues[name]
	ok := s != nil && s.ensured
	q.mu.Unlock()
	if ok {
		return s, nil
	}
	err := q.channel(ctx, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclarePassive(q.bn(name), true, false, false, false, nil)
		return err
	})
	if err != nil {
		return nil, notFound(err, op, name)
	}
	q.mu.Lock()
	s = q.stateLocked(name)
	s.ensured = true
	q.mu.Unlock()
	return s, nil
}

func micros(t time.Time) int64 { return t.UnixMicro() }

// sinceMicros is queue.SendParams.Since for the hSince header: 0 when not
// set.
func sinceMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func headerInt(h amqp.Table, k string) int64 {
	switch v := h[k].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case int16:
		return int64(v)
	case int8:
		return int64(v)
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	}
	return 0
}

// publishing builds the AMQP message of m: persistent, with its headers;
// since is its queue.SendParams.Since in Unix microseconds, 0 for none.
func publishing(m *queue.Message, due time.Time, since int64) amqp.Publishing {
	h := amqp.Table{hID: m.ID, hReads: int64(m.ReadCount), hEnqueued: micros(m.EnqueuedAt), hPriority: int64(m.Priority)}
	if !due.IsZero() {
		h[hDue] = micros(due)
	}
	if since != 0 {
		h[hSince] = since
	}
	return amqp.Publishing{DeliveryMode: amqp.Persistent, Headers: h, Body: m.Body, MessageId: strconv.FormatInt(m.ID, 10)}
}

// MessageSend implements queue.Queue: published with a confirm, to the
// queue, or to its delay queue when p.Delay is set.
func (q *Queue) MessageSend(ctx context.Context, p *queue.SendParams) (int64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	s, err := q.known(ctx, "send", p.Queue)
	if err != nil {
		return 0, err
	}
	now := q.clock.Now()
	m := &queue.Message{ID: q.ids.next(), Queue: p.Queue, Body: p.Body, EnqueuedAt: now, Priority: p.Priority}
	if err := q.send(ctx, s, m, p.Delay, sinceMicros(p.Since), now); err != nil {
		return 0, err
	}
	s.ctr.sent.Add(1)
	return m.ID, nil
}

// send publishes m to its queue, or to the delay queue of its delay.
func (q *Queue) send(ctx context.Context, s *qstate, m *queue.Message, delay time.Duration, since int64, now time.Time) error {
	if delay <= 0 {
		return q.publish(ctx, "", q.bn(s.name), publishing(m, time.Time{}, since))
	}
	due := now.Add(delay)
	name, err := q.delayQueue(ctx, s, delay)
	if err != nil {
		return err
	}
	return q.publish(ctx, "", name, publishing(m, due, since))
}

// maxLevel is the longest delay queue TTL: a longer delay goes round again.
const maxLevel = int64(1<<31 - 1)

// delayLevel rounds a delay down to two significant digits of
// milliseconds, at least 1ms: few delay queues, and a message that comes
// back early goes round again for what remains (at most a tenth).
func delayLevel(d time.Duration) int64 {
	ms := max(d.Milliseconds(), 1)
	ms = min(ms, maxLevel)
	p := int64(1)
	for ms/p >= 100 {
		p *= 10
	}
	return ms / p * p
}

// delayRedeclare is how often a delay queue is declared again while in
// use: each declare keeps it from expiring (x-expires) for a minute more
// than its TTL.
const delayRedeclare = 30 * time.Second

// delayQueue declares (when not declared in the last delayRedeclare) and
// names the delay queue of d for s.
func (q *Queue) delayQueue(ctx context.Context, s *qstate, d time.Duration) (string, error) {
	level := delayLevel(d)
	name := q.bn(s.name) + "_delay_" + strconv.FormatInt(level, 10)
	wall := time.Now()
	q.mu.Lock()
	at, ok := s.delays[level]
	q.mu.Unlock()
	if ok && wall.Sub(at) < delayRedeclare {
		return name, nil
	}
	err := q.channel(ctx, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{
			"x-message-ttl":             level,
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": q.bn(s.name),
			"x-expires":                 level + 60_000,
		})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("rabbitmq: declare the delay queue %s: %w", name, err)
	}
	q.mu.Lock()
	s.delays[level] = wall
	q.mu.Unlock()
	return name, nil
}

// delivery turns an AMQP delivery into a held message.
func (q *Queue) delivery(s *qstate, ch *amqp.Channel, d *amqp.Delivery) *held {
	h := &held{ch: ch, tag: d.DeliveryTag, msg: queue.Message{
		ID: headerInt(d.Headers, hID), Queue: s.name, Body: d.Body,
		ReadCount:  int(headerInt(d.Headers, hReads)),
		EnqueuedAt: time.UnixMicro(headerInt(d.Headers, hEnqueued)).UTC(),
		Priority:   int(headerInt(d.Headers, hPriority)),
	}, since: headerInt(d.Headers, hSince)}
	h.msg.Handle = q.handles.Add(1)
	if h.msg.ID == 0 { // published by another client: give it an id
		h.msg.ID = q.ids.next()
		h.msg.EnqueuedAt = q.clock.Now()
	}
	if d.Redelivered {
		// The broker gave it back after a holder went away: that holder's
		// claim counts as a read.
		h.msg.ReadCount++
		s.ctr.redelivered.Add(1)
	}
	visible := h.msg.EnqueuedAt
	if due := headerInt(d.Headers, hDue); due != 0 {
		h.due = time.UnixMicro(due).UTC()
		visible = h.due
	}
	q.setVisible(h, visible)
	s.ctr.received.Add(1)
	return h
}

// reroute sends a message that came back from a delay queue before its
// due time round again for what remains, then acknowledges the delivery.
func (q *Queue) reroute(ctx context.Context, s *qstate, h *held, now time.Time) error {
	name, err := q.delayQueue(ctx, s, h.due.Sub(now))
	if err == nil {
		err = q.publish(ctx, "", name, publishing(&h.msg, h.due, h.since))
	}
	if err != nil {
		_ = h.ch.Nack(h.tag, false, true)
		return err
	}
	return h.ch.Ack(h.tag, false)
}

// claimChannel returns the claim channel of s, opened with the prefetch
// if missing.
func (q *Queue) claimChannel(ctx context.Context, s *qstate) (*amqp.Channel, error) {
	conn, _, gen, err := q.connection(ctx)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	ch := s.ch
	if ch != nil && s.chGen == gen && !ch.IsClosed() {
		q.mu.Unlock()
		return ch, nil
	}
	q.mu.Unlock()
	ch, err = conn.Channel()
	if err == nil {
		err = ch.Qos(q.cfg.Prefetch, 0, false)
	}
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: open the claim channel of %q: %w", s.name, err)
	}
	q.mu.Lock()
	if s.ch != nil && s.chGen == gen && !s.ch.IsClosed() {
		other := s.ch
		q.mu.Unlock()
		_ = ch.Close()
		return other, nil
	}
	if s.ch != nil {
		s.dropLocked() // a dead channel: its deliveries are requeued
	}
	s.ch, s.chGen = ch, gen
	q.mu.Unlock()
	return ch, nil
}

// insertReady puts h among the ready deliveries of s, in claim order:
// by key (visibility less priority), then id.
func (s *qstate) insertReady(h *held) {
	i, _ := slices.BinarySearchFunc(s.ready, h, func(a, b *held) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return cmp.Compare(a.msg.ID, b.msg.ID)
	})
	s.ready = slices.Insert(s.ready, i, h)
}

// expireLocked makes ready again the claims of s whose visibility timeout
// passed, and wakes the subscribers if there were any.
func (q *Queue) expireLocked(s *qstate, now time.Time) {
	n := 0
	for handle, h := range s.claimed {
		if !now.Before(h.msg.VisibleAt) {
			delete(s.claimed, handle)
			s.insertReady(h) // it keeps its claim order, as it would on PostgreSQL
			n++
		}
	}
	if n > 0 {
		q.signalLocked(s)
	}
}

// claimLocked hands h to a claim.
func (s *qstate) claimLocked(h *held, now time.Time, vt time.Duration) *queue.Message {
	h.msg.ReadCount++
	if h.msg.ReadCount > 1 {
		s.ctr.redelivered.Add(1)
	}
	h.msg.VisibleAt = now.Add(vt)
	s.claimed[h.msg.Handle] = h
	m := h.msg
	return &m
}

// MessageClaim implements queue.Queue: the deliveries this process holds
// ready first, then basic.get on the queue's claim channel until p.Max or
// the queue is empty.
func (q *Queue) MessageClaim(ctx context.Context, p *queue.ClaimParams) ([]*queue.Message, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	s, err := q.known(ctx, "claim", p.Queue)
	if err != nil {
		return nil, err
	}
	now := q.clock.Now()
	if err := q.fill(ctx, s, p.Max, now); err != nil {
		return nil, err
	}
	var out []*queue.Message
	q.mu.Lock()
	q.expireLocked(s, now)
	for len(out) < p.Max && len(s.ready) > 0 {
		h := s.ready[0]
		s.ready = s.ready[1:]
		out = append(out, s.claimLocked(h, now, p.VisibilityTimeout))
	}
	q.mu.Unlock()
	return out, nil
}

// fill takes, with basic.get, what the broker holds ready for s into the
// deliveries held here, so that a claim hands them out in claim order
// (priority, then visibility): until the broker has none, and while this
// process holds fewer than Prefetch+Lookahead (at least want ready).
//
// While the consumer of s runs with room under its prefetch, the broker
// pushes every message the queue holds without being asked: a basic.get
// would find at most one on its way here, and cost a round trip to the
// broker on every claim (the hop of each step). So when deliveries are
// held ready then, the claim takes those, without basic.get; with none
// ready it still asks (a message sent just before, not yet pushed).
func (q *Queue) fill(ctx context.Context, s *qstate, want int, now time.Time) error {
	for {
		q.mu.Lock()
		held := len(s.ready) + len(s.claimed)
		pushed := s.live != "" && s.live == s.tag && held < q.cfg.Prefetch && len(s.ready) > 0
		enough := pushed || held >= q.cfg.Prefetch+q.cfg.Lookahead && len(s.ready) >= want
		q.mu.Unlock()
		if enough {
			return nil
		}
		ch, err := q.claimChannel(ctx, s)
		if err != nil {
			return err
		}
		s.rpc.Lock()
		q.gets.Add(1)
		d, ok, err := ch.Get(q.bn(s.name), false)
		s.rpc.Unlock()
		if err != nil {
			return notFound(err, "claim", s.name)
		}
		if !ok {
			return nil
		}
		h := q.delivery(s, ch, &d)
		if !h.due.IsZero() && now.Before(h.due) {
			if err := q.reroute(ctx, s, h, now); err != nil {
				return err
			}
			continue
		}
		q.mu.Lock()
		if s.ch == ch { // else the connection was lost meanwhile: requeued
			s.insertReady(h)
		}
		q.mu.Unlock()
	}
}

// findLocked returns the held delivery a receipt names: claimed, or ready
// again after its claim expired and not claimed since. A receipt of a
// claimed message (queue.Message.Receipt) names its delivery by handle,
// so two deliveries of the same message id (two processes made the same
// id) are never taken for each other; a receipt made by hand, without a
// handle, is matched by id.
func (s *qstate) findLocked(r queue.Receipt) (h *held, claimed bool) {
	match := func(h *held) bool {
		return h.msg.ID == r.ID && h.msg.ReadCount == r.ReadCount && (r.Handle == 0 || h.msg.Handle == r.Handle)
	}
	if r.Handle != 0 {
		if h := s.claimed[r.Handle]; h != nil && match(h) {
			return h, true
		}
	} else {
		for _, h := range s.claimed {
			if match(h) {
				return h, true
			}
		}
	}
	for _, h := range s.ready {
		if match(h) {
			return h, false
		}
	}
	return nil, false
}

// takeLocked removes h from s.
func (s *qstate) takeLocked(h *held, claimed bool) {
	if claimed {
		delete(s.claimed, h.msg.Handle)
		return
	}
	s.ready = slices.DeleteFunc(s.ready, func(x *held) bool { return x == h })
}

// state returns the state of a queue without checking the broker: the
// calls on claimed messages need only what this process holds.
func (q *Queue) state(name string) *qstate {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stateLocked(name)
}

// MessageAck implements queue.Queue. A receipt this process does not hold
// is skipped: acknowledged already, claimed again, or held by a
// connection that was lost (the broker delivers the message again).
func (q *Queue) MessageAck(ctx context.Context, p *queue.AckParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	s := q.state(p.Queue)
	var acks []*held
	q.mu.Lock()
	for _, r := range p.Receipts {
		if h, claimed := s.findLocked(r); h != nil {
			s.takeLocked(h, claimed)
			acks = append(acks, h)
		}
	}
	q.mu.Unlock()
	for _, h := range acks {
		if err := h.ch.Ack(h.tag, false); err != nil {
			// The channel is gone: the broker requeued the message and
			// delivers it again; its transition absorbs the duplicate.
			q.log.Debug("rabbitmq: ack on a lost channel", "queue", p.Queue, "message_id", h.msg.ID, "error", err)
			continue
		}
		s.ctr.acked.Add(1)
	}
	return nil
}

func gone(op string, name string, r queue.Receipt) error {
	return fmt.Errorf("rabbitmq: %s: queue %q: message %d (read %d) is not held by this claim: %w", op, name, r.ID, r.ReadCount, taskertype.ErrNotFound)
}

// MessageNack implements queue.Queue. Without a delay the message is ready
// again here at once; with one it goes to its delay queue and the delivery
// is acknowledged.
func (q *Queue) MessageNack(ctx context.Context, p *queue.NackParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	s := q.state(p.Queue)
	q.mu.Lock()
	h, claimed := s.findLocked(p.Receipt)
	if h == nil {
		q.mu.Unlock()
		return gone("nack", p.Queue, p.Receipt)
	}
	s.takeLocked(h, claimed)
	if p.Delay <= 0 {
		s.insertReady(h) // it keeps its claim order
		q.signalLocked(s)
		q.mu.Unlock()
		s.ctr.nacked.Add(1)
		return nil
	}
	q.mu.Unlock()
	now := q.clock.Now()
	name, err := q.delayQueue(ctx, s, p.Delay)
	if err == nil {
		err = q.publish(ctx, "", name, publishing(&h.msg, now.Add(p.Delay), h.since))
	}
	if err != nil {
		q.mu.Lock()
		if s.ch == h.ch {
			s.claimed[h.msg.Handle] = h
		}
		q.mu.Unlock()
		return fmt.Errorf("rabbitmq: nack with delay: %w", err)
	}
	_ = h.ch.Ack(h.tag, false) // if lost, the message comes twice: absorbed
	s.ctr.nacked.Add(1)
	return nil
}

// MessageExtend implements queue.Queue: the claim's visibility timeout is
// kept here, so extending it is a write in memory.
func (q *Queue) MessageExtend(ctx context.Context, p *queue.ExtendParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	s := q.state(p.Queue)
	now := q.clock.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	h, claimed := s.findLocked(p.Receipt)
	if h == nil {
		return gone("extend", p.Queue, p.Receipt)
	}
	if !claimed {
		s.takeLocked(h, false)
		s.claimed[h.msg.Handle] = h
	}
	h.msg.VisibleAt = now.Add(p.VisibilityTimeout)
	return nil
}

// setAside takes the held deliveries of receipts, publishes each to
// exchange/key with extra headers, then acknowledges it. Receipts not held
// are skipped, unless strict.
func (q *Queue) setAside(ctx context.Context, op string, s *qstate, receipts []queue.Receipt, strict bool, exchange, key string, extra func(amqp.Table)) error {
	var take []*held
	q.mu.Lock()
	for _, r := range receipts {
		h, claimed := s.findLocked(r)
		if h == nil {
			if strict {
				q.mu.Unlock()
				return gone(op, s.name, r)
			}
			continue
		}
		s.takeLocked(h, claimed)
		take = append(take, h)
	}
	q.mu.Unlock()
	for i, h := range take {
		msg := publishing(&h.msg, time.Time{}, h.since)
		extra(msg.Headers)
		if err := q.publish(ctx, exchange, key, msg); err != nil {
			q.mu.Lock()
			for _, h := range take[i:] {
				if s.ch == h.ch {
					s.claimed[h.msg.Handle] = h
				}
			}
			q.mu.Unlock()
			return fmt.Errorf("rabbitmq: %s: %w", op, err)
		}
		_ = h.ch.Ack(h.tag, false)
	}
	return nil
}

// MessageArchive implements queue.Queue: held messages move to the
// queue's _archive queue.
func (q *Queue) MessageArchive(ctx context.Context, p *queue.ArchiveParams) error {
	if err := p.Validate(); err != nil {
		return err
	}
	now := q.clock.Now()
	return q.setAside(ctx, "archive", q.state(p.Queue), p.Receipts, false, "", q.bn(archiveName(p.Queue)), func(h amqp.Table) {
		h[hArchivedAt] = micros(now)
	})
}

// QueueCheck returns nil if the queue exists (ensured by this process or
// found on the broker), and an error wrapping taskertype.ErrNotFound if
// not: the outbox's check before it accepts a message.
func (q *Queue) QueueCheck(ctx context.Context, name string) error {
	if err := queue.CheckName("check", name); err != nil {
		return err
	}
	_, err := q.known(ctx, "send", name)
	return err
}

// MessageSendBatch implements queue.BatchSender: the messages without a
// delay are published one after the other and their confirms waited for
// together; delayed ones go one by one through their delay queues. On an
// error some may have been sent.
func (q *Queue) MessageSendBatch(ctx context.Context, msgs []*queue.SendParams) error {
	now := q.clock.Now()
	type pending struct {
		s   *qstate
		msg amqp.Publishing
		key string
	}
	var batch []pending
	for _, p := range msgs {
		if err := p.Validate(); err != nil {
			return err
		}
		s, err := q.known(ctx, "send", p.Queue)
		if err != nil {
			return err
		}
		m := &queue.Message{ID: q.ids.next(), Queue: p.Queue, Body: p.Body, EnqueuedAt: now, Priority: p.Priority}
		if p.Delay > 0 {
			if err := q.send(ctx, s, m, p.Delay, sinceMicros(p.Since), now); err != nil {
				return err
			}
			s.ctr.sent.Add(1)
			continue
		}
		batch = append(batch, pending{s: s, msg: publishing(m, time.Time{}, sinceMicros(p.Since)), key: q.bn(p.Queue)})
	}
	for len(batch) > 0 {
		_, pub, _, err := q.connection(ctx)
		if err != nil {
			return err
		}
		dcs := make([]*amqp.DeferredConfirmation, 0, len(batch))
		for _, b := range batch {
			q.stamp(&b.msg)
			dc, err := pub.ch.PublishWithDeferredConfirmWithContext(ctx, "", b.key, true, false, b.msg)
			if err != nil {
				break
			}
			dcs = append(dcs, dc)
		}
		var failed []pending
		for i, b := range batch {
			ok := false
			if i < len(dcs) {
				ok, err = dcs[i].WaitContext(ctx)
				if err != nil {
					return fmt.Errorf("rabbitmq: publish to %q: %w", b.key, err)
				}
				if ok && pub.ret.returned(headerInt(b.msg.Headers, hPub)) {
					// The others of the batch may have gone: the
					// caller publishes the batch again (duplicates are
					// absorbed), once the queue is back.
					return q.returned(ctx, "", b.key)
				}
			}
			if ok {
				b.s.ctr.sent.Add(1)
			} else {
				failed = append(failed, b)
			}
		}
		if len(failed) > 0 && !pub.ch.IsClosed() {
			return fmt.Errorf("rabbitmq: publish: the broker refused %d of %d messages (nack)", len(failed), len(batch))
		}
		if len(failed) > 0 {
			q.waitLost(ctx, pub)
		}
		batch = failed
	}
	return nil
}
