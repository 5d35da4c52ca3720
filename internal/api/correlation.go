package api

import (
	"sync"

	"github.com/google/uuid"
)

// correlationCache remembers the correlation ids of the tasks whose steps
// pull workers polled lately, so that a task's later steps do not read its
// row again (a task's correlation ids never change once it is created).
// Bounded: two generations of at most size entries each; when the current
// one is full it becomes the previous one and the oldest is dropped.
type correlationCache struct {
	mu        sync.Mutex // never held across I/O
	size      int
	cur, prev map[uuid.UUID]correlationIDs
}

// correlationIDs are a task's correlation ids (uuid.Nil: none).
type correlationIDs struct{ id, parent uuid.UUID }

// defaultCorrelationCache is the entries of one generation: at least the
// tasks whose steps a channel of several thousand events holds at once.
const defaultCorrelationCache = 4096

func newCorrelationCache(size int) *correlationCache {
	return &correlationCache{size: size, cur: make(map[uuid.UUID]correlationIDs)}
}

func (c *correlationCache) get(task uuid.UUID) (correlationIDs, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[task]; ok {
		return v, true
	}
	v, ok := c.prev[task]
	return v, ok
}

func (c *correlationCache) put(task uuid.UUID, v correlationIDs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= c.size {
		c.prev, c.cur = c.cur, make(map[uuid.UUID]correlationIDs, c.size)
	}
	c.cur[task] = v
}
