package templatecache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/testclock"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

var start = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func tmpl(ns, name, version string) *template.Template {
	return &template.Template{
		Namespace: ns, Name: name, Version: version,
		Steps: []template.Step{{Name: "a", Handler: "h", Retry: template.DefaultRetry(), Timeout: time.Second}},
	}
}

// countingSource wraps a registry and counts its calls; block, when set,
// holds every call until it is closed or the call's ctx ends.
type countingSource struct {
	reg   *template.Registry
	calls atomic.Int64
	block chan struct{}
	enter chan struct{} // receives once per call, if set
}

func (s *countingSource) Get(ctx context.Context, ns, name, version string) (*template.Template, error) {
	s.calls.Add(1)
	if s.enter != nil {
		s.enter <- struct{}{}
	}
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.reg.Get(ns, name, version)
}

func newRegistry(t *testing.T, ts ...*template.Template) *template.Registry {
	t.Helper()
	r := template.NewRegistry()
	for _, x := range ts {
		if err := r.Add(x); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func newManager(t *testing.T, src Source, cfg Config) (*Manager, *testclock.Clock) {
	t.Helper()
	clock := testclock.New(start)
	if cfg.Clock == nil {
		cfg.Clock = clock
	}
	m, err := New(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, clock
}

func TestConfigErrors(t *testing.T) {
	src := RegistrySource(template.NewRegistry())
	cases := []struct {
		src   Source
		cfg   Config
		field string
	}{
		{src, Config{MaxEntries: -1}, "MaxEntries"},
		{src, Config{TTL: -time.Second}, "TTL"},
		{nil, Config{}, "Source"},
	}
	for _, c := range cases {
		_, err := New(c.src, c.cfg)
		if !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), c.field) || !strings.Contains(err.Error(), "give") {
			t.Errorf("%s: %v", c.field, err)
		}
	}
	m, err := New(src, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if m.max != DefaultMaxEntries || m.ttl != DefaultTTL || !m.monotonic {
		t.Fatalf("defaults: max %d ttl %s monotonic %v", m.max, m.ttl, m.monotonic)
	}
}

func TestHitsMissesAndExactKeys(t *testing.T) {
	ctx := t.Context()
	src := &countingSource{reg: newRegistry(t, tmpl("ns", "a", "1.0.0"), tmpl("ns", "a", "1.1.0"))}
	m, _ := newManager(t, src, Config{})
	for range 3 {
		got, err := m.Get(ctx, "ns", "a", "1.0.0")
		if err != nil || got.Version != "1.0.0" {
			t.Fatalf("Get 1.0.0 = %v, %v", got, err)
		}
		got, err = m.Get(ctx, "ns", "a", "")
		if err != nil || got.Version != "1.1.0" {
			t.Fatalf("Get latest = %v, %v", got, err)
		}
	}
	st := m.Stats()
	if st.Hits != 4 || st.Misses != 2 || st.Loads != 2 || st.Entries != 2 || src.calls.Load() != 2 {
		t.Fatalf("stats %+v, source calls %d", st, src.calls.Load())
	}
}

func TestLatestRefreshesAfterTTL(t *testing.T) {
	ctx := t.Context()
	reg := newRegistry(t, tmpl("ns", "a", "1.0.0"))
	m, clock := newManager(t, RegistrySource(reg), Config{TTL: time.Minute})
	if got, _ := m.Get(ctx, "ns", "a", ""); got.Version != "1.0.0" {
		t.Fatal(got.Version)
	}
	if err := reg.Add(tmpl("ns", "a", "1.1.0")); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute - time.Nanosecond)
	if got, _ := m.Get(ctx, "ns", "a", ""); got.Version != "1.0.0" {
		t.Fatalf("before TTL: %s, want the cached 1.0.0", got.Version)
	}
	clock.Advance(time.Nanosecond)
	if got, _ := m.Get(ctx, "ns", "a", ""); got.Version != "1.1.0" {
		t.Fatalf("after TTL: %s, want 1.1.0", got.Version)
	}
	if st := m.Stats(); st.Entries != 1 || st.Evictions != 0 {
		t.Fatalf("an expired entry is replaced in place: %+v", st)
	}
}

func TestErrorsAreNotCached(t *testing.T) {
	ctx := t.Context()
	reg := newRegistry(t, tmpl("ns", "a", "1.0.0"))
	m, _ := newManager(t, RegistrySource(reg), Config{})
	_, err := m.Get(ctx, "ns", "b", "")
	if !errors.Is(err, taskertype.ErrNotFound) || !strings.Contains(err.Error(), "known templates") {
		t.Fatalf("unknown template: %v", err)
	}
	if err := reg.Add(tmpl("ns", "b", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Get(ctx, "ns", "b", ""); err != nil || got.Name != "b" {
		t.Fatalf("after registering it: %v, %v", got, err)
	}
	if st := m.Stats(); st.Entries != 1 || st.Loads != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNilTemplateIsAnError(t *testing.T) {
	m, _ := newManager(t, sourceFunc(func(context.Context, string, string, string) (*template.Template, error) {
		return nil, nil
	}), Config{})
	if _, err := m.Get(t.Context(), "ns", "a", ""); !errors.Is(err, errNilTemplate) {
		t.Fatal(err)
	}
}

type sourceFunc func(ctx context.Context, ns, name, version string) (*template.Template, error)

func (f sourceFunc) Get(ctx context.Context, ns, name, version string) (*template.Template, error) {
	return f(ctx, ns, name, version)
}

func TestConcurrentMissesLoadOnce(t *testing.T) {
	ctx := t.Context()
	src := &countingSource{reg: newRegistry(t, tmpl("ns", "a", "1.0.0")), block: make(chan struct{}), enter: make(chan struct{}, 1)}
	m, _ := newManager(t, src, Config{})
	const n = 32
	var wg sync.WaitGroup
	results := make([]*template.Template, n)
	wg.Go(func() {
		results[0], _ = m.Get(ctx, "ns", "a", "")
	})
	<-src.enter // the first load is in the source
	for i := 1; i < n; i++ {
		wg.Go(func() {
			results[i], _ = m.Get(ctx, "ns", "a", "")
		})
	}
	// Let the others join the flight (they would find it cached otherwise:
	// the test holds the load until they wait on it).
	waitFor(t, func() bool { return m.Stats().Misses == n })
	close(src.block)
	wg.Wait()
	for i, r := range results {
		if r == nil || r != results[0] {
			t.Fatalf("caller %d got %v", i, r)
		}
	}
	if c := src.calls.Load(); c != 1 {
		t.Fatalf("%d loads for one key, want 1", c)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWaiterStopsOnItsOwnContext(t *testing.T) {
	src := &countingSource{reg: newRegistry(t, tmpl("ns", "a", "1.0.0")), block: make(chan struct{}), enter: make(chan struct{}, 1)}
	m, _ := newManager(t, src, Config{})
	leaderDone := make(chan error)
	go func() {
		_, err := m.Get(context.Background(), "ns", "a", "")
		leaderDone <- err
	}()
	<-src.enter
	ctx, cancel := context.WithCancel(context.Background())
	waiterDone := make(chan error)
	go func() {
		_, err := m.Get(ctx, "ns", "a", "")
		waiterDone <- err
	}()
	waitFor(t, func() bool { return m.Stats().Misses == 2 })
	cancel()
	if err := <-waiterDone; !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "ns/a") {
		t.Fatalf("waiter: %v", err)
	}
	close(src.block)
	if err := <-leaderDone; err != nil {
		t.Fatalf("leader: %v", err)
	}
	if _, err := m.Get(ctx, "ns", "a", ""); err != nil {
		t.Fatalf("a hit with a done ctx: %v", err)
	}
}

func TestLeaderGivingUpDoesNotFailTheOthers(t *testing.T) {
	src := &countingSource{reg: newRegistry(t, tmpl("ns", "a", "1.0.0")), block: make(chan struct{}), enter: make(chan struct{}, 2)}
	m, _ := newManager(t, src, Config{})
	lctx, cancel := context.WithCancel(context.Background())
	leaderDone := make(chan error)
	go func() {
		_, err := m.Get(lctx, "ns", "a", "")
		leaderDone <- err
	}()
	<-src.enter
	waiterDone := make(chan error)
	go func() {
		_, err := m.Get(context.Background(), "ns", "a", "")
		waiterDone <- err
	}()
	waitFor(t, func() bool { return m.Stats().Misses == 2 })
	cancel()
	if err := <-leaderDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v", err)
	}
	<-src.enter // the waiter loads again, under its own ctx
	close(src.block)
	if err := <-waiterDone; err != nil {
		t.Fatalf("waiter failed with the leader's cancellation: %v", err)
	}
	if st := m.Stats(); st.Loads != 2 || st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDoneContextDoesNotLoad(t *testing.T) {
	src := &countingSource{reg: newRegistry(t, tmpl("ns", "a", "1.0.0"))}
	m, _ := newManager(t, src, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Get(ctx, "ns", "a", ""); !errors.Is(err, context.Canceled) || src.calls.Load() != 0 {
		t.Fatalf("err %v, calls %d", err, src.calls.Load())
	}
}

func TestSourcePanic(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	entered := make(chan struct{})
	m, _ := newManager(t, sourceFunc(func(context.Context, string, string, string) (*template.Template, error) {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
			panic("source bug")
		}
		return tmpl("ns", "a", "1.0.0"), nil
	}), Config{})
	leader := make(chan any)
	go func() {
		defer func() { leader <- recover() }()
		m.Get(context.Background(), "ns", "a", "")
	}()
	<-entered
	waiter := make(chan error)
	go func() {
		_, err := m.Get(context.Background(), "ns", "a", "")
		waiter <- err
	}()
	waitFor(t, func() bool { return m.Stats().Misses == 2 })
	close(release)
	if p := <-leader; p != "source bug" {
		t.Fatalf("the leader's panic: %v", p)
	}
	if err := <-waiter; err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("waiter: %v", err)
	}
	if _, err := m.Get(context.Background(), "ns", "a", ""); err != nil {
		t.Fatalf("after the panic: %v", err)
	}
}

func TestInvalidate(t *testing.T) {
	ctx := t.Context()
	src := &countingSource{reg: newRegistry(t, tmpl("ns", "a", "1.0.0"), tmpl("ns", "a", "2.0.0"), tmpl("ns", "b", "1.0.0"), tmpl("other", "a", "1.0.0"))}
	m, _ := newManager(t, src, Config{})
	keys := [][3]string{{"ns", "a", "1.0.0"}, {"ns", "a", "2.0.0"}, {"ns", "a", ""}, {"ns", "b", "1.0.0"}, {"other", "a", "1.0.0"}}
	for _, k := range keys {
		if _, err := m.Get(ctx, k[0], k[1], k[2]); err != nil {
			t.Fatal(err)
		}
	}
	m.Invalidate("ns", "a")
	if st := m.Stats(); st.Entries != 2 {
		t.Fatalf("after Invalidate(ns, a): %d entries, want 2", st.Entries)
	}
	before := src.calls.Load()
	for _, k := range keys {
		m.Get(ctx, k[0], k[1], k[2])
	}
	if got := src.calls.Load() - before; got != 3 {
		t.Fatalf("%d loads after Invalidate, want the 3 versions of ns/a", got)
	}
}

func TestInvalidateDuringLoadIsNotCached(t *testing.T) {
	reg := newRegistry(t, tmpl("ns", "a", "1.0.0"))
	src := &countingSource{reg: reg, block: make(chan struct{}), enter: make(chan struct{}, 2)}
	m, _ := newManager(t, src, Config{})
	done := make(chan *template.Template)
	go func() {
		got, _ := m.Get(context.Background(), "ns", "a", "")
		done <- got
	}()
	<-src.enter
	m.Invalidate("ns", "a") // e.g. 1.1.0 was just stored at the source
	// A Get after the Invalidate does not join the load from before it.
	done2 := make(chan *template.Template)
	go func() {
		got, _ := m.Get(context.Background(), "ns", "a", "")
		done2 <- got
	}()
	<-src.enter
	close(src.block)
	<-done
	<-done2
	if st := m.Stats(); st.Loads != 2 {
		t.Fatalf("stats %+v: the Get after Invalidate joined the old load", st)
	}
}

func TestSizeBoundWithSecondChance(t *testing.T) {
	ctx := t.Context()
	var ts []*template.Template
	for i := range 10 {
		ts = append(ts, tmpl("ns", fmt.Sprint("t", i), "1.0.0"))
	}
	m, _ := newManager(t, RegistrySource(newRegistry(t, ts...)), Config{MaxEntries: 3})
	get := func(i int) {
		t.Helper()
		if _, err := m.Get(ctx, "ns", fmt.Sprint("t", i), "1.0.0"); err != nil {
			t.Fatal(err)
		}
	}
	get(0)
	get(1)
	get(2)
	get(0) // referenced: survives the next eviction
	get(3) // evicts t1
	if _, ok := m.entries.Load(key{"ns", "t0", "1.0.0"}); !ok {
		t.Fatal("t0 was looked up since it was cached and was evicted first")
	}
	if _, ok := m.entries.Load(key{"ns", "t1", "1.0.0"}); ok {
		t.Fatal("t1 was not evicted")
	}
	for i := 4; i < 10; i++ {
		get(i)
	}
	st := m.Stats()
	if st.Entries != 3 || st.Evictions != 7 || m.entries.Size() != 3 {
		t.Fatalf("stats %+v, map size %d", st, m.entries.Size())
	}
}

func TestExpiredEntriesAreEvictedFirst(t *testing.T) {
	ctx := t.Context()
	var ts []*template.Template
	for i := range 4 {
		ts = append(ts, tmpl("ns", fmt.Sprint("t", i), "1.0.0"))
	}
	m, clock := newManager(t, RegistrySource(newRegistry(t, ts...)), Config{MaxEntries: 2, TTL: time.Minute})
	m.Get(ctx, "ns", "t0", "1.0.0")
	clock.Advance(30 * time.Second)
	m.Get(ctx, "ns", "t1", "1.0.0")
	m.Get(ctx, "ns", "t0", "1.0.0")
	m.Get(ctx, "ns", "t1", "1.0.0") // both referenced
	clock.Advance(31 * time.Second) // t0 expired
	m.Get(ctx, "ns", "t2", "1.0.0")
	if _, ok := m.entries.Load(key{"ns", "t1", "1.0.0"}); !ok {
		t.Fatal("a live entry was evicted before an expired one")
	}
}

func TestRegistrySource(t *testing.T) {
	src := RegistrySource(newRegistry(t, tmpl("ns", "a", "1.0.0")))
	if got, err := src.Get(t.Context(), "ns", "a", ""); err != nil || got.Version != "1.0.0" {
		t.Fatal(got, err)
	}
}

// TestConcurrentUse runs hits, misses, evictions and invalidations at once
// under the race detector and checks the bound and the two indexes agree.
func TestConcurrentUse(t *testing.T) {
	var ts []*template.Template
	for i := range 64 {
		ts = append(ts, tmpl(fmt.Sprint("ns", i%4), fmt.Sprint("t", i), "1.0.0"))
	}
	m, clock := newManager(t, RegistrySource(newRegistry(t, ts...)), Config{MaxEntries: 16, TTL: time.Second})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 3000 {
				n := (i*7 + g*13) % 64
				tp, err := m.Get(context.Background(), fmt.Sprint("ns", n%4), fmt.Sprint("t", n), "1.0.0")
				if err != nil || tp.Name != fmt.Sprint("t", n) {
					t.Errorf("Get t%d: %v %v", n, tp, err)
					return
				}
				switch i % 500 {
				case 0:
					m.Invalidate(fmt.Sprint("ns", n%4), fmt.Sprint("t", n))
				case 250:
					clock.Advance(300 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.ring) > 16 || m.entries.Size() != len(m.ring) {
		t.Fatalf("ring %d, map %d, max 16", len(m.ring), m.entries.Size())
	}
	for i, e := range m.ring {
		if e.slot != i {
			t.Fatalf("ring[%d].slot = %d", i, e.slot)
		}
		if got, ok := m.entries.Load(e.k); !ok || got != e {
			t.Fatalf("ring[%d] (%v) is not the map's entry", i, e.k)
		}
	}
}
