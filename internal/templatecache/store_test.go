package templatecache

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasker-go/tasker/store"
	storesqlite "github.com/tasker-go/tasker/store/sqlite"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

func openSQLite(t testing.TB) *storesqlite.Store {
	t.Helper()
	st, err := storesqlite.Open(context.Background(), storesqlite.Config{Path: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// record is tp as a process registers it.
func record(t testing.TB, tp *template.Template, by string) *store.Template {
	t.Helper()
	doc, err := template.Marshal(tp)
	if err != nil {
		t.Fatal(err)
	}
	d, err := template.Digest(tp)
	if err != nil {
		t.Fatal(err)
	}
	return &store.Template{Namespace: tp.Namespace, Name: tp.Name, Version: tp.Version, Source: doc,
		Digest: d, RegisteredAt: start, RegisteredBy: by}
}

func putTemplates(t testing.TB, st store.Store, recs ...*store.Template) {
	t.Helper()
	if err := st.TemplatePut(context.Background(), &store.TemplatePutParams{Templates: recs}); err != nil {
		t.Fatal(err)
	}
}

// Templates another process stores are found; a cached "latest" stays
// what it was until its TTL ends, an exact version is asked of the store
// once.
func TestStoreSourceSeesOtherProcessesWithinTTL(t *testing.T) {
	ctx := t.Context()
	st := openSQLite(t)
	putTemplates(t, st, record(t, tmpl("ns", "wf", "1.0.0"), "worker@a:1"))
	m, clock := newManager(t, StoreSource(st), Config{TTL: time.Minute})
	got, err := m.Get(ctx, "ns", "wf", "")
	if err != nil || got.Version != "1.0.0" || got.Steps[0].Handler != "h" {
		t.Fatalf("Get latest: %v, %v", got, err)
	}
	putTemplates(t, st, record(t, tmpl("ns", "wf", "1.1.0"), "worker@b:2")) // another process
	if got, _ := m.Get(ctx, "ns", "wf", ""); got.Version != "1.0.0" {
		t.Fatalf("latest changed within the TTL: %s", got.Version)
	}
	if got, err := m.Get(ctx, "ns", "wf", "1.1.0"); err != nil || got.Version != "1.1.0" {
		t.Fatalf("the new version by its number: %v, %v", got, err)
	}
	clock.Advance(time.Minute)
	if got, _ := m.Get(ctx, "ns", "wf", ""); got.Version != "1.1.0" {
		t.Fatalf("latest after the TTL: %s, want 1.1.0", got.Version)
	}
	if s := m.Stats(); s.Loads != 3 {
		t.Fatalf("%d loads, want 3 (latest, 1.1.0, latest again)", s.Loads)
	}
}

func TestStoreSourceErrors(t *testing.T) {
	ctx := t.Context()
	st := openSQLite(t)
	src := StoreSource(st)
	if _, err := src.Get(ctx, "ns", "wf", ""); !errors.Is(err, taskertype.ErrNotFound) || !strings.Contains(err.Error(), `no template of namespace "ns"`) {
		t.Fatalf("empty store: %v", err)
	}
	putTemplates(t, st, record(t, tmpl("ns", "wf", "1.0.0"), "w"), record(t, tmpl("ns", "wf", "1.2.0"), "w"))
	if _, err := src.Get(ctx, "ns", "wf", "2.0.0"); !errors.Is(err, taskertype.ErrNotFound) || !strings.Contains(err.Error(), "versions of ns/wf: 1.0.0, 1.2.0") {
		t.Fatalf("unknown version: %v, want ErrNotFound listing 1.0.0, 1.2.0", err)
	}
	if _, err := src.Get(ctx, "ns", "other", ""); !errors.Is(err, taskertype.ErrNotFound) || !strings.Contains(err.Error(), `templates in namespace "ns": wf`) {
		t.Fatalf("unknown name: %v", err)
	}
	bad := record(t, tmpl("ns", "broken", "1.0.0"), "old@host:7")
	bad.Source = []byte("name: broken\nnamespace: ns\nversion: 1.0.0\nsteps: 3\n")
	putTemplates(t, st, bad)
	if _, err := src.Get(ctx, "ns", "broken", "1.0.0"); !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), "old@host:7") {
		t.Fatalf("a stored document that does not parse: %v, want ErrInvalid naming who registered it", err)
	}
	other := record(t, tmpl("ns", "liar", "1.0.0"), "w")
	other.Source, _ = template.Marshal(tmpl("ns", "wf", "1.0.0"))
	putTemplates(t, st, other)
	if _, err := src.Get(ctx, "ns", "liar", "1.0.0"); err == nil || !strings.Contains(err.Error(), "defines ns/wf@1.0.0") {
		t.Fatalf("a stored document of another template: %v", err)
	}
}
