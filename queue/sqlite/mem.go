package sqlite

import (
	"cmp"
	"container/heap"
	"slices"
	"sync"
	"time"

	"github.com/tasker-go/tasker/queue"
)

// Queues kept in memory (Config.InMemory): their messages are no rows but
// entries of three heaps per queue, under one mutex that is never held
// across a database call or a wake-up:
//
//   - ready: the messages visible at the last look, in claim order (sort
//     key, then visibility, then id), as the queue_messages_ready index;
//   - delayed: messages not claimed whose visibility is still to come, by
//     visibility;
//   - held: claimed messages whose claim has not expired, by expiry.
//
// Each look (claim, depth, stats) first moves the delayed messages that
// fell due and the claims that expired to ready, where they keep their sort
// key, as rows do. Every operation costs O(log n) per message it touches;
// nothing walks a queue but Stats (for the age of its oldest message).

// memMsg is a message of a queue kept in memory.
type memMsg struct {
	id       int64
	queue    string
	body     []byte
	readCt   int
	enqueued time.Time
	vt       int64 // Unix µs: visible from, or claimed until
	sortAt   int64 // Unix µs: the claim order's key (queue.SortKey)
	priority int
	claimed  bool // as the claimed column: set by a claim, cleared by a nack
	in       *memHeap
	idx      int
}

// message returns the claimed message, with a copy of its body, as a
// row's would be: a caller that changes it changes nothing here.
func (m *memMsg) message() *queue.Message {
	return &queue.Message{ID: m.id, Queue: m.queue, Body: slices.Clone(m.body), ReadCount: m.readCt,
		EnqueuedAt: m.enqueued, VisibleAt: time.UnixMicro(m.vt).UTC(), Priority: m.priority}
}

func (m *memMsg) matches(r queue.Receipt) bool { return m.readCt == r.ReadCount }

// memHeap is a heap of messages that knows each one's place, so that any
// message leaves it in O(log n). byKey orders by claim order, else by vt.
type memHeap struct {
	byKey bool
	ms    []*memMsg
}

func (h *memHeap) Len() int { return len(h.ms) }
func (h *memHeap) Less(i, j int) bool {
	if h.byKey {
		return claimOrder(h.ms[i], h.ms[j]) < 0
	}
	return cmp.Or(cmp.Compare(h.ms[i].vt, h.ms[j].vt), cmp.Compare(h.ms[i].id, h.ms[j].id)) < 0
}
func (h *memHeap) Swap(i, j int) {
	h.ms[i], h.ms[j] = h.ms[j], h.ms[i]
	h.ms[i].idx, h.ms[j].idx = i, j
}
func (h *memHeap) Push(x any) {
	m := x.(*memMsg)
	m.in, m.idx = h, len(h.ms)
	h.ms = append(h.ms, m)
}
func (h *memHeap) Pop() any {
	n := len(h.ms) - 1
	m := h.ms[n]
	h.ms[n] = nil
	h.ms = h.ms[:n]
	m.in, m.idx = nil, -1
	return m
}

func (h *memHeap) top() *memMsg {
	if len(h.ms) == 0 {
		return nil
	}
	return h.ms[0]
}

// claimOrder compares a and b in claim order (the rows' ORDER BY sort_at,
// vt, id).
func claimOrder(a, b *memMsg) int {
	return cmp.Or(cmp.Compare(a.sortAt, b.sortAt), cmp.Compare(a.vt, b.vt), cmp.Compare(a.id, b.id))
}

// memQueue is one queue kept in memory.
type memQueue struct {
	ready, delayed, held memHeap
	byID                 map[int64]*memMsg
}

func newMemQueue() *memQueue {
	return &memQueue{ready: memHeap{byKey: true}, byID: make(map[int64]*memMsg)}
}

// unlink takes m out of its heap, if it is in one.
func unlink(m *memMsg) {
	if m.in != nil {
		heap.Remove(m.in, m.idx)
	}
}

