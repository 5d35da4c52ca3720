package api

import (
	"encoding/json"
	"slices"
	"sync"

	"github.com/google/uuid"
)

// polledTasks remembers, for the tasks whose steps pull workers polled
// lately, what the pull route would otherwise read again for each of
// their steps: the names of its steps without dependencies that were
// polled (a step's dependencies never change). A step whose
// dependencies are all such steps has no ancestor beyond them, so their
// results, which come with its input, are all it needs: no read.
//
// Bounded: two generations of at most size tasks each (when the current
// one is full it becomes the previous one and the older is dropped), and
// at most maxRoots names a task. A task forgotten is read again.
type polledTasks struct {
	mu        sync.Mutex // never held across I/O
	size      int
	cur, prev map[uuid.UUID]*polledTask
}

// polledTask is what polledTasks knows of one task: its steps without
// dependencies that were polled, at most maxRoots.
type polledTask []string

const (
	// defaultPolledTasks is the tasks of one generation: at least the
	// tasks whose steps a channel of several thousand events holds at once.
	defaultPolledTasks = 4096
	maxRoots           = 32
)

func newPolledTasks(size int) *polledTasks {
	return &polledTasks{size: size, cur: make(map[uuid.UUID]*polledTask)}
}

// entryLocked returns task's entry in the current generation (moved from
// the previous one, or made), or nil with create false and none known.
func (c *polledTasks) entryLocked(task uuid.UUID, create bool) *polledTask {
	if t, ok := c.cur[task]; ok {
		return t
	}
	t, ok := c.prev[task]
	if !ok && !create {
		return nil
	}
	if !ok {
		t = &polledTask{}
	}
	if len(c.cur) >= c.size {
		c.prev, c.cur = c.cur, make(map[uuid.UUID]*polledTask, c.size)
	}
	delete(c.prev, task)
	c.cur[task] = t
	return t
}

// addRoot records that step name of task has no dependencies.
func (c *polledTasks) addRoot(task uuid.UUID, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.entryLocked(task, true)
	if len(*t) < maxRoots && !slices.Contains(*t, name) {
		*t = append(*t, name)
	}
}

// onlyRoots reports whether every step named in deps is a step of task
// known to have no dependencies.
func (c *polledTasks) onlyRoots(task uuid.UUID, deps map[string]json.RawMessage) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.entryLocked(task, false)
	if t == nil || len(deps) == 0 || len(deps) > len(*t) {
		return false
	}
	for name := range deps {
		if !slices.Contains(*t, name) {
			return false
		}
	}
	return true
}
