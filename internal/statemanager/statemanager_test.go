package statemanager

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCache(t testing.TB, max int) *Cache[int, string] {
	t.Helper()
	c, err := New[int, string](Config{MaxEntries: max})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCache(t *testing.T) {
	t.Run("peek finds what put stored and invalidate drops it", func(t *testing.T) {
		c := newCache(t, 10)
		if _, ok := c.Peek(1); ok {
			t.Fatal("Peek of an empty cache found a value")
		}
		c.Put(1, "a")
		c.Put(1, "b")
		if v, ok := c.Peek(1); !ok || v != "b" {
			t.Fatalf("Peek after Put = %q, %v; want the last value", v, ok)
		}
		c.Invalidate(1)
		if _, ok := c.Peek(1); ok {
			t.Fatal("Peek after Invalidate found a value")
		}
	})

	t.Run("count records hits and misses, peek does not", func(t *testing.T) {
		c := newCache(t, 10)
		c.Put(1, "a")
		c.Peek(1)
		c.Peek(2)
		c.Count(true)
		c.Count(true)
		c.Count(false)
		if s := c.Stats(); s.Hits != 2 || s.Misses != 1 || s.HitRatio() < 0.6 || s.HitRatio() > 0.7 {
			t.Fatalf("stats %+v", s)
		}
		if r := (Stats{}).HitRatio(); r != 0 {
			t.Fatalf("HitRatio before any lookup = %v", r)
		}
	})

	t.Run("the cache is bounded and counts evictions", func(t *testing.T) {
		c := newCache(t, 50)
		for k := range 1000 {
			c.Put(k, "v")
		}
		if s := c.Stats(); s.Entries != 50 || s.Evictions != 950 {
			t.Fatalf("stats %+v: want 50 entries and 950 evictions", s)
		}
		c.Put(999, "w") // replacing evicts nothing
		if s := c.Stats(); s.Entries != 50 || s.Evictions != 950 {
			t.Fatalf("after a replacement: stats %+v", s)
		}
	})

	t.Run("a bad configuration names what is wrong", func(t *testing.T) {
		if _, err := New[int, string](Config{MaxEntries: 0}); !errors.Is(err, ErrConfig) {
			t.Errorf("MaxEntries 0: %v", err)
		}
	})
}

// TestStressPeekPutInvalidate runs orchestration's operations from many
// goroutines at once (under -race): a value found is always one put for its
// key.
func TestStressPeekPutInvalidate(t *testing.T) {
	c := newCache(t, 64)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 5000 {
				k := (i*7 + g) % 200
				switch i % 10 {
				case 0:
					c.Invalidate(k)
				case 1, 2:
					c.Put(k, fmt.Sprint(k))
				default:
					v, ok := c.Peek(k)
					c.Count(ok)
					if ok && v != fmt.Sprint(k) {
						t.Errorf("Peek(%d) = %q", k, v)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if s := c.Stats(); s.Hits+s.Misses == 0 || s.Hits == 0 {
		t.Fatalf("stats %+v", s)
	}
}