// place puts m in the heap its state and now call for.
func (mq *memQueue) place(m *memMsg, now int64) {
	unlink(m)
	switch {
	case m.vt <= now:
		heap.Push(&mq.ready, m)
	case m.claimed:
		heap.Push(&mq.held, m)
	default:
		heap.Push(&mq.delayed, m)
	}
}

// promote moves what fell due by now to ready: delayed messages, and
// claims that expired.
func (mq *memQueue) promote(now int64) {
	for _, h := range []*memHeap{&mq.delayed, &mq.held} {
		for m := h.top(); m != nil && m.vt <= now; m = h.top() {
			heap.Pop(h)
			heap.Push(&mq.ready, m)
		}
	}
}

func (mq *memQueue) add(m *memMsg, now int64) {
	mq.byID[m.id] = m
	mq.place(m, now)
}

// find returns the message a receipt names, or nil.
func (mq *memQueue) find(r queue.Receipt) *memMsg {
	if m := mq.byID[r.ID]; m != nil && m.matches(r) {
		return m
	}
	return nil
}

func (mq *memQueue) remove(m *memMsg) {
	unlink(m)
	delete(mq.byID, m.id)
}

// memClaim is a claim made in a transaction, undone if it rolls back: the
// message's state before it.
type memClaim struct {
	m       *memMsg
	readCt  int
	vt      int64
	claimed bool
}

// claim claims up to max visible messages of queue name at now until vt,
// in claim order. With tm, the claim is in tm's transaction: it takes the
// transaction's own sends too (not yet in their queues), passes over the
// messages the transaction acknowledged (a row deleted earlier in a
// transaction is not claimed later in it), and records what it takes from
// the queue in tm.claims, to be undone at a rollback.
func (mq *memQueue) claim(name string, max int, now, vt int64, tm *TxMem) []*memMsg {
	mq.promote(now)
	var own, skipped []*memMsg
	if tm != nil {
		// The transaction's own sends that this claim may take, in claim
		// order: sorted once, not searched for each message.
		for _, c := range tm.sends {
			if c.queue == name && !c.claimed && c.vt <= now {
				own = append(own, c)
			}
		}
		slices.SortFunc(own, claimOrder)
	}
	// The messages taken from the queue are placed (held) after the loop:
	// placed at once, a claim whose visibility timeout has already run out
	// (0) would find the same message ready again and return it twice.
	var out, taken []*memMsg
	for len(out) < max {
		m := mq.ready.top()
		switch {
		case len(own) > 0 && (m == nil || claimOrder(own[0], m) < 0):
			m, own = own[0], own[1:]
		case m != nil && tm.acked(name, m):
			heap.Pop(&mq.ready)
			skipped = append(skipped, m)
			continue
		case m != nil:
			heap.Pop(&mq.ready)
			if tm != nil {
				tm.claims = append(tm.claims, memClaim{m: m, readCt: m.readCt, vt: m.vt, claimed: m.claimed})
			}
			taken = append(taken, m)
		default:
			m = nil
		}
		if m == nil {
			break
		}
		m.readCt++
		m.vt, m.claimed = vt, true
		out = append(out, m)
	}
	for _, m := range taken {
		mq.place(m, now)
	}
	for _, m := range skipped {
		heap.Push(&mq.ready, m)
	}
	return out
}

// acked reports whether the transaction of tm acknowledged m, of queue
// name; false when tm is nil.
func (tm *TxMem) acked(name string, m *memMsg) bool {
	if tm == nil {
		return false
	}
	for i := range tm.acks {
		if tm.acks[i].Queue != name {
			continue
		}
		for _, r := range tm.acks[i].Receipts {
			if r.ID == m.id && r.ReadCount == m.readCt {
				return true
			}
		}
	}
	return false
}

// memQueues are the queues kept in memory, by name: those ensured
// (QueueEnsure, Restore) whose names Config.InMemory picks.
type memQueues struct {
	mu     sync.Mutex
	next   int64 // the last message id given
	queues map[string]*memQueue
}

func (s *memQueues) get(name string) *memQueue {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queues[name]
}

