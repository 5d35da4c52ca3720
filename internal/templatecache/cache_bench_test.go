package templatecache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/benchutil"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// slowSource answers from a map after spinning for cost, as a database
// read would take its time (without the scheduler's help: a sleep of 1µs
// costs far more than 1µs).
type slowSource struct {
	m    map[key]*template.Template
	cost time.Duration
}

func (s *slowSource) Get(_ context.Context, ns, name, version string) (*template.Template, error) {
	start := time.Now()
	for time.Since(start) < s.cost {
	}
	if t, ok := s.m[key{ns, name, version}]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("template %s/%s@%s: %w", ns, name, version, taskertype.ErrNotFound)
}

const (
	hotKeys   = 200
	coldKeys  = 1 << 16
	missPct   = 5
	benchSize = DefaultMaxEntries
)

func benchKeys() (hot, cold []key, src *slowSource) {
	src = &slowSource{m: map[key]*template.Template{}, cost: time.Microsecond}
	add := func(k key) {
		v := k.version
		if v == "" {
			v = "2.0.0"
		}
		src.m[k] = &template.Template{Namespace: k.namespace, Name: k.name, Version: v}
	}
	for i := range hotKeys {
		k := key{fmt.Sprintf("ns%d", i%10), fmt.Sprintf("workflow_%d", i/10), "1.0.0"}
		if i%4 == 0 {
			k.version = "" // latest
		}
		hot = append(hot, k)
		add(k)
	}
	for i := range coldKeys {
		k := key{"cold", fmt.Sprintf("rare_%d", i), "1.0.0"}
		cold = append(cold, k)
		add(k)
	}
	return hot, cold, src
}

// BenchmarkTemplateCache: 95% of lookups go to ~200 hot keys (all cached
// after warm-up), 5% to 65536 cold keys that miss, load from the ~1µs
// source, insert and evict. hit% is the share of lookups answered from the
// cache (the size bound's policy shows in it).
func BenchmarkTemplateCache(b *testing.B) {
	hot, cold, src := benchKeys()
	type cand struct {
		name string
		new  func() (candidate, func())
	}
	cands := []cand{
		{"rwmutex_lru", func() (candidate, func()) { return newLRU(src, benchSize, time.Minute), func() {} }},
		{"xsync_clock", func() (candidate, func()) {
			m, err := New(src, Config{MaxEntries: benchSize, TTL: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			return m, func() {}
		}},
		{"otter", func() (candidate, func()) { o := newOtter(src, benchSize, time.Minute); return o, o.close }},
		{"cow", func() (candidate, func()) { return newCOW(src, benchSize, time.Minute), func() {} }},
	}
	ctx := context.Background()
	for _, c := range cands {
		for _, g := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/g%d", c.name, g), func(b *testing.B) {
				cache, closeFn := c.new()
				defer closeFn()
				for range 3 {
					for _, k := range hot {
						if _, err := cache.Get(ctx, k.namespace, k.name, k.version); err != nil {
							b.Fatal(err)
						}
					}
				}
				h0, m0 := cache.counts()
				b.ResetTimer()
				benchutil.RunG(b, g, func(id uint64, next func() bool) {
					r := rand.New(rand.NewPCG(id, 0x9e3779b97f4a7c15))
					for next() {
						k := hot[r.IntN(hotKeys)]
						if r.IntN(100) < missPct {
							k = cold[r.IntN(coldKeys)]
						}
						if _, err := cache.Get(ctx, k.namespace, k.name, k.version); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				h, m := cache.counts()
				if n := (h - h0) + (m - m0); n > 0 {
					b.ReportMetric(100*float64(h-h0)/float64(n), "hit%")
				}
			})
		}
	}
}

// BenchmarkTemplateCacheHit isolates the hit path: every lookup is of one
// of the ~200 hot keys, all cached.
func BenchmarkTemplateCacheHit(b *testing.B) {
	hot, _, src := benchKeys()
	cands := []struct {
		name string
		new  func() (candidate, func())
	}{
		{"rwmutex_lru", func() (candidate, func()) { return newLRU(src, benchSize, time.Minute), func() {} }},
		{"xsync_clock", func() (candidate, func()) {
			m, _ := New(src, Config{MaxEntries: benchSize, TTL: time.Minute})
			return m, func() {}
		}},
		{"otter", func() (candidate, func()) { o := newOtter(src, benchSize, time.Minute); return o, o.close }},
		{"cow", func() (candidate, func()) { return newCOW(src, benchSize, time.Minute), func() {} }},
	}
	ctx := context.Background()
	for _, c := range cands {
		for _, g := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/g%d", c.name, g), func(b *testing.B) {
				cache, closeFn := c.new()
				defer closeFn()
				for _, k := range hot {
					cache.Get(ctx, k.namespace, k.name, k.version)
				}
				b.ResetTimer()
				benchutil.RunG(b, g, func(id uint64, next func() bool) {
					i := int(id * 7919)
					for next() {
						k := &hot[i%hotKeys]
						i++
						if _, err := cache.Get(ctx, k.namespace, k.name, k.version); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
