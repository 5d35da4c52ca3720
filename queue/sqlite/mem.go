package sqlite

import (
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
	sortAt   int64 // Unix µs: the claim order's key (queue.PriorityOffset)
	priority int
	claimed  bool // as the claimed column: set by a claim, cleared by a nack
	in       *memHeap
	idx      int
}

func (m *memMsg) message() *queue.Message {
	return &queue.Message{ID: m.id, Queue: m.queue, Body: m.body, ReadCount: m.readCt,
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
	a, b := h.ms[i], h.ms[j]
	if h.byKey && a.sortAt != b.sortAt {
		return a.sortAt < b.sortAt
	}
	if a.vt != b.vt {
		return a.vt < b.vt
	}
	return a.id < b.id
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

// less reports whether a comes before b in claim order.
func claimsBefore(a, b *memMsg) bool {
	if a.sortAt != b.sortAt {
		return a.sortAt < b.sortAt
	}
	if a.vt != b.vt {
		return a.vt < b.vt
	}
	return a.id < b.id
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
// in claim order, taking from pending (messages sent in the caller's
// transaction, not yet in their queues) too. It records the claims of the
// queue's own messages in undo, when undo is not nil.
func (mq *memQueue) claim(name string, max int, now, vt int64, pending []*memMsg, undo *[]memClaim) []*memMsg {
	mq.promote(now)
	// The transaction's own sends that this claim may take, in claim
	// order: sorted once, not searched for each message.
	var own []*memMsg
	for _, c := range pending {
		if c.queue == name && !c.claimed && c.vt <= now {
			own = append(own, c)
		}
	}
	slices.SortFunc(own, func(a, b *memMsg) int {
		if claimsBefore(a, b) {
			return -1
		}
		return 1
	})
	var out []*memMsg
	for len(out) < max {
		m := mq.ready.top()
		var held bool
		switch {
		case len(own) > 0 && (m == nil || claimsBefore(own[0], m)):
			m, own = own[0], own[1:]
		case m != nil:
			heap.Pop(&mq.ready)
			if undo != nil {
				*undo = append(*undo, memClaim{m: m, readCt: m.readCt, vt: m.vt, claimed: m.claimed})
			}
			held = true
		default:
			return out
		}
		m.readCt++
		m.vt, m.claimed = vt, true
		if held {
			mq.place(m, now)
		}
		out = append(out, m)
	}
	return out
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

// newMsg makes a message of p, sent at now; s.mu is held.
func (s *memQueues) newMsgLocked(p *queue.SendParams, now time.Time, aging time.Duration) *memMsg {
	s.next++
	vt := now.Add(p.Delay).UnixMicro()
	return &memMsg{id: s.next, queue: p.Queue, body: slices.Clone(bodyOf(p)), enqueued: now.Truncate(time.Microsecond).UTC(),
		vt: vt, sortAt: vt - queue.PriorityOffset(p.Priority, aging), priority: p.Priority, idx: -1}
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
// its claims if not. It resets tm. The caller wakes the subscribers
// (NotifySent) after a commit.
func (q *Queue) EndTx(tm *TxMem, committed bool) {
	if len(tm.sends)+len(tm.claims)+len(tm.acks) == 0 {
		return
	}
	now := q.clock.Now().UnixMicro()
	s := &q.mem
	s.mu.Lock()
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
		}
	}
	s.mu.Unlock()
	*tm = TxMem{}
}

func (mq *memQueue) ack(rs []queue.Receipt) {
	for _, r := range rs {
		if m := mq.find(r); m != nil {
			mq.remove(m)
		}
	}
}

// memStats counts a queue's messages at now; s.mu is held.
func (mq *memQueue) stats(now time.Time) (visible, claimed, delayed int64, oldest time.Time) {
	mq.promote(now.UnixMicro())
	for _, m := range mq.byID {
		if oldest.IsZero() || m.enqueued.Before(oldest) {
			oldest = m.enqueued
		}
	}
	return int64(mq.ready.Len()), int64(mq.held.Len()), int64(mq.delayed.Len()), oldest
}
