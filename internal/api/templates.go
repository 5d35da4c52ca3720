package api

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tasker-go/tasker/internal/api/gen"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ListTemplates lists the templates registered with the engine, by
// namespace.
func (s *Server) ListTemplates(_ context.Context, req gen.ListTemplatesRequestObject) (gen.ListTemplatesResponseObject, error) {
	tpls := s.eng.Templates()
	slices.SortFunc(tpls, func(a, b *template.Template) int {
		return cmpKeys(a, b)
	})
	out := gen.TemplateListResponse{Namespaces: []gen.NamespaceSummary{}, Templates: []gen.TemplateSummary{}}
	counts := map[string]int{}
	for _, t := range tpls {
		if req.Params.Namespace != nil && *req.Params.Namespace != "" && t.Namespace != *req.Params.Namespace {
			continue
		}
		if counts[t.Namespace] == 0 {
			out.Namespaces = append(out.Namespaces, gen.NamespaceSummary{Name: t.Namespace})
		}
		counts[t.Namespace]++
		out.Templates = append(out.Templates, gen.TemplateSummary{Namespace: t.Namespace, Name: t.Name, Version: t.Version,
			Description: optString(t.Description), StepCount: len(t.Steps)})
	}
	for i := range out.Namespaces {
		out.Namespaces[i].TemplateCount = counts[out.Namespaces[i].Name]
	}
	out.TotalCount = len(out.Templates)
	return gen.ListTemplates200JSONResponse(out), nil
}

func cmpKeys(a, b *template.Template) int {
	return strings.Compare(a.Namespace+"\x00"+a.Name+"\x00"+a.Version, b.Namespace+"\x00"+b.Name+"\x00"+b.Version)
}

// GetTemplate answers one registered template.
func (s *Server) GetTemplate(_ context.Context, req gen.GetTemplateRequestObject) (gen.GetTemplateResponseObject, error) {
	for _, t := range s.eng.Templates() {
		if t.Namespace != req.Namespace || t.Name != req.Name || t.Version != req.Version {
			continue
		}
		out := gen.TemplateDetail{Namespace: t.Namespace, Name: t.Name, Version: t.Version,
			Description: optString(t.Description), Steps: []gen.StepDefinition{}, Configuration: map[string]any{}}
		for _, st := range t.Steps {
			out.Steps = append(out.Steps, gen.StepDefinition{Name: st.Name, Description: optString(st.Description),
				DefaultRetryable: st.Retry.Retryable, DefaultMaxAttempts: int32(st.Retry.MaxAttempts)})
		}
		if len(t.ContextSchema) > 0 {
			out.Configuration["context_schema"] = json.RawMessage(t.ContextSchema)
		}
		if len(t.Metadata) > 0 {
			out.Configuration["metadata"] = json.RawMessage(t.Metadata)
		}
		return gen.GetTemplate200JSONResponse(out), nil
	}
	return nil, fmt.Errorf("template %s/%s/%s: %w: GET /v1/templates lists those registered", req.Namespace, req.Name, req.Version, taskertype.ErrNotFound)
}
