package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/tasker-go/tasker"
	specfile "github.com/tasker-go/tasker/api"
	"github.com/tasker-go/tasker/examples"
	"github.com/tasker-go/tasker/internal/api"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/template"
)

// client drives the API under test and validates every response it
// receives against the OpenAPI 3.1 spec (api/openapi.yaml), so that drift
// between the handlers and the spec fails.
type client struct {
	t   *testing.T
	srv *httptest.Server
	v   validator.Validator
	// header is sent with every request (credentials).
	header http.Header
	// lastHeader is the last answer's header.
	lastHeader http.Header
}

func newValidator(t *testing.T) validator.Validator {
	doc, err := libopenapi.NewDocument(specfile.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("spec: %v", errs)
	}
	return v
}

// do sends a request and returns the status and body. Every answer but a
// 413 (the body limit, answered before routing) and the exceptions of
// validated must match the spec.
func (c *client) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	var raw []byte
	if body != nil {
		switch b := body.(type) {
		case string:
			raw = []byte(b)
		default:
			var err error
			if raw, err = json.Marshal(b); err != nil {
				c.t.Fatal(err)
			}
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.srv.URL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	resp, err := c.srv.Client().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	c.lastHeader = resp.Header
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if validated(method, path, resp.StatusCode) {
		vreq, _ := http.NewRequest(method, path, bytes.NewReader(raw))
		if body != nil {
			vreq.Header.Set("Content-Type", "application/json")
		}
		resp.Body = io.NopCloser(bytes.NewReader(out))
		if ok, errs := c.v.ValidateHttpResponse(vreq, resp); !ok {
			for _, e := range errs {
				c.t.Errorf("%s %s: %d answer does not match the spec: %s (%s) %v", method, path, resp.StatusCode, e.Message, e.Reason, e.SchemaValidationErrors)
			}
			c.t.Logf("body: %s", out)
		}
	}
	return resp.StatusCode, out
}

// validated says whether an answer is checked against the spec: all but
// 413 (the body limit, before routing), the spec document itself, and 400
// for a malformed task uuid or an out-of-range query parameter on the GET
// routes whose spec lists no 400 (docs/api.md).
func validated(method, path string, status int) bool {
	switch {
	case status == http.StatusRequestEntityTooLarge:
		return false
	case path == "/api-docs/openapi.json", path == "/metrics":
		return false
	case status == http.StatusBadRequest && method == "GET" && (strings.HasPrefix(path, "/v1/tasks/") || strings.HasPrefix(path, "/v1/dlq") || strings.HasPrefix(path, "/v1/analytics")):
		return false
	}
	return true
}

func (c *client) json(method, path string, body any, wantStatus int, into any) {
	c.t.Helper()
	st, out := c.do(method, path, body)
	if st != wantStatus {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, wantStatus, out)
	}
	if into != nil {
		if err := json.Unmarshal(out, into); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, path, err, out)
		}
	}
}

func backends(t *testing.T) []string {
	b := []string{"sqlite"}
	if os.Getenv(pgtest.EnvURL) != "" {
		b = append(b, "postgres")
	} else {
		t.Logf("PostgreSQL half skipped: set %s", pgtest.EnvURL)
	}
	return b
}

func exampleTemplates(t testing.TB) []*template.Template {
	var tpls []*template.Template
	for _, name := range []string{"linear.yaml", "diamond.yaml", "idle"} {
		file := name
		if name == "idle" {
			file = "linear.yaml"
		}
		raw, err := examples.FS.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if name == "idle" {
			// The linear workflow in a namespace no worker serves: its
			// tasks wait, to be cancelled and acted on by hand.
			raw = bytes.Replace(raw, []byte("namespace: demo"), []byte("namespace: idle"), 1)
		}
		tpl, err := template.Parse(name, raw)
		if err != nil {
			t.Fatal(err)
		}
		tpls = append(tpls, tpl)
	}
	return tpls
}

// newServer opens an engine on backend with the example templates and the
// demo workers, and returns the API's handler over it.
func newServer(t testing.TB, backend string, cfg api.Config) (http.Handler, *tasker.Engine) {
	h, eng, _ := newServerURL(t, backend, cfg)
	return h, eng
}

