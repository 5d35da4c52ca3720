package templatecache

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// StoreSource reads templates from the store, where every process
// registers them: a Get is one TemplateGet (two for the latest) and a
// template.Parse of the stored document, so a process resolves templates
// it never loaded itself.
func StoreSource(st store.Store) Source { return storeSource{st} }

type storeSource struct{ st store.Store }

func (s storeSource) Get(ctx context.Context, namespace, name, version string) (*template.Template, error) {
	k := template.Key{Namespace: namespace, Name: name, Version: version}
	rec, err := s.st.TemplateGet(ctx, &store.TemplateGetParams{Namespace: namespace, Name: name, Version: version})
	if errors.Is(err, taskertype.ErrNotFound) {
		return nil, s.notFound(ctx, k)
	}
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", k, err)
	}
	src := rec.SourceName
	if src == "" {
		src = "template " + rec.Key() + " in the database"
	}
	t, err := template.Parse(src, rec.Source)
	if err != nil {
		return nil, fmt.Errorf("template %s, registered by %s: the stored document does not parse with this version of tasker: %w",
			rec.Key(), rec.RegisteredBy, err)
	}
	if t.Namespace != rec.Namespace || t.Name != rec.Name || t.Version != rec.Version {
		return nil, fmt.Errorf("template %s: the stored document defines %s instead", rec.Key(), t.Key())
	}
	return t, nil
}

// notFound says what the store holds instead: the versions of the name,
// or the names of the namespace.
func (s storeSource) notFound(ctx context.Context, k template.Key) error {
	hint := fmt.Sprintf("no template of namespace %q is registered", k.Namespace)
	if ts, err := s.st.TemplateList(ctx, &store.TemplateListParams{Namespace: k.Namespace}); err == nil && len(ts) > 0 {
		var versions, names []string
		for _, t := range ts {
			if t.Name == k.Name {
				versions = append(versions, t.Version)
			}
			if len(names) == 0 || names[len(names)-1] != t.Name {
				names = append(names, t.Name)
			}
		}
		if len(versions) > 0 {
			hint = fmt.Sprintf("registered versions of %s/%s: %s", k.Namespace, k.Name, shortList(versions))
		} else {
			hint = fmt.Sprintf("registered templates in namespace %q: %s", k.Namespace, shortList(names))
		}
	}
	return fmt.Errorf("template %s: %w (%s; a template is registered by the process that loads it: Config.Templates, RegisterTemplate or LoadTemplates)",
		k, taskertype.ErrNotFound, hint)
}

func shortList(xs []string) string {
	const max = 20
	if len(xs) <= max {
		return strings.Join(xs, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(xs[:max], ", "), len(xs)-max)
}
