package storetest

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

func storedTemplate(e *env, ns, name, version, digest string) *store.Template {
	return &store.Template{
		Namespace: ns, Name: name, Version: version,
		Source:     []byte("name: " + name + "\nnamespace: " + ns + "\nversion: " + version + "\n# " + digest + "\n"),
		SourceName: "templates/" + name + ".yaml", Digest: digest,
		RegisteredAt: e.clock.Now(), RegisteredBy: Processor,
	}
}

func testTemplates(t *testing.T, e *env) {
	ctx := t.Context()
	put := func(ts ...*store.Template) error {
		return e.s.TemplatePut(ctx, &store.TemplatePutParams{Templates: ts})
	}
	get := func(ns, name, version string) (*store.Template, error) {
		return e.s.TemplateGet(ctx, &store.TemplateGetParams{Namespace: ns, Name: name, Version: version})
	}
	v1 := storedTemplate(e, "shop", "order", "1.2.0", "d1")
	v2 := storedTemplate(e, "shop", "order", "1.10.0", "d2")
	rc := storedTemplate(e, "shop", "order", "1.10.0-rc.1", "d3")
	other := storedTemplate(e, "shop", "refund", "0.1.0", "d4")
	other.SourceName = ""
	if err := put(v1, rc, other); err != nil {
		t.Fatalf("TemplatePut: %v", err)
	}
	e.clock.Advance(time.Second)
	if err := put(v2); err != nil {
		t.Fatalf("TemplatePut: %v", err)
	}
	for _, want := range []*store.Template{v1, v2, rc, other} {
		got, err := get(want.Namespace, want.Name, want.Version)
		if err != nil {
			t.Fatalf("TemplateGet %s: %v", want.Key(), err)
		}
		checkTemplate(t, got, want, true)
	}
	latest, err := get("shop", "order", "")
	if err != nil {
		t.Fatalf("TemplateGet latest: %v", err)
	}
	checkTemplate(t, latest, v2, true) // 1.10.0 above 1.2.0 and above its own prerelease

	// The same definition again, from another process: nothing changes.
	again := storedTemplate(e, "shop", "order", "1.2.0", "d1")
	again.RegisteredBy, again.Source = "another@host:2", []byte("# reformatted\n"+string(again.Source))
	if err := put(again); err != nil {
		t.Fatalf("TemplatePut of a stored template with its digest: %v, want a no-op", err)
	}
	if got, _ := get("shop", "order", "1.2.0"); got == nil || got.RegisteredBy != Processor || !bytes.Equal(got.Source, v1.Source) {
		t.Fatalf("a repeated put changed the stored template: %+v", got)
	}

	// Another definition under a stored version: refused, all or none.
	changed := storedTemplate(e, "shop", "order", "1.2.0", "d9")
	fresh := storedTemplate(e, "shop", "aaa_new", "1.0.0", "d5")
	err = put(fresh, changed)
	var ce *store.TemplateConflictError
	if !errors.As(err, &ce) || !errors.Is(err, taskertype.ErrInvalid) {
		t.Fatalf("TemplatePut of another definition under a stored version: %v, want a *TemplateConflictError matching ErrInvalid", err)
	}
	if ce.Key != "shop/order@1.2.0" || ce.Stored == nil || ce.Stored.Digest != "d1" || ce.Stored.RegisteredBy != Processor {
		t.Fatalf("conflict error %+v does not name the stored template", ce)
	}
	if _, err := get("shop", "aaa_new", "1.0.0"); !errors.Is(err, taskertype.ErrNotFound) {
		t.Fatalf("the put that failed stored another of its templates: %v, want ErrNotFound", err)
	}

	// With Replace, the changed definition replaces the stored one, and
	// the put says which it replaced; an unchanged one is left alone.
	e.clock.Advance(time.Second)
	changed.RegisteredBy, changed.RegisteredAt = "another@host:2", e.clock.Now()
	same := storedTemplate(e, "shop", "refund", "0.1.0", "d4")
	rp := &store.TemplatePutParams{Templates: []*store.Template{fresh, changed, same}, Replace: true}
	if err := e.s.TemplatePut(ctx, rp); err != nil {
		t.Fatalf("TemplatePut with Replace of another definition under a stored version: %v", err)
	}
	if len(rp.Replaced) != 1 || rp.Replaced[0].Key() != "shop/order@1.2.0" || rp.Replaced[0].Digest != "d1" ||
		rp.Replaced[0].RegisteredBy != Processor {
		t.Fatalf("TemplatePut with Replace: Replaced = %+v, want the stored shop/order@1.2.0 with digest d1", rp.Replaced)
	}
	got, err := get("shop", "order", "1.2.0")
	if err != nil {
		t.Fatalf("TemplateGet after a replace: %v", err)
	}
	checkTemplate(t, got, changed, true)
	if got, err := get("shop", "aaa_new", "1.0.0"); err != nil {
		t.Fatalf("TemplateGet of a template stored by a replacing put: %v", err)
	} else {
		checkTemplate(t, got, fresh, true)
	}
	if got, _ := get("shop", "refund", "0.1.0"); got == nil || got.SourceName != "" {
		t.Fatalf("a put with Replace changed a stored template with the same digest: %+v", got)
	}
	// Back to the original definition, so that the checks below hold.
	if err := e.s.TemplatePut(ctx, &store.TemplatePutParams{Templates: []*store.Template{v1}, Replace: true}); err != nil {
		t.Fatalf("TemplatePut with Replace: %v", err)
	}

	for _, k := range [][3]string{{"shop", "order", "9.9.9"}, {"shop", "nope", ""}, {"nope", "order", "1.2.0"}} {
		if _, err := get(k[0], k[1], k[2]); !errors.Is(err, taskertype.ErrNotFound) {
			t.Fatalf("TemplateGet %v: %v, want ErrNotFound", k, err)
		}
	}
	if _, err := get("", "order", ""); !errors.Is(err, taskertype.ErrInvalid) {
		t.Fatalf("TemplateGet without a namespace: %v, want ErrInvalid", err)
	}
	if err := put(&store.Template{Namespace: "shop", Name: "x", Version: "1.0.0"}); !errors.Is(err, taskertype.ErrInvalid) {
		t.Fatalf("TemplatePut without source and digest: %v, want ErrInvalid", err)
	}

	list := func(p *store.TemplateListParams) []string {
		t.Helper()
		ts, err := e.s.TemplateList(ctx, p)
		if err != nil {
			t.Fatalf("TemplateList: %v", err)
		}
		var keys []string
		for _, x := range ts {
			if x.Source != nil {
				t.Fatalf("TemplateList returned the source of %s", x.Key())
			}
			keys = append(keys, x.Key())
		}
		return keys
	}
	if got, want := list(&store.TemplateListParams{}), []string{"shop/aaa_new@1.0.0", "shop/order@1.2.0", "shop/order@1.10.0-rc.1", "shop/order@1.10.0", "shop/refund@0.1.0"}; !slices.Equal(got, want) {
		t.Fatalf("TemplateList: %v, want %v", got, want)
	}
	if got, want := list(&store.TemplateListParams{Namespace: "shop", Name: "refund"}), []string{"shop/refund@0.1.0"}; !slices.Equal(got, want) {
		t.Fatalf("TemplateList of one name: %v, want %v", got, want)
	}
	if got := list(&store.TemplateListParams{Namespace: "nope"}); len(got) != 0 {
		t.Fatalf("TemplateList of an unknown namespace: %v", got)
	}

	// Processes starting together put the same templates at once.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := storedTemplate(e, "race", "a", "1.0.0", "ra"), storedTemplate(e, "race", "b", "1.0.0", "rb")
			if i%2 == 1 {
				a, b = b, a
			}
			errs <- put(a, b)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent puts of one template: %v", err)
		}
	}
	if got, want := list(&store.TemplateListParams{Namespace: "race"}), []string{"race/a@1.0.0", "race/b@1.0.0"}; !slices.Equal(got, want) {
		t.Fatalf("after concurrent puts: %v, want %v", got, want)
	}
}

func checkTemplate(t *testing.T, got, want *store.Template, source bool) {
	t.Helper()
	if got.Namespace != want.Namespace || got.Name != want.Name || got.Version != want.Version ||
		got.SourceName != want.SourceName || got.Digest != want.Digest || got.RegisteredBy != want.RegisteredBy ||
		!got.RegisteredAt.Equal(want.RegisteredAt.Truncate(time.Microsecond)) {
		t.Fatalf("template read back as %+v, want %+v", got, want)
	}
	if source && !bytes.Equal(got.Source, want.Source) {
		t.Fatalf("template %s: source read back as %q, want %q", want.Key(), got.Source, want.Source)
	}
}
