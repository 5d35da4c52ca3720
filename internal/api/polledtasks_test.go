package api

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/uuid"
)

// The cache remembers what it was given, and never holds more than two
// generations: the oldest tasks are forgotten (and read again if polled).
func TestPolledTasksIsBounded(t *testing.T) {
	c := newPolledTasks(4)
	ids := make([]uuid.UUID, 20)
	for i := range ids {
		ids[i] = uuid.New()
		c.addRoot(ids[i], "a")
		if n := len(c.cur) + len(c.prev); n > 8 {
			t.Fatalf("after %d tasks the cache holds %d, over 2 x 4", i+1, n)
		}
	}
	a := map[string]json.RawMessage{"a": json.RawMessage("null")}
	if !c.onlyRoots(ids[19], a) {
		t.Fatal("the newest task is forgotten")
	}
	if !c.onlyRoots(ids[16], a) {
		t.Fatal("a task of the previous generation is forgotten")
	}
	if c.onlyRoots(ids[0], a) {
		t.Fatal("the oldest task is still remembered past two generations")
	}
	task := uuid.New()
	for i := range 2 * maxRoots {
		c.addRoot(task, fmt.Sprint("root", i))
	}
	if n := len(*c.entryLocked(task, false)); n != maxRoots {
		t.Fatalf("a task keeps %d root names, want the bound %d", n, maxRoots)
	}
}

// Only dependencies all known to have none of their own skip the read of
// the ancestors; anything unknown reads them.
func TestPolledTasksOnlyRoots(t *testing.T) {
	c := newPolledTasks(16)
	task, other := uuid.New(), uuid.New()
	deps := func(names ...string) map[string]json.RawMessage {
		m := map[string]json.RawMessage{}
		for _, n := range names {
			m[n] = json.RawMessage("null")
		}
		return m
	}
	if c.onlyRoots(task, deps("a")) {
		t.Fatal("an unknown task: its ancestors must be read")
	}
	c.addRoot(task, "a")
	c.addRoot(task, "b")
	for _, tc := range []struct {
		task uuid.UUID
		deps map[string]json.RawMessage
		want bool
	}{
		{task, deps("a"), true},
		{task, deps("a", "b"), true},
		{task, deps("a", "c"), false}, // c may have dependencies
		{task, deps(), false},
		{other, deps("a"), false}, // another task's a
	} {
		if got := c.onlyRoots(tc.task, tc.deps); got != tc.want {
			t.Errorf("onlyRoots(%v, %v) = %v, want %v", tc.task == task, tc.deps, got, tc.want)
		}
	}
}
