package api_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"go.yaml.in/yaml/v3"

	specfile "github.com/tasker-go/tasker/api"
	"github.com/tasker-go/tasker/internal/api"
	"github.com/tasker-go/tasker/internal/auth"
)

// specRoute is one operation of the spec.
type specRoute struct {
	method, path, perm string
}

func (r specRoute) pattern() string { return r.method + " " + r.path }

// specRoutes reads every operation of api/openapi.yaml with its
// x-required-permission.
func specRoutes(t *testing.T) []specRoute {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			Perm string `yaml:"x-required-permission"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(specfile.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var out []specRoute
	for path, ops := range doc.Paths {
		for method, op := range ops {
			switch method {
			case "get", "post", "put", "patch", "delete":
				out = append(out, specRoute{strings.ToUpper(method), path, op.Perm})
			}
		}
	}
	slices.SortFunc(out, func(a, b specRoute) int { return strings.Compare(a.pattern(), b.pattern()) })
	if len(out) < 25 {
		t.Fatalf("the spec has %d operations: the test read it wrong", len(out))
	}
	return out
}

// The auth middleware is keyed by route pattern: a route of the spec
// without an entry would be refused to everyone, and one with the wrong
// permission would let the wrong callers in.
func TestEveryRouteHasAccess(t *testing.T) {
	routes := specRoutes(t)
	inSpec := map[string]bool{}
	for _, r := range routes {
		inSpec[r.pattern()] = true
		perm, group, ok := api.RouteAccess(r.pattern())
		switch {
		case !ok:
			t.Errorf("%s has no entry in routeAccess (internal/api/routes.go): add its permission", r.pattern())
		case r.perm != "" && perm != r.perm:
			t.Errorf("%s needs %q in the spec (x-required-permission), %q in routeAccess", r.pattern(), r.perm, perm)
		case r.perm == "" && group != string(auth.GroupHealth):
			t.Errorf("%s has no permission in the spec: only health routes may, but routeAccess says %q/%q", r.pattern(), perm, group)
		}
		if perm != "" && !auth.Known(perm) {
			t.Errorf("%s: permission %q is not in the vocabulary", r.pattern(), perm)
		}
	}
	// Entries outside the spec: the routes served beside it, and our
	// additions to the spec while they are on their way into it.
	extra := []string{"GET /metrics", "GET /api-docs/openapi.json", "GET /v1/tasks/{uuid}/events", "POST /v1/templates"}
	for _, p := range api.RoutePatterns() {
		if !inSpec[p] && !slices.Contains(extra, p) {
			t.Errorf("routeAccess has %s, which is neither in the spec nor a known extra route", p)
		}
	}
}

// authFixture is a server with auth on: a key pair for tokens and two API
// keys.
type authFixture struct {
	c             *client
	priv, other   []byte // the server's signing key, and another
	keyAll        string // an API key holding *
	keyTasksRead  string // an API key holding tasks:read only
	dir           string
	authenticator *auth.Authenticator
}

func newAuthFixture(t *testing.T, backend string) *authFixture {
	t.Helper()
	f := &authFixture{dir: t.TempDir()}
	kp, err := auth.GenerateKeyPair("ES256", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := auth.GenerateKeyPair("ES256", 0)
	if err != nil {
		t.Fatal(err)
	}
	f.priv, f.other = kp.Private, other.Private
	if err := os.WriteFile(filepath.Join(f.dir, "pub.pem"), kp.Public, 0o600); err != nil {
		t.Fatal(err)
	}
	var sumAll, sumRead string
	f.keyAll, sumAll, _ = auth.NewAPIKey()
	f.keyTasksRead, sumRead, _ = auth.NewAPIKey()
	cfg := "jwt_public_key_path: pub.pem\njwt_issuer: tasker-core\njwt_audience: tasker-api\napi_keys:\n" +
		"  - sha256: " + sumAll + "\n    permissions: ['*']\n    description: admin\n" +
		"  - sha256: " + sumRead + "\n    permissions: [tasks:read]\n    description: reader\n"
	path := filepath.Join(f.dir, "auth.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ac, err := auth.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.authenticator, err = auth.New(ac, nil); err != nil {
		t.Fatal(err)
	}
	f.c, _ = newClient(t, backend, api.Config{Auth: f.authenticator})
	return f
}

func (f *authFixture) token(t *testing.T, key []byte, perms []string, issued time.Time, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.GenerateToken(key, auth.TokenSpec{Subject: "test", Issuer: "tasker-core", Audience: "tasker-api",
		Permissions: perms, IssuedAt: issued, TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// as sends a request with header set to value ("" sends none).
func (f *authFixture) as(header, value, method, path string, body any) (int, []byte, http.Header) {
	f.c.header = http.Header{}
	if value != "" {
		f.c.header.Set(header, value)
	}
	st, out := f.c.do(method, path, body)
	return st, out, f.c.lastHeader
}

// past sends a request with header set to value and says whether it got
// past auth (neither 401 nor 403). What the handler then answers is
// TestAPI's to check, so it is not validated here.
func (f *authFixture) past(t *testing.T, header, value, method, path string, body any) (bool, int) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader("{}")
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.c.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(header, value)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.c.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode != 401 && resp.StatusCode != 403, resp.StatusCode
}

// concrete fills a pattern's parameters.
func concrete(path string) string {
	r := strings.NewReplacer("{uuid}", uuid.NewString(), "{step_uuid}", uuid.NewString(), "{task_uuid}", uuid.NewString(),
		"{dlq_entry_uuid}", uuid.NewString(), "{namespace}", "demo", "{name}", "linear_workflow", "{version}", "1.0.0")
	return r.Replace(path)
}

// otherPermission is a permission that does not grant perm.
func otherPermission(perm string) string {
	for _, p := range auth.Permissions {
		if !auth.Allows([]string{p.Name}, perm) {
			return p.Name
		}
	}
	panic("every permission grants " + perm)
}

// The auth matrix: every route of the spec, without credentials, with a
// token of another key, an expired token, a token of the wrong permission,
// the right one, and API keys. Each answer is validated against the spec
// (which lists 401 and 403 with ApiError on every protected route).
func TestAuthMatrix(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			f := newAuthFixture(t, backend)
			now := time.Now()
			for _, r := range specRoutes(t) {
				path := concrete(r.path)
				var body any
				if r.method == "POST" || r.method == "PATCH" {
					body = map[string]any{}
				}
				perm, _, _ := api.RouteAccess(r.pattern())
				if perm == "" { // a health route: public by default
					if st, out, _ := f.as("", "", r.method, path, body); st == 401 || st == 403 {
						t.Errorf("%s without credentials: %d %s, want the public answer", r.pattern(), st, out)
					}
					continue
				}
				want401 := map[string]string{
					"no credentials":            "",
					"another key's token":       "Bearer " + f.token(t, f.other, []string{perm}, now, time.Hour),
					"an expired token":          "Bearer " + f.token(t, f.priv, []string{perm}, now.Add(-2*time.Hour), time.Hour),
					"a malformed header":        "Basic dXNlcjpwYXNz",
					"a token that is not a JWT": "Bearer not-a-jwt",
				}
				for name, h := range want401 {
					st, out, hdr := f.as("Authorization", h, r.method, path, body)
					if st != 401 || !strings.Contains(string(out), `"AuthenticationError"`) || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("%s with %s: %d %s (WWW-Authenticate %q), want 401 AuthenticationError with a Bearer challenge",
							r.pattern(), name, st, out, hdr.Get("WWW-Authenticate"))
					}
				}
				if st, out, _ := f.as("X-API-Key", "tsk_wrong", r.method, path, body); st != 401 {
					t.Errorf("%s with an unknown API key: %d %s, want 401", r.pattern(), st, out)
				}
				wrong := otherPermission(perm)
				st, out, _ := f.as("Authorization", "Bearer "+f.token(t, f.priv, []string{wrong}, now, time.Hour), r.method, path, body)
				if st != 403 || !strings.Contains(string(out), `"AuthorizationError"`) || !strings.Contains(string(out), perm) {
					t.Errorf("%s with a token holding %s only: %d %s, want 403 AuthorizationError naming %s", r.pattern(), wrong, st, out, perm)
				}
				res, _, _ := strings.Cut(perm, ":")
				for name, h := range map[string]string{
					"the permission":        "Bearer " + f.token(t, f.priv, []string{perm}, now, time.Hour),
					"its resource wildcard": "Bearer " + f.token(t, f.priv, []string{res + ":*"}, now, time.Hour),
					"every permission (*)":  "Bearer " + f.token(t, f.priv, []string{"*"}, now, time.Hour),
				} {
					if ok, st := f.past(t, "Authorization", h, r.method, path, body); !ok {
						t.Errorf("%s with a token holding %s: %d, want past auth", r.pattern(), name, st)
					}
				}
				if ok, st := f.past(t, "X-API-Key", f.keyAll, r.method, path, body); !ok {
					t.Errorf("%s with the admin API key: %d, want past auth", r.pattern(), st)
				}
				if perm == "tasks:read" {
					if ok, st := f.past(t, "X-API-Key", f.keyTasksRead, r.method, path, body); !ok {
						t.Errorf("%s with the tasks:read API key: %d, want past auth", r.pattern(), st)
					}
				} else if st, out, _ := f.as("X-API-Key", f.keyTasksRead, r.method, path, body); st != 403 {
					t.Errorf("%s with the tasks:read API key: %d %s, want 403", r.pattern(), st, out)
				}
			}
			t.Run("the task context needs tasks:context_read", func(t *testing.T) { contextMatrix(t, f) })
			t.Run("a pull worker answers only to its principal", func(t *testing.T) { workerMatrix(t, f) })
			t.Run("metrics and docs stay public", func(t *testing.T) {
				for _, p := range []string{"/metrics", "/api-docs/openapi.json"} {
					if ok, st := f.past(t, "X-Nothing", "x", "GET", p, nil); !ok || st != 200 {
						t.Errorf("GET %s without credentials: %d, want 200", p, st)
					}
				}
			})
		})
	}
}

// The check reads headers only, before the body is decoded: a request
// without credentials, or without the permission, and with a malformed
// body is refused 401 or 403, not 400.
func TestAuthBeforeBody(t *testing.T) {
	f := newAuthFixture(t, "sqlite")
	st, out, _ := f.as("", "", "POST", "/v1/tasks", "{not json")
	if st != 401 {
		t.Fatalf("POST /v1/tasks without credentials and a malformed body: %d %s, want 401", st, out)
	}
	tok := f.token(t, f.priv, []string{"tasks:read"}, time.Now(), time.Hour)
	if st, out, _ = f.as("Authorization", "Bearer "+tok, "POST", "/v1/tasks", "{not json"); st != 403 {
		t.Fatalf("POST /v1/tasks without tasks:create and a malformed body: %d %s, want 403", st, out)
	}
	var e struct {
		AuthenticationError struct {
			Reason         string
			FailureContext struct{ Reason, Severity string } `json:"failure_context"`
		}
	}
	_, out, _ = f.as("", "", "GET", "/v1/tasks", nil)
	if err := json.Unmarshal(out, &e); err != nil || e.AuthenticationError.FailureContext.Reason != "Missing" {
		t.Errorf("401 body %s: want failure_context.reason Missing (%v)", out, err)
	}
}

// Validating a template needs templates:validate; registering it (which
// changes what tasks created without a version run) needs templates:register.
func TestRegisterTemplateNeedsItsPermission(t *testing.T) {
	f := newAuthFixture(t, "sqlite")
	doc, err := os.ReadFile(filepath.Join("..", "..", "examples", "linear.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(string(doc), "version: 1.0.0", "version: 99.0.0", 1)
	validate := f.token(t, f.priv, []string{"templates:validate"}, time.Now(), time.Hour)
	if st, out, _ := f.as("Authorization", "Bearer "+validate, "POST", "/v1/templates", body); st != 200 {
		t.Fatalf("validate with templates:validate: %d %s, want 200", st, out)
	}
	if st, out, _ := f.as("Authorization", "Bearer "+validate, "POST", "/v1/templates?register=true", body); st != 403 || !strings.Contains(string(out), "templates:register") {
		t.Fatalf("register with templates:validate only: %d %s, want 403 naming templates:register", st, out)
	}
	both := f.token(t, f.priv, []string{"templates:validate", "templates:register"}, time.Now(), time.Hour)
	if st, out, _ := f.as("Authorization", "Bearer "+both, "POST", "/v1/templates?register=true", body); st != 201 {
		t.Fatalf("register with templates:register: %d %s, want 201", st, out)
	}
}

var contextSecret = map[string]any{"value": float64(7), "card": "4111-1111"}

// contextBody is a create request whose context is contextSecret, in the
// idle namespace (no worker: the task stays unfinished, to be cancelled).
func contextBody() map[string]any {
	b := createBody("linear_workflow", contextSecret)
	b["namespace"] = "idle"
	b["idempotency_key"] = uuid.NewString()
	return b
}

// contextMatrix (a part of TestAuthMatrix): with auth on, a task's context
// is answered only to a caller holding tasks:context_read. The create,
// get, list and cancel answers and the event stream's snapshot carry {}
// (and X-Tasker-Context-Redacted) to the others, and every answer still
// validates against the spec.
func contextMatrix(t *testing.T, f *authFixture) {
	secret, body := contextSecret, contextBody
	contexts := func(t *testing.T, method, path string, out []byte) []any {
		t.Helper()
		if method == "GET" && path == "/v1/tasks?namespace=idle" {
			var l struct{ Tasks []struct{ Context any } }
			if err := json.Unmarshal(out, &l); err != nil || len(l.Tasks) == 0 {
				t.Fatalf("list: %v: %s", err, out)
			}
			var cs []any
			for _, x := range l.Tasks {
				cs = append(cs, x.Context)
			}
			return cs
		}
		var one struct{ Context any }
		if err := json.Unmarshal(out, &one); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
		return []any{one.Context}
	}
	now := time.Now()
	base := []string{"tasks:create", "tasks:read", "tasks:list", "tasks:cancel"}
	for _, c := range []struct {
		name   string
		header string
		value  string
		shown  bool
	}{
		{"a token without tasks:context_read", "Authorization", "Bearer " + f.token(t, f.priv, base, now, time.Hour), false},
		{"a token with tasks:context_read", "Authorization", "Bearer " + f.token(t, f.priv, append(slices.Clone(base), "tasks:context_read"), now, time.Hour), true},
		{"a token with tasks:*", "Authorization", "Bearer " + f.token(t, f.priv, []string{"tasks:*"}, now, time.Hour), true},
		{"the admin API key (*)", "X-API-Key", f.keyAll, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, out, hdr := f.as(c.header, c.value, "POST", "/v1/tasks", body())
			if st != 201 {
				t.Fatalf("create: %d %s", st, out)
			}
			var created taskResp
			if err := json.Unmarshal(out, &created); err != nil {
				t.Fatal(err)
			}
			check := func(what string, out []byte, hdr http.Header, cs []any) {
				t.Helper()
				for _, got := range cs {
					want := any(secret)
					if !c.shown {
						want = map[string]any{}
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s: context %v, want %v: %s", what, got, want, out)
					}
				}
				if red := hdr.Get(api.HeaderContextRedacted) == "true"; red == c.shown {
					t.Errorf("%s: %s %q, want it set only when the context is redacted", what, api.HeaderContextRedacted, hdr.Get(api.HeaderContextRedacted))
				}
			}
			check("create", out, hdr, contexts(t, "POST", "/v1/tasks", out))
			for _, path := range []string{"/v1/tasks/" + created.TaskUUID, "/v1/tasks?namespace=idle"} {
				st, out, hdr := f.as(c.header, c.value, "GET", path, nil)
				if st != 200 {
					t.Fatalf("GET %s: %d %s", path, st, out)
				}
				check("GET "+path, out, hdr, contexts(t, "GET", path, out))
			}
			// The event stream's snapshot is the task's answer.
			req, _ := http.NewRequestWithContext(t.Context(), "GET", f.c.srv.URL+"/v1/tasks/"+created.TaskUUID+"/events", nil)
			req.Header.Set(c.header, c.value)
			resp, err := f.c.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					check("the event stream's snapshot", []byte(data), resp.Header, contexts(t, "GET", "events", []byte(data)))
					break
				}
			}
			resp.Body.Close()
			st, out, hdr = f.as(c.header, c.value, "DELETE", "/v1/tasks/"+created.TaskUUID, nil)
			if st != 200 {
				t.Fatalf("cancel: %d %s", st, out)
			}
			check("cancel", out, hdr, contexts(t, "DELETE", "", out))
		})
	}
}

// With auth off, a task's context is always answered (contextMatrix has
// auth on).
func TestContextWithAuthOff(t *testing.T) {
	secret, body := contextSecret, contextBody
	c, _ := newClient(t, "sqlite", api.Config{})
	var created struct {
		TaskUUID string `json:"task_uuid"`
		Context  any
	}
	c.json("POST", "/v1/tasks", body(), 201, &created)
	if !reflect.DeepEqual(created.Context, any(secret)) || c.lastHeader.Get(api.HeaderContextRedacted) != "" {
		t.Fatalf("create with auth off: context %v, %s %q", created.Context, api.HeaderContextRedacted, c.lastHeader.Get(api.HeaderContextRedacted))
	}
	var got struct{ Context any }
	c.json("GET", "/v1/tasks/"+created.TaskUUID, nil, 200, &got)
	if !reflect.DeepEqual(got.Context, any(secret)) {
		t.Fatalf("GET with auth off: context %v, want %v", got.Context, secret)
	}
}

// workerMatrix (a part of TestAuthMatrix): with auth on, a pull worker
// belongs to the principal that registered it. Another principal holding
// worker:* is refused 403 naming the worker on every route that acts on
// it, and may not register its id until the owner lets it go.
func workerMatrix(t *testing.T, f *authFixture) {
	now := time.Now()
	as := func(sub string) string {
		tok, err := auth.GenerateToken(f.priv, auth.TokenSpec{Subject: sub, Issuer: "tasker-core", Audience: "tasker-api",
			Permissions: []string{"worker:*"}, IssuedAt: now, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	alice, bob := as("alice"), as("bob")
	id := "w-" + uuid.NewString()[:8]
	reg := map[string]any{"worker_id": id, "namespaces": []string{"demo"}, "handlers": []string{"nobody_serves_this"}}
	call := func(who, method, path string, body any) (int, string) {
		t.Helper()
		st, out, _ := f.as("Authorization", who, method, path, body)
		return st, string(out)
	}
	if st, out := call(alice, "POST", "/v1/workers", reg); st != 200 {
		t.Fatalf("alice registers %s: %d %s", id, st, out)
	}
	routes := []struct {
		method, path string
		body         any
		own          int // alice's answer
	}{
		{"POST", "/v1/workers", reg, 200}, // re-registering her own worker replaces it
		{"POST", "/v1/workers/" + id + "/poll", map[string]any{"max_events": 0}, 200},
		{"POST", "/v1/workers/" + id + "/heartbeat", map[string]any{}, 200},
		{"POST", "/v1/workers/" + id + "/events/" + uuid.NewString() + "/complete", map[string]any{"outcome": "success", "result": map[string]any{}}, 404},
	}
	for _, r := range routes {
		st, out := call(bob, r.method, r.path, r.body)
		if st != 403 || !strings.Contains(out, `"AuthorizationError"`) || !strings.Contains(out, id) {
			t.Errorf("bob: %s %s on alice's worker: %d %s, want 403 AuthorizationError naming %s", r.method, r.path, st, out, id)
		}
		if st, out := call(alice, r.method, r.path, r.body); st != r.own {
			t.Errorf("alice: %s %s on her worker: %d %s, want %d", r.method, r.path, st, out, r.own)
		}
	}
	if st, out := call(bob, "DELETE", "/v1/workers/"+id, nil); st != 403 || !strings.Contains(out, id) {
		t.Errorf("bob deregisters alice's worker: %d %s, want 403 naming it", st, out)
	}
	// The admin key holds every permission, but it is another principal.
	if st, out, _ := f.as("X-API-Key", f.keyAll, "POST", "/v1/workers/"+id+"/heartbeat", map[string]any{}); st != 403 {
		t.Errorf("the admin API key heartbeats alice's worker: %d %s, want 403", st, out)
	}
	var m struct {
		Workers []struct {
			WorkerID string `json:"worker_id"`
		}
	}
	if st, out := call(bob, "GET", "/v1/workers/metrics", nil); st != 200 || json.Unmarshal([]byte(out), &m) != nil || len(m.Workers) == 0 {
		t.Errorf("bob reads the workers' metrics: %d %s, want 200 listing alice's worker", st, out)
	}
	if st, out := call(alice, "DELETE", "/v1/workers/"+id, nil); st != 200 {
		t.Fatalf("alice deregisters her worker: %d %s", st, out)
	}
	if st, out := call(bob, "POST", "/v1/workers", reg); st != 200 {
		t.Errorf("bob registers the id alice let go: %d %s, want 200", st, out)
	}
	if st, out := call(alice, "POST", "/v1/workers/"+id+"/poll", map[string]any{"max_events": 0}); st != 403 {
		t.Errorf("alice polls the id bob now holds: %d %s, want 403", st, out)
	}
	// A token without sub names no principal, so it can own no worker.
	key, _, err := auth.ParsePrivateKeyPEM(f.priv)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": "tasker-core", "aud": "tasker-api",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "permissions": []string{"worker:*"}}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	reg["worker_id"] = "anonymous"
	if st, out := call("Bearer "+tok, "POST", "/v1/workers", reg); st != 403 || !strings.Contains(out, "sub") {
		t.Errorf("a token without sub registers a worker: %d %s, want 403 asking for a subject", st, out)
	}
}
