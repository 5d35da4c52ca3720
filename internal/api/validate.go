package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/tasker-go/tasker/internal/api/gen"
	"github.com/tasker-go/tasker/internal/auth"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/template"
)

func problems(ps []template.Problem) []gen.TemplateProblem {
	out := make([]gen.TemplateProblem, 0, len(ps))
	for _, p := range ps {
		tp := gen.TemplateProblem{Message: p.Message, Step: optString(p.Step), Field: optString(p.Field), Hint: optString(p.Hint)}
		if p.Line > 0 {
			line := int32(p.Line)
			tp.Line = &line
		}
		out = append(out, tp)
	}
	return out
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badf("%s %q is not a boolean: give true or false", name, v)
	}
	return b, nil
}

// validateTemplate serves POST /v1/templates: the posted document (YAML or
// JSON, either dialect) validated as `tasker template validate` does, and
// registered when ?register=true and it is valid.
func (s *Server) validateTemplate(w http.ResponseWriter, r *http.Request) {
	register, err := boolParam(r, "register")
	if err != nil {
		s.responseError(w, r, err)
		return
	}
	// Validating needs templates:validate (the route's); registering
	// changes what later tasks run, so it needs templates:register too
	// (a Tasker permission; templates:* and * hold it).
	if p := auth.PrincipalFrom(r.Context()); register && p != nil && !p.Allows(auth.PermTemplatesRegister) {
		s.metrics.authFailure(auth.ReasonForbidden)
		writeAuthError(w, http.StatusForbidden, "AuthorizationError",
			fmt.Sprintf("POST /v1/templates?register=true needs the permission %s, which %s does not hold (templates:validate only validates)",
				auth.PermTemplatesRegister, p.Subject), auth.ReasonForbidden)
		return
	}
	strict, err := boolParam(r, "strict")
	if err != nil {
		s.responseError(w, r, err)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.responseError(w, r, err)
		return
	}
	if len(body) == 0 {
		s.responseError(w, r, badf("no request body: post a template document (YAML or JSON, docs/templates.md)"))
		return
	}
	if len(body) > template.MaxFileSize {
		s.responseError(w, r, badf("the template is %d bytes, more than the limit of %d", len(body), template.MaxFileSize))
		return
	}
	loader := template.Loader{Environment: r.URL.Query().Get("environment"), Strict: strict}
	t, err := loader.Parse("", body)
	out := gen.TemplateValidationResponse{Errors: []gen.TemplateProblem{}, Warnings: []gen.TemplateProblem{}}
	var ve *template.ValidationError
	switch {
	case errors.As(err, &ve):
		out.Errors, out.Warnings = problems(ve.Problems), problems(ve.Warnings)
		status := http.StatusOK
		if register {
			status = http.StatusUnprocessableEntity
		}
		writeJSON(w, status, out)
		return
	case err != nil:
		s.responseError(w, r, badf("the template could not be read: %v", err))
		return
	}
	out.Valid = true
	dialect, steps := string(t.Dialect), int32(len(t.Steps))
	out.Namespace, out.Name, out.Version, out.Dialect, out.StepCount = &t.Namespace, &t.Name, &t.Version, &dialect, &steps
	out.Warnings = problems(t.Warnings)
	if !register {
		writeJSON(w, http.StatusOK, out)
		return
	}
	if err := s.eng.RegisterTemplate(r.Context(), t); err != nil {
		if ce := (*store.TemplateConflictError)(nil); errors.As(err, &ce) {
			writeError(w, http.StatusConflict, "Conflict", fmt.Sprintf("%v: post it under a new version", err))
			return
		}
		s.responseError(w, r, err)
		return
	}
	out.Registered = true
	writeJSON(w, http.StatusCreated, out)
}
