package templatecache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-go/tasker/examples"
	"github.com/tasker-go/tasker/internal/benchutil"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/store"
	storepg "github.com/tasker-go/tasker/store/postgres"
	"github.com/tasker-go/tasker/template"
)

// The #6 benchmark on the real path: the template cache's Get with the
// store loader behind it (a TemplateGet, two queries for "latest", and a
// template.Parse of the stored document: examples/linear.yaml, 4 steps
// and a context schema), against no cache at all.
const (
	storeHotKeys  = 200
	storeColdKeys = 2048 // twice MaxEntries: the mixed load evicts
)

// noCache asks the store on every lookup.
type noCache struct {
	src    Source
	misses atomic.Uint64
}

func (n *noCache) Get(ctx context.Context, ns, name, version string) (*template.Template, error) {
	n.misses.Add(1)
	return n.src.Get(ctx, ns, name, version)
}

func (n *noCache) counts() (uint64, uint64) { return 0, n.misses.Load() }

func openBenchStore(b *testing.B, backend string) store.Store {
	b.Helper()
	if backend == "sqlite" {
		return openSQLite(b)
	}
	if os.Getenv(pgtest.EnvURL) == "" {
		b.Skipf("%s is not set", pgtest.EnvURL)
	}
	_, url := pgtest.Schema(b)
	st, err := storepg.Open(context.Background(), storepg.Config{URL: url, AutoMigrate: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// putBenchTemplates stores the hot and cold templates, registered as from
// files: the document is linear.yaml under another name.
func putBenchTemplates(b *testing.B, st store.Store) (hot, cold []key) {
	b.Helper()
	doc, err := examples.FS.ReadFile("linear.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var recs []*store.Template
	add := func(k key, version string) {
		text := strings.Replace(strings.Replace(string(doc), "name: linear_workflow", "name: "+k.name, 1),
			"namespace: demo", "namespace: "+k.namespace, 1)
		text = strings.Replace(text, "version: 1.0.0", "version: "+version, 1)
		tp, err := template.Parse(k.name+".yaml", []byte(text))
		if err != nil {
			b.Fatal(err)
		}
		rec := record(b, tp, "bench")
		rec.Source, rec.SourceName = []byte(text), tp.Source
		recs = append(recs, rec)
	}
	for i := range storeHotKeys {
		k := key{fmt.Sprintf("ns%d", i%10), fmt.Sprintf("workflow_%d", i/10), "1.0.0"}
		add(k, "1.0.0")
		if i%4 == 0 {
			add(k, "1.1.0")
			k.version = "" // latest: 1.1.0
		}
		hot = append(hot, k)
	}
	for i := range storeColdKeys {
		k := key{"cold", fmt.Sprintf("rare_%d", i), "1.0.0"}
		add(k, "1.0.0")
		cold = append(cold, k)
	}
	putTemplates(b, st, recs...)
	return hot, cold
}

// BenchmarkTemplateResolve: hit, every lookup of ~200 hot keys (a quarter
// of them "latest"), all cached after warm-up; mixed, 5% of the lookups
// to 2048 cold keys instead, which miss, load, insert and evict. On
// SQLite always, on PostgreSQL when TASKER_TEST_POSTGRES_URL is set.
func BenchmarkTemplateResolve(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			st := openBenchStore(b, backend)
			hot, cold := putBenchTemplates(b, st)
			src := StoreSource(st)
			cands := []struct {
				name string
				new  func() candidate
			}{
				{"nocache", func() candidate { return &noCache{src: src} }},
				{"rwmutex_lru", func() candidate { return newLRU(src, benchSize, time.Minute) }},
				{"xsync_clock", func() candidate {
					m, err := New(src, Config{MaxEntries: benchSize, TTL: time.Minute})
					if err != nil {
						b.Fatal(err)
					}
					return m
				}},
			}
			ctx := context.Background()
			for _, load := range []string{"hit", "mixed"} {
				for _, c := range cands {
					for _, g := range []int{1, 16} {
						b.Run(fmt.Sprintf("%s/%s/g%d", load, c.name, g), func(b *testing.B) {
							cache := c.new()
							for _, k := range hot {
								if _, err := cache.Get(ctx, k.namespace, k.name, k.version); err != nil {
									b.Fatal(err)
								}
							}
							h0, m0 := cache.counts()
							b.ResetTimer()
							benchutil.RunG(b, g, func(id uint64, next func() bool) {
								r := rand.New(rand.NewPCG(id, 0x9e3779b97f4a7c15))
								for next() {
									k := hot[r.IntN(len(hot))]
									if load == "mixed" && r.IntN(100) < missPct {
										k = cold[r.IntN(len(cold))]
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
		})
	}
}

// BenchmarkTemplateLoad splits a miss (the nocache figure) into the store
// read of one exact version and the parse of its document.
func BenchmarkTemplateLoad(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			st := openBenchStore(b, backend)
			hot, _ := putBenchTemplates(b, st)
			ctx := context.Background()
			p := &store.TemplateGetParams{Namespace: hot[1].namespace, Name: hot[1].name, Version: hot[1].version}
			rec, err := st.TemplateGet(ctx, p)
			if err != nil {
				b.Fatal(err)
			}
			b.Run("read", func(b *testing.B) {
				for b.Loop() {
					if _, err := st.TemplateGet(ctx, p); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parse", func(b *testing.B) {
				for b.Loop() {
					if _, err := template.Parse(rec.SourceName, rec.Source); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
