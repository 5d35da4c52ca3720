package statemanager

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newCache(t testing.TB, max int, load func(context.Context, int) (string, error)) *Cache[int, string] {
	t.Helper()
	c, err := New(Config[int, string]{MaxEntries: max, Load: load})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGetOrCreate(t *testing.T) {
	t.Run("a miss loads once and a hit does not load", func(t *testing.T) {
		var loads atomic.Int32
		c := newCache(t, 10, func(_ context.Context, k int) (string, error) {
			loads.Add(1)
			return fmt.Sprint("v", k), nil
		})
		for range 3 {
			if v, err := c.Get(t.Context(), 1); err != nil || v != "v1" {
				t.Fatalf("Get = %q, %v", v, err)
			}
		}
		if n := loads.Load(); n != 1 {
			t.Fatalf("%d loads, want 1", n)
		}
		s := c.Stats()
		if s.Hits != 2 || s.Misses != 1 || s.Loads != 1 || s.HitRatio() < 0.6 {
			t.Fatalf("stats %+v", s)
		}
	})

	t.Run("concurrent misses of one key load once", func(t *testing.T) {
		var loads atomic.Int32
		release := make(chan struct{})
		c := newCache(t, 10, func(_ context.Context, k int) (string, error) {
			loads.Add(1)
			<-release
			return "v", nil
		})
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if v, err := c.Get(t.Context(), 7); err != nil || v != "v" {
					t.Errorf("Get = %q, %v", v, err)
				}
			})
		}
		time.Sleep(20 * time.Millisecond)
		close(release)
		wg.Wait()
		if n := loads.Load(); n != 1 {
			t.Fatalf("%d loads for one key, want 1", n)
		}
	})

	t.Run("a hit does not wait for another key's miss", func(t *testing.T) {
		release := make(chan struct{})
		c := newCache(t, 10, func(_ context.Context, k int) (string, error) {
			if k == 2 {
				<-release
			}
			return fmt.Sprint(k), nil
		})
		if _, err := c.Get(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		go c.Get(context.Background(), 2) // a slow miss in flight
		done := make(chan struct{})
		go func() {
			c.Get(t.Context(), 1)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(time.Second):
			t.Fatal("a hit waited for another key's load")
		}
		close(release)
		for c.Stats().Entries < 2 {
			time.Sleep(time.Millisecond)
		}
	})

	t.Run("a failed load is not cached", func(t *testing.T) {
		fail := errors.New("store down")
		var calls atomic.Int32
		c := newCache(t, 10, func(context.Context, int) (string, error) {
			if calls.Add(1) == 1 {
				return "", fail
			}
			return "ok", nil
		})
		if _, err := c.Get(t.Context(), 1); !errors.Is(err, fail) {
			t.Fatalf("first Get: %v, want the load's error", err)
		}
		if v, err := c.Get(t.Context(), 1); err != nil || v != "ok" {
			t.Fatalf("second Get = %q, %v: the failure was cached", v, err)
		}
	})

	t.Run("the cache is bounded and counts evictions", func(t *testing.T) {
		c := newCache(t, 50, func(_ context.Context, k int) (string, error) { return "v", nil })
		for k := range 1000 {
			c.Put(k, "v")
		}
		// otter applies the bound as it maintains itself; give it a moment.
		deadline := time.Now().Add(2 * time.Second)
		for c.Stats().Entries > 50 && time.Now().Before(deadline) {
			c.Put(-1, "v")
			time.Sleep(time.Millisecond)
		}
		if s := c.Stats(); s.Entries > 50 || s.Evictions == 0 {
			t.Fatalf("stats %+v: want at most 50 entries and evictions counted", s)
		}
	})

	t.Run("put replaces and invalidate drops", func(t *testing.T) {
		c := newCache(t, 10, func(_ context.Context, k int) (string, error) { return "loaded", nil })
		c.Put(1, "put")
		if v, _ := c.Get(t.Context(), 1); v != "put" {
			t.Fatalf("after Put: %q", v)
		}
		c.Invalidate(1)
		if v, _ := c.Get(t.Context(), 1); v != "loaded" {
			t.Fatalf("after Invalidate: %q, want a fresh load", v)
		}
	})

	t.Run("a bad configuration names what is wrong", func(t *testing.T) {
		if _, err := New(Config[int, string]{MaxEntries: 0, Load: func(context.Context, int) (string, error) { return "", nil }}); !errors.Is(err, ErrConfig) {
			t.Errorf("MaxEntries 0: %v", err)
		}
		if _, err := New(Config[int, string]{MaxEntries: 1}); !errors.Is(err, ErrConfig) {
			t.Errorf("no Load: %v", err)
		}
	})
}

func TestStressGetPutInvalidate(t *testing.T) {
	var loads atomic.Int64
	c := newCache(t, 64, func(_ context.Context, k int) (string, error) {
		loads.Add(1)
		return fmt.Sprint(k), nil
	})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 5000 {
				k := (i*7 + g) % 200
				switch i % 10 {
				case 0:
					c.Invalidate(k)
				case 1:
					c.Put(k, fmt.Sprint(k))
				default:
					v, err := c.Get(context.Background(), k)
					if err != nil || v != fmt.Sprint(k) {
						t.Errorf("Get(%d) = %q, %v", k, v, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	s := c.Stats()
	if s.Loads != uint64(loads.Load()) || s.Hits+s.Misses == 0 {
		t.Fatalf("stats %+v, loads counted %d", s, loads.Load())
	}
}
