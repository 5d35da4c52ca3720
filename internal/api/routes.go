package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/tasker-go/tasker/internal/auth"
)

// access is what a route needs: a permission, or membership of a route
// group the auth config may leave public.
type access struct {
	perm  string     // the resource:action permission; "" for a group route
	group auth.Group // health, metrics or docs; "" for a permission route
}

// routeAccess maps every route's ServeMux pattern to what it needs. The
// permissions are tasker-core's (the spec's x-required-permission);
// TestEveryRouteHasAccess fails when a route of the spec has no entry. A
// route missing here is refused 403 when auth is on: fail closed.
var routeAccess = map[string]access{
	"GET /health":                                       {group: auth.GroupHealth},
	"GET /health/detailed":                              {group: auth.GroupHealth},
	"GET /health/live":                                  {group: auth.GroupHealth},
	"GET /health/ready":                                 {group: auth.GroupHealth},
	"GET /live":                                         {group: auth.GroupHealth},
	"GET /ready":                                        {group: auth.GroupHealth},
	"GET /metrics":                                      {group: auth.GroupMetrics},
	"GET /api-docs/openapi.json":                        {group: auth.GroupDocs},
	"GET /config":                                       {perm: "system:config_read"},
	"GET /v1/analytics/bottlenecks":                     {perm: "system:analytics_read"},
	"GET /v1/analytics/performance":                     {perm: "system:analytics_read"},
	"GET /v1/dlq":                                       {perm: "dlq:read"},
	"PATCH /v1/dlq/entry/{dlq_entry_uuid}":              {perm: "dlq:update"},
	"GET /v1/dlq/investigation-queue":                   {perm: "dlq:read"},
	"GET /v1/dlq/staleness":                             {perm: "dlq:read"},
	"GET /v1/dlq/stats":                                 {perm: "dlq:stats"},
	"GET /v1/dlq/task/{task_uuid}":                      {perm: "dlq:read"},
	"GET /v1/tasks":                                     {perm: "tasks:list"},
	"POST /v1/tasks":                                    {perm: "tasks:create"},
	"GET /v1/tasks/{uuid}":                              {perm: "tasks:read"},
	"DELETE /v1/tasks/{uuid}":                           {perm: "tasks:cancel"},
	"GET /v1/tasks/{uuid}/workflow_steps":               {perm: "steps:read"},
	"GET /v1/tasks/{uuid}/workflow_steps/{step_uuid}":   {perm: "steps:read"},
	"PATCH /v1/tasks/{uuid}/workflow_steps/{step_uuid}": {perm: "steps:resolve"},
	"GET /v1/tasks/{uuid}/workflow_steps/{step_uuid}/audit": {perm: "steps:read"},
	"GET /v1/templates": {perm: "templates:read"},
	"GET /v1/templates/{namespace}/{name}/{version}": {perm: "templates:read"},
	// Our additions to the spec (issue 11 §2): a task's event stream reads
	// the task; posting a template validates it.
	"GET /v1/tasks/{uuid}/events": {perm: "tasks:read"},
	"POST /v1/templates":          {perm: "templates:validate"},
	// Pull workers (issue 12, docs/workers.md): tasker-core's worker:*.
	"POST /v1/workers":                                        {perm: "worker:*"},
	"GET /v1/workers/metrics":                                 {perm: "worker:*"},
	"DELETE /v1/workers/{worker_id}":                          {perm: "worker:*"},
	"POST /v1/workers/{worker_id}/poll":                       {perm: "worker:*"},
	"POST /v1/workers/{worker_id}/events/{event_id}/complete": {perm: "worker:*"},
	"POST /v1/workers/{worker_id}/heartbeat":                  {perm: "worker:*"},
}

// HeaderContextRedacted is set ("true") on the answers of the task routes
// when auth is on and the caller does not hold tasks:context_read: their
// task contexts are sent as {}.
const HeaderContextRedacted = "X-Tasker-Context-Redacted"

type patternKey struct{}

// routePattern returns the ServeMux pattern withRoute found for the
// request ("" when no route matched).
func routePattern(ctx context.Context) string {
	p, _ := ctx.Value(patternKey{}).(string)
	return p
}

// withRoute finds the request's route in mux once, before anything reads
// the body, for the auth check and the metrics' route label.
func withRoute(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), patternKey{}, pattern)))
	})
}

// authorize checks the request's credentials and the route's permission
// from its headers alone, before the body is read: 401 without good
// credentials, 403 without the permission. A request no route matches
// passes on to the mux's 404 or 405.
func (s *Server) authorize(next http.Handler) http.Handler {
	if s.auth == nil {
		return next
	}
	public := s.auth.Config().Public
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pattern := routePattern(r.Context())
		if pattern == "" {
			next.ServeHTTP(w, r)
			return
		}
		need, known := routeAccess[pattern]
		if known && need.group != "" && public.IsPublic(need.group) {
			next.ServeHTTP(w, r)
			return
		}
		p, fail := s.auth.Authenticate(r)
		if fail != nil {
			s.metrics.authFailure(fail.Reason)
			challenge := `Bearer realm="tasker"`
			if fail.Reason != auth.ReasonMissing {
				challenge += `, error="invalid_token", error_description="` + strings.ReplaceAll(fail.Message, `"`, `'`) + `"`
			}
			w.Header().Set("WWW-Authenticate", challenge)
			writeAuthError(w, http.StatusUnauthorized, "AuthenticationError", fail.Message, fail.Reason)
			return
		}
		switch {
		case !known:
			s.log.ErrorContext(r.Context(), "api route has no permission: refused", "request_id", requestID(r.Context()), "pattern", pattern)
			s.metrics.authFailure(auth.ReasonForbidden)
			writeAuthError(w, http.StatusForbidden, "AuthorizationError",
				fmt.Sprintf("%s has no permission defined, so it is refused to everyone (a server bug: report it)", pattern), auth.ReasonForbidden)
			return
		case need.perm != "" && !p.Allows(need.perm):
			s.metrics.authFailure(auth.ReasonForbidden)
			writeAuthError(w, http.StatusForbidden, "AuthorizationError",
				fmt.Sprintf("%s needs the permission %s, which %s does not hold", pattern, need.perm, p.Subject), auth.ReasonForbidden)
			return
		}
		if contextRoutes[pattern] && !p.Allows(permContextRead) {
			// The answer's task contexts are empty objects (tasks.go).
			w.Header().Set(HeaderContextRedacted, "true")
		}
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
	})
}

// writeAuthError writes the spec's AuthenticationError/AuthorizationError
// ApiError with its failure context.
func writeAuthError(w http.ResponseWriter, status int, kind, reason string, r auth.Reason) {
	writeJSON(w, status, map[string]any{kind: map[string]any{
		"reason":          reason,
		"failure_context": map[string]string{"reason": string(r), "severity": r.Severity()},
	}})
}
