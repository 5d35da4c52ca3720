package dispatch

import "sync"

// fifo is the poll queue: events dispatched and not yet polled, oldest
// first. It is an intrusive doubly linked list so that a Handle whose ctx
// ends can take its event out in O(1). Its length is bounded by the
// semaphore (every entry holds a slot), so it needs no bound of its own.
// Every method holds mu only for pointer updates: nothing blocks under it.
type fifo struct {
	mu         sync.Mutex
	head, tail *entry
	n          int
	closed     bool // set by Close: push refuses
}

// push appends e; false if the channel is closed.
func (q *fifo) push(e *entry) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	e.linked = true
	e.prev, e.next = q.tail, nil
	if q.tail == nil {
		q.head = e
	} else {
		q.tail.next = e
	}
	q.tail = e
	q.n++
	return true
}

// pop unlinks the oldest entry (nil if none) and reports whether more
// remain.
func (q *fifo) pop() (e *entry, more bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e = q.head
	if e == nil {
		return nil, false
	}
	q.unlinkLocked(e)
	return e, q.n > 0
}

// remove unlinks e if it is still queued.
func (q *fifo) remove(e *entry) {
	q.mu.Lock()
	if e.linked {
		q.unlinkLocked(e)
	}
	q.mu.Unlock()
}

func (q *fifo) unlinkLocked(e *entry) {
	if e.prev == nil {
		q.head = e.next
	} else {
		e.prev.next = e.next
	}
	if e.next == nil {
		q.tail = e.prev
	} else {
		e.next.prev = e.prev
	}
	e.prev, e.next, e.linked = nil, nil, false
	q.n--
}

// close makes push refuse from now on.
func (q *fifo) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// takeFirst unlinks the oldest entry that ok accepts (nil if none). The
// walk is bounded by the queue's length, itself bounded by Capacity.
func (q *fifo) takeFirst(ok func(e *entry) bool) *entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	for e := q.head; e != nil; e = e.next {
		if ok(e) {
			q.unlinkLocked(e)
			return e
		}
	}
	return nil
}
