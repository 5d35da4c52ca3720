package template

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tasker-go/tasker/taskertype"
)

// Registry holds templates by key. It is safe for concurrent use. Reads load
// an immutable snapshot and take no lock; Add builds a new snapshot under a
// mutex that only writers share.
type Registry struct {
	mu   sync.Mutex // serializes writers
	snap atomic.Pointer[snapshot]
}

type nameKey struct{ namespace, name string }

// snapshot is never modified once published.
type snapshot struct {
	byKey      map[Key]*Template
	versions   map[nameKey][]*Template // ascending semver precedence; the last is the latest
	names      map[string][]string     // namespace → template names, sorted
	namespaces []string                // sorted
	list       []*Template             // sorted by key
}

var emptySnapshot = &snapshot{}

// NewRegistry returns an empty registry. The zero Registry is also ready to use.
func NewRegistry() *Registry { return &Registry{} }

func (r *Registry) load() *snapshot {
	if s := r.snap.Load(); s != nil {
		return s
	}
	return emptySnapshot
}

// Add registers t. The template must be valid (as Parse returns it): it is
// checked again, policies and schema included. Registering a key twice is an error that
// names both sources and matches taskertype.ErrInvalid.
func (r *Registry) Add(t *Template) error {
	if t == nil {
		return fmt.Errorf("%w: add template: nil template", taskertype.ErrInvalid)
	}
	// Everything Parse checks, for templates built in code too: a zero
	// retry policy or timeout would fail every step at once.
	if err := t.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.load()
	k := t.Key()
	if prev, ok := old.byKey[k]; ok {
		return fmt.Errorf("%w: template %s from %s is already registered from %s",
			taskertype.ErrInvalid, k, sourceName(t), sourceName(prev))
	}
	nk := nameKey{k.Namespace, k.Name}
	s := &snapshot{
		byKey:    maps.Clone(old.byKey),
		versions: maps.Clone(old.versions),
		names:    maps.Clone(old.names),
	}
	if s.byKey == nil {
		s.byKey = map[Key]*Template{}
		s.versions = map[nameKey][]*Template{}
		s.names = map[string][]string{}
	}
	s.byKey[k] = t
	vs := append(slices.Clone(old.versions[nk]), t)
	slices.SortFunc(vs, func(a, b *Template) int { return compareSemver(a.Version, b.Version) })
	s.versions[nk] = vs
	if !slices.Contains(old.names[k.Namespace], k.Name) {
		ns := append(slices.Clone(old.names[k.Namespace]), k.Name)
		slices.Sort(ns)
		s.names[k.Namespace] = ns
	}
	s.namespaces = slices.Sorted(maps.Keys(s.names))
	s.list = append(slices.Clone(old.list), t)
	slices.SortFunc(s.list, compareTemplates)
	r.snap.Store(s)
	return nil
}

func compareTemplates(a, b *Template) int {
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return compareSemver(a.Version, b.Version)
}

func sourceName(t *Template) string {
	if t.Source == "" {
		return "(unnamed source)"
	}
	return fmt.Sprintf("%q", t.Source)
}

// Get returns the template namespace/name at version; version "" means the
// latest: the highest by semver precedence, so 1.10.0 beats 1.2.0 and 1.0.0
// beats 1.0.0-rc.1. An unknown template is an error matching
// taskertype.ErrNotFound that lists what the registry holds: the versions of
// that name, or the names in that namespace, or the namespaces.
func (r *Registry) Get(namespace, name, version string) (*Template, error) {
	s := r.load()
	k := Key{Namespace: namespace, Name: name, Version: version}
	if version != "" {
		if t, ok := s.byKey[k]; ok {
			return t, nil
		}
	}
	if vs := s.versions[nameKey{namespace, name}]; len(vs) > 0 {
		if version == "" {
			return vs[len(vs)-1], nil
		}
		known := make([]string, len(vs))
		for i, t := range vs {
			known[i] = t.Version
		}
		return nil, fmt.Errorf("template %s: %w (known versions of %s/%s: %s)",
			k, taskertype.ErrNotFound, namespace, name, listNames(known))
	}
	if names, ok := s.names[namespace]; ok {
		return nil, fmt.Errorf("template %s: %w (known templates in namespace %q: %s)",
			k, taskertype.ErrNotFound, namespace, listNames(names))
	}
	if len(s.namespaces) == 0 {
		return nil, fmt.Errorf("template %s: %w (no templates are registered)", k, taskertype.ErrNotFound)
	}
	return nil, fmt.Errorf("template %s: %w (unknown namespace %q; known namespaces: %s)",
		k, taskertype.ErrNotFound, namespace, listNames(s.namespaces))
}

// List returns every template, sorted by namespace, name and version.
func (r *Registry) List() []*Template {
	return slices.Clone(r.load().list)
}

// Len returns the number of templates.
func (r *Registry) Len() int {
	return len(r.load().list)
}