// newServerURL is newServer that also returns the PostgreSQL URL ("" on
// SQLite), for a second engine on the same database.
func newServerURL(t testing.TB, backend string, cfg api.Config) (http.Handler, *tasker.Engine, string) {
	tc := tasker.Config{DatabasePath: filepath.Join(t.TempDir(), "t.db"), Templates: exampleTemplates(t), WorkerNamespaces: []string{"demo"}}
	if backend == "postgres" {
		_, url := pgtest.Schema(t)
		tc = tasker.Config{DatabaseURL: url, AutoMigrate: true, Templates: tc.Templates, WorkerNamespaces: tc.WorkerNamespaces}
	}
	eng, err := tasker.Open(t.Context(), tc)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range demo.Handlers() {
		if err := eng.RegisterHandler(name, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Stop(context.Background()) })
	cfg.Engine = eng
	s, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s.Handler(), eng, tc.DatabaseURL
}

func newClient(t *testing.T, backend string, cfg api.Config) (*client, *tasker.Engine) {
	h, eng := newServer(t, backend, cfg)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &client{t: t, srv: srv, v: newValidator(t)}, eng
}

type taskResp struct {
	TaskUUID   string `json:"task_uuid"`
	Status     string `json:"status"`
	TotalSteps int    `json:"total_steps"`
	Completed  int    `json:"completed_steps"`
	Steps      []struct {
		WorkflowStepUUID string `json:"workflow_step_uuid"`
		Name             string `json:"name"`
	} `json:"steps"`
}

func createBody(name string, ctx any) map[string]any {
	return map[string]any{"namespace": "demo", "name": name, "version": "1.0.0", "context": ctx,
		"correlation_id": "0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d", "initiator": "test", "reason": "test",
		"requested_at": time.Now().UTC().Format(time.RFC3339), "source_system": "test", "tags": []string{}}
}

