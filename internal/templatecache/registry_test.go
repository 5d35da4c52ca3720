package templatecache

import (
	"context"

	"github.com/tasker-go/tasker/template"
)

// RegistrySource adapts a template registry to Source: the tests and
// benchmarks resolve templates without a store.
func RegistrySource(r *template.Registry) Source { return registrySource{r} }

type registrySource struct{ r *template.Registry }

func (s registrySource) Get(_ context.Context, namespace, name, version string) (*template.Template, error) {
	return s.r.Get(namespace, name, version)
}
