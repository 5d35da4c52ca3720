package template

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tasker-go/tasker/taskertype"
)

func tmpl(t *testing.T, ns, name, version string) *Template {
	t.Helper()
	src := fmt.Sprintf("name: %s\nnamespace: %s\nversion: %s\n", name, ns, version) + steps("a:h")
	tp, err := Parse(ns+"/"+name+"-"+version+".yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestCompareSemver(t *testing.T) {
	// Ascending semver precedence, from the semver 2.0.0 specification and
	// the cases that sort wrongly as text.
	ordered := []string{
		"0.9.0", "1.0.0-0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0",
		"2.0.0", "10.0.0", "99999999999999999999.0.0",
	}
	for i := range ordered {
		for j := range ordered {
			got := compareSemver(ordered[i], ordered[j])
			if (i < j && got >= 0) || (i > j && got <= 0) || (i == j && got != 0) {
				t.Errorf("compareSemver(%q, %q) = %d", ordered[i], ordered[j], got)
			}
		}
	}
}

func TestRegistryGet(t *testing.T) {
	r := NewRegistry()
	for _, k := range [][3]string{
		{"demo", "wf", "1.2.0"}, {"demo", "wf", "1.10.0"}, {"demo", "wf", "1.9.9"},
		{"demo", "pre", "1.0.0-rc.1"}, {"demo", "pre", "1.0.0"}, {"demo", "pre", "0.9.0"},
		{"demo", "only_pre", "2.0.0-alpha"}, {"demo", "only_pre", "2.0.0-beta"},
		{"shop", "orders", "1.0.0"},
	} {
		if err := r.Add(tmpl(t, k[0], k[1], k[2])); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name                      string
		namespace, tname, version string
		wantVersion               string
		wantErr                   []string
	}{
		{name: "an exact version is returned", namespace: "demo", tname: "wf", version: "1.2.0", wantVersion: "1.2.0"},
		{name: "latest compares numerically: 1.10.0 beats 1.9.9 and 1.2.0", namespace: "demo", tname: "wf", wantVersion: "1.10.0"},
		{name: "latest prefers a release over its prereleases", namespace: "demo", tname: "pre", wantVersion: "1.0.0"},
		{name: "latest follows prerelease precedence when only prereleases exist", namespace: "demo", tname: "only_pre", wantVersion: "2.0.0-beta"},
		{name: "an unknown version lists the known versions in order", namespace: "demo", tname: "wf", version: "3.0.0",
			wantErr: []string{"template demo/wf@3.0.0: not found", "known versions of demo/wf: 1.2.0, 1.9.9, 1.10.0"}},
		{name: "an unknown name lists the names in the namespace", namespace: "demo", tname: "nope",
			wantErr: []string{"template demo/nope: not found", `known templates in namespace "demo": only_pre, pre, wf`}},
		{name: "an unknown namespace lists the namespaces", namespace: "other", tname: "wf", version: "1.0.0",
			wantErr: []string{`unknown namespace "other"`, "known namespaces: demo, shop"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Get(tc.namespace, tc.tname, tc.version)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("Get = %v, want an error", got.Key())
				}
				if !errors.Is(err, taskertype.ErrNotFound) {
					t.Errorf("error does not match ErrNotFound: %v", err)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != tc.wantVersion || got.Name != tc.tname {
				t.Errorf("Get = %v, want version %s", got.Key(), tc.wantVersion)
			}
		})
	}
}

func TestRegistryAdd(t *testing.T) {
	t.Run("an empty registry says nothing is registered", func(t *testing.T) {
		var r Registry // the zero value works
		_, err := r.Get("demo", "wf", "")
		if !errors.Is(err, taskertype.ErrNotFound) || !strings.Contains(err.Error(), "no templates are registered") {
			t.Errorf("Get = %v", err)
		}
		if r.Len() != 0 || len(r.List()) != 0 {
			t.Error("empty registry is not empty")
		}
	})
	t.Run("a duplicate key names both sources", func(t *testing.T) {
		r := NewRegistry()
		a := tmpl(t, "demo", "wf", "1.0.0")
		b := tmpl(t, "demo", "wf", "1.0.0")
		b.Source = "other.yaml"
		if err := r.Add(a); err != nil {
			t.Fatal(err)
		}
		err := r.Add(b)
		if !errors.Is(err, taskertype.ErrInvalid) {
			t.Fatalf("Add duplicate = %v, want ErrInvalid", err)
		}
		for _, w := range []string{"demo/wf@1.0.0", `"other.yaml"`, `"demo/wf-1.0.0.yaml"`} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not contain %q", err, w)
			}
		}
		if r.Len() != 1 {
			t.Errorf("Len = %d after a refused Add", r.Len())
		}
	})
	t.Run("an invalid hand-built template is refused", func(t *testing.T) {
		r := NewRegistry()
		err := r.Add(&Template{Name: "wf", Namespace: "demo", Version: "latest",
			Steps: []Step{{Name: "a", Handler: "h", DependsOn: []string{"a"}}}})
		if !errors.Is(err, taskertype.ErrInvalid) || !strings.Contains(err.Error(), "invalid version") ||
			!strings.Contains(err.Error(), "depends on itself") {
			t.Errorf("Add = %v", err)
		}
		if err := r.Add(nil); !errors.Is(err, taskertype.ErrInvalid) {
			t.Errorf("Add(nil) = %v", err)
		}
	})
	t.Run("List is sorted by namespace, name and semver", func(t *testing.T) {
		r := NewRegistry()
		for _, k := range [][3]string{{"z", "a", "1.0.0"}, {"a", "b", "1.10.0"}, {"a", "b", "1.2.0"}, {"a", "a", "2.0.0"}} {
			if err := r.Add(tmpl(t, k[0], k[1], k[2])); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		for _, tp := range r.List() {
			got = append(got, tp.Key().String())
		}
		want := []string{"a/a@2.0.0", "a/b@1.2.0", "a/b@1.10.0", "z/a@1.0.0"}
		if !slices.Equal(got, want) || r.Len() != 4 {
			t.Errorf("List = %v, want %v", got, want)
		}
	})
}

func TestRegistryIsSafeForConcurrentUse(t *testing.T) {
	r := NewRegistry()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if err := r.Add(tmpl(t, "demo", "wf", fmt.Sprintf("%d.%d.0", w, i))); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if tp, err := r.Get("demo", "wf", ""); err == nil && tp.Name != "wf" {
					t.Error("wrong template")
				}
				_ = r.List()
				_ = r.Len()
			}
		}()
	}
	wg.Wait()
	if r.Len() != 100 {
		t.Errorf("Len = %d, want 100", r.Len())
	}
	if tp, err := r.Get("demo", "wf", ""); err != nil || tp.Version != "3.24.0" {
		t.Errorf("latest = %v, %v", tp, err)
	}
}