// newMsgLocked makes a message of p, sent at now, whose body is p.Body
// itself (the caller copies a body it does not own); s.mu is held.
func (s *memQueues) newMsgLocked(p *queue.SendParams, now time.Time, aging time.Duration) *memMsg {
	s.next++
	vt := now.Add(p.Delay).UnixMicro()
	return &memMsg{id: s.next, queue: p.Queue, body: bodyOf(p), enqueued: now.Truncate(time.Microsecond).UTC(),
		vt: vt, sortAt: queue.SortKey(vt, p.Since, p.Priority, aging), priority: p.Priority, idx: -1}
}

// TxMem is what a transaction did to the queues kept in memory, applied
// when it ends (Queue.EndTx): its sends enter their queues and its
// acknowledgements apply at the commit; its claims, made at once so that
// no one else takes the same messages, are undone at a rollback. The zero
// value is ready for use. A transaction holds one (MemTx).
type TxMem struct {
	sends  []*memMsg
	claims []memClaim
	acks   []queue.AckParams
}

// MemTx is a Tx that can carry a TxMem: sending, claiming or acknowledging
// messages of a queue kept in memory in a transaction needs one, and its
// owner calls Queue.EndTx when the transaction ends, committed or not,
// before another transaction begins.
type MemTx interface {
	Tx
	Mem() *TxMem
}

// EndTx applies the part of a transaction that concerns the queues kept in
// memory: its sends and acknowledgements if it committed, the undoing of
// its claims if not. It resets tm. After a commit the caller wakes the
// subscribers of the queues it sent to (NotifySent); after a rollback
// EndTx wakes those of the queues whose claims it undid, as a claim that
// found them empty meanwhile may have gone to sleep.
func (q *Queue) EndTx(tm *TxMem, committed bool) {
	if len(tm.sends)+len(tm.claims)+len(tm.acks) == 0 {
		return
	}
	undone := q.mem.end(tm, committed, q.clock.Now().UnixMicro())
	*tm = TxMem{}
	q.NotifySent(undone...)
}

// end applies tm (EndTx) and returns the queues whose claims it undid.
func (s *memQueues) end(tm *TxMem, committed bool, now int64) []queue.SendParams {
	s.mu.Lock()
	defer s.mu.Unlock()
	var undone []queue.SendParams
	if committed {
		for _, m := range tm.sends {
			if mq := s.queues[m.queue]; mq != nil {
				mq.add(m, now)
			}
		}
		for i := range tm.acks {
			if mq := s.queues[tm.acks[i].Queue]; mq != nil {
				mq.ack(tm.acks[i].Receipts)
			}
		}
	} else {
		for i := len(tm.claims) - 1; i >= 0; i-- {
			c := tm.claims[i]
			mq := s.queues[c.m.queue]
			if mq == nil || mq.byID[c.m.id] != c.m || c.m.readCt != c.readCt+1 {
				continue // claimed again since (its claim expired): not ours to undo
			}
			c.m.readCt, c.m.vt, c.m.claimed = c.readCt, c.vt, c.claimed
			mq.place(c.m, now)
			if !slices.ContainsFunc(undone, func(p queue.SendParams) bool { return p.Queue == c.m.queue }) {
				undone = append(undone, queue.SendParams{Queue: c.m.queue})
			}
		}
	}
	return undone
}

func (mq *memQueue) ack(rs []queue.Receipt) {
	for _, r := range rs {
		if m := mq.find(r); m != nil {
			mq.remove(m)
		}
	}
}

// stats counts a queue's messages at now, and finds the oldest: a walk of
// them all, the one operation that is not O(log n); s.mu is held.
func (mq *memQueue) stats(now time.Time) (visible, claimed, delayed int64, oldest time.Time) {
	mq.promote(now.UnixMicro())
	for _, m := range mq.byID {
		if oldest.IsZero() || m.enqueued.Before(oldest) {
			oldest = m.enqueued
		}
	}
	return int64(mq.ready.Len()), int64(mq.held.Len()), int64(mq.delayed.Len()), oldest
}