func TestAPI(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			c, eng := newClient(t, backend, api.Config{MaxBodyBytes: 4096})

			t.Run("health routes answer and match the spec", func(t *testing.T) {
				for _, p := range []string{"/health", "/live", "/ready", "/health/ready", "/health/live", "/health/detailed"} {
					c.json("GET", p, nil, 200, nil)
				}
			})

			t.Run("the spec is served as JSON", func(t *testing.T) {
				var doc map[string]any
				c.json("GET", "/api-docs/openapi.json", nil, 200, &doc)
				if doc["openapi"] != "3.1.0" || doc["paths"].(map[string]any)["/v1/tasks"] == nil {
					t.Errorf("served spec: openapi %v, paths without /v1/tasks", doc["openapi"])
				}
			})

			var created taskResp
			t.Run("a created task runs to completion and is answered with its steps", func(t *testing.T) {
				c.json("POST", "/v1/tasks", createBody("linear_workflow", map[string]any{"value": 3}), 201, &created)
				if created.TotalSteps != 4 || len(created.Steps) != 4 {
					t.Fatalf("created task: %+v, want 4 steps", created)
				}
				id := created.TaskUUID
				deadline := time.Now().Add(20 * time.Second)
				var got taskResp
				for {
					c.json("GET", "/v1/tasks/"+id, nil, 200, &got)
					if got.Status == "complete" || time.Now().After(deadline) {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				if got.Status != "complete" || got.Completed != 4 {
					t.Fatalf("task %s: status %s, %d of 4 steps complete", id, got.Status, got.Completed)
				}
				var steps []struct {
					StepUUID string          `json:"step_uuid"`
					Name     string          `json:"name"`
					State    string          `json:"current_state"`
					Results  json.RawMessage `json:"results"`
				}
				c.json("GET", "/v1/tasks/"+id+"/workflow_steps", nil, 200, &steps)
				if len(steps) != 4 || steps[3].Name != "add_three" || string(steps[3].Results) != `{"value":18}` {
					t.Fatalf("steps: %+v, want add_three = 18 last", steps)
				}
				var one struct {
					Name string `json:"name"`
				}
				c.json("GET", "/v1/tasks/"+id+"/workflow_steps/"+steps[1].StepUUID, nil, 200, &one)
				if one.Name != steps[1].Name {
					t.Errorf("step %s answered as %q, want %q", steps[1].StepUUID, one.Name, steps[1].Name)
				}
			})

			t.Run("tasks are listed with filters and pages", func(t *testing.T) {
				for i := range 2 { // two contexts: the same one is the same task (docs/identity.md)
					c.json("POST", "/v1/tasks", createBody("diamond_workflow", map[string]any{"value": 2 + i}), 201, nil)
				}
				var list struct {
					Tasks      []taskResp `json:"tasks"`
					Pagination struct {
						Page, PerPage, TotalPages int
						TotalCount                int  `json:"total_count"`
						HasNext                   bool `json:"has_next"`
					} `json:"pagination"`
				}
				c.json("GET", "/v1/tasks?per_page=2&page=1", nil, 200, &list)
				if len(list.Tasks) != 2 || list.Pagination.TotalCount != 3 || !list.Pagination.HasNext {
					t.Errorf("page 1 of 2: %d tasks, total %d, has_next %v; want 2, 3, true", len(list.Tasks), list.Pagination.TotalCount, list.Pagination.HasNext)
				}
				c.json("GET", "/v1/tasks?per_page=2&page=2", nil, 200, &list)
				if len(list.Tasks) != 1 || list.Pagination.HasNext {
					t.Errorf("page 2 of 2: %d tasks, has_next %v; want 1, false", len(list.Tasks), list.Pagination.HasNext)
				}
				c.json("GET", "/v1/tasks?namespace=nope", nil, 200, &list)
				if len(list.Tasks) != 0 || list.Pagination.TotalCount != 0 {
					t.Errorf("namespace nope: %d tasks", len(list.Tasks))
				}
				c.json("GET", "/v1/tasks?status=complete&namespace=demo", nil, 200, &list)
				for _, tk := range list.Tasks {
					if tk.Status != "complete" {
						t.Errorf("status=complete listed a task %s", tk.Status)
					}
				}
				st, out := c.do("GET", "/v1/tasks?status=bogus", nil)
				if st != 400 || !strings.Contains(string(out), "bogus") {
					t.Errorf("status=bogus: %d %s, want 400 naming it", st, out)
				}
			})

			t.Run("a waiting task is cancelled; a finished one cannot be", func(t *testing.T) {
				body := createBody("linear_workflow", map[string]any{"value": 1})
				body["namespace"] = "idle"
				var idle taskResp
				c.json("POST", "/v1/tasks", body, 201, &idle)
				var got taskResp
				c.json("DELETE", "/v1/tasks/"+idle.TaskUUID, nil, 200, &got)
				if got.Status != "cancelled" {
					t.Errorf("cancelled task answered %s", got.Status)
				}
				st, out := c.do("DELETE", "/v1/tasks/"+created.TaskUUID, nil)
				if st != 400 || !strings.Contains(string(out), "complete") {
					t.Errorf("cancel a complete task: %d %s, want 400 naming its state", st, out)
				}
			})

			t.Run("an operator completes, resolves and resets steps by hand", func(t *testing.T) {
				body := createBody("linear_workflow", map[string]any{"value": 2}) // a context of its own: the same one is the same task
				body["namespace"] = "idle"
				var idle taskResp
				c.json("POST", "/v1/tasks", body, 201, &idle)
				path := "/v1/tasks/" + idle.TaskUUID + "/workflow_steps/" + idle.Steps[0].WorkflowStepUUID
				var step struct {
					State   string          `json:"current_state"`
					Results json.RawMessage `json:"results"`
				}
				c.json("PATCH", path, map[string]any{"action_type": "complete_manually", "completed_by": "ops", "reason": "by hand",
					"completion_data": map[string]any{"result": map[string]any{"value": 2}}}, 200, &step)
				if step.State != "complete" || string(step.Results) != `{"value":2}` {
					t.Errorf("completed by hand: %s %s", step.State, step.Results)
				}
				st, out := c.do("PATCH", path, map[string]any{"action_type": "reset_for_retry", "reset_by": "ops", "reason": "again"})
				if st < 400 || !strings.Contains(string(out), "complete") {
					t.Errorf("reset a complete step: %d %s, want a refusal naming its state", st, out)
				}
				st, out = c.do("PATCH", path, map[string]any{"action_type": "explode"})
				if st != 400 || !strings.Contains(string(out), "explode") {
					t.Errorf("unknown action: %d %s", st, out)
				}
				st, out = c.do("PATCH", path, map[string]any{"action_type": "resolve_manually"})
				if st != 400 || !strings.Contains(string(out), "resolved_by") {
					t.Errorf("resolve without resolved_by: %d %s", st, out)
				}
			})

			t.Run("DLQ investigations are listed, counted, queued and updated", func(t *testing.T) {
				body := createBody("linear_workflow", map[string]any{"value": 4}) // a context of its own: the same one is the same task
				body["namespace"] = "idle"
				var idle taskResp
				c.json("POST", "/v1/tasks", body, 201, &idle)
				en, err := eng.SendToDLQ(t.Context(), uuidOf(t, idle.TaskUUID), "looks stuck", "test")
				if err != nil {
					t.Fatal(err)
				}
				var list []struct {
					ID     string `json:"dlq_entry_uuid"`
					Reason string `json:"dlq_reason"`
					Status string `json:"resolution_status"`
				}
				c.json("GET", "/v1/dlq?resolution_status=Pending&limit=10", nil, 200, &list)
				if len(list) != 1 || list[0].ID != en.ID.String() || list[0].Reason != "ManualDlq" || list[0].Status != "Pending" {
					t.Errorf("dlq list: %+v, want the one pending ManualDlq entry", list)
				}
				c.json("GET", "/v1/dlq/task/"+idle.TaskUUID, nil, 200, nil)
				var stats []struct {
					Reason  string `json:"dlq_reason"`
					Pending int    `json:"pending"`
				}
				c.json("GET", "/v1/dlq/stats", nil, 200, &stats)
				if len(stats) != 1 || stats[0].Pending != 1 {
					t.Errorf("dlq stats: %+v", stats)
				}
				var queue []map[string]any
				c.json("GET", "/v1/dlq/investigation-queue", nil, 200, &queue)
				if len(queue) != 1 {
					t.Errorf("investigation queue: %d entries, want 1", len(queue))
				}
				c.json("GET", "/v1/dlq/staleness?limit=50", nil, 200, nil)
				var upd struct {
					Success bool `json:"success"`
				}
				c.json("PATCH", "/v1/dlq/entry/"+en.ID.String(), map[string]any{"resolution_status": "ManuallyResolved", "resolved_by": "ops", "resolution_notes": "fixed"}, 200, &upd)
				c.json("GET", "/v1/dlq?resolution_status=ManuallyResolved", nil, 200, &list)
				if !upd.Success || len(list) != 1 {
					t.Errorf("after the update: success %v, %d resolved entries", upd.Success, len(list))
				}
				st, out := c.do("GET", "/v1/dlq?limit=5000", nil)
				if st != 400 || !strings.Contains(string(out), "limit") {
					t.Errorf("limit=5000: %d %s", st, out)
				}
			})

			t.Run("bad input is answered 400 or 404 naming what was wrong", func(t *testing.T) {
				cases := []struct {
					method, path string
					body         any
					status       int
					mention      string
				}{
					{"GET", "/v1/tasks/not-a-uuid", nil, 400, "not-a-uuid"},
					{"GET", "/v1/tasks/0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d", nil, 404, "not found"},
					{"GET", "/v1/tasks/" + created.TaskUUID + "/workflow_steps/0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d", nil, 404, "not found"},
					{"POST", "/v1/tasks", `{"namespace":`, 400, ""},
					{"POST", "/v1/tasks", createBody("no_such_template", map[string]any{}), 400, "no_such_template"},
					{"POST", "/v1/tasks", createBody("linear_workflow", []int{1}), 400, "context"},
					{"GET", "/v1/templates/demo/nope/1.0.0", nil, 404, "nope"},
				}
				for _, tc := range cases {
					st, out := c.do(tc.method, tc.path, tc.body)
					if st != tc.status || !strings.Contains(string(out), tc.mention) {
						t.Errorf("%s %s: %d %s, want %d mentioning %q", tc.method, tc.path, st, out, tc.status, tc.mention)
					}
				}
			})

			t.Run("a body over the limit is answered 413", func(t *testing.T) {
				big := createBody("linear_workflow", map[string]any{"value": 3, "pad": strings.Repeat("x", 5000)})
				st, out := c.do("POST", "/v1/tasks", big)
				if st != 413 {
					t.Errorf("5 KB body with a 4 KB limit: %d %s, want 413", st, out)
				}
			})

			t.Run("templates are listed and detailed", func(t *testing.T) {
				var list struct {
					TotalCount int `json:"total_count"`
				}
				c.json("GET", "/v1/templates", nil, 200, &list)
				if list.TotalCount != 3 {
					t.Errorf("templates: %d, want 3", list.TotalCount)
				}
				var d struct {
					Steps []struct{ Name string } `json:"steps"`
				}
				c.json("GET", "/v1/templates/demo/linear_workflow/1.0.0", nil, 200, &d)
				if len(d.Steps) != 4 {
					t.Errorf("linear_workflow detail: %d steps, want 4", len(d.Steps))
				}
			})

		})
	}
}

func uuidOf(t *testing.T, s string) uuid.UUID {
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := api.New(api.Config{}); err == nil || !strings.Contains(err.Error(), "Engine") {
		t.Errorf("no engine: %v", err)
	}
	_ = fmt.Sprint()
}
