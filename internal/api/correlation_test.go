package api

import (
	"testing"

	"github.com/google/uuid"
)

// The cache remembers what it was given, and never holds more than two
// generations: the oldest tasks are forgotten (and read again if polled).
func TestCorrelationCacheIsBounded(t *testing.T) {
	c := newCorrelationCache(4)
	ids := make([]uuid.UUID, 20)
	for i := range ids {
		ids[i] = uuid.New()
		c.put(ids[i], correlationIDs{id: ids[i]})
		if n := len(c.cur) + len(c.prev); n > 8 {
			t.Fatalf("after %d puts the cache holds %d entries, over 2 x 4", i+1, n)
		}
	}
	if v, ok := c.get(ids[19]); !ok || v.id != ids[19] {
		t.Fatalf("the newest task: %v, %v", v, ok)
	}
	if v, ok := c.get(ids[16]); !ok || v.id != ids[16] {
		t.Fatalf("a task of the previous generation: %v, %v", v, ok)
	}
	if _, ok := c.get(ids[0]); ok {
		t.Fatal("the oldest task is still remembered past two generations")
	}
}
