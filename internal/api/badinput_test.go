package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/internal/api"
)

// Issue 11 §5: each kind of bad input is answered with its status and a
// message naming what was wrong.
func TestBadInput(t *testing.T) {
	c, _ := newClient(t, "sqlite", api.Config{})
	msg := func(body []byte) string {
		var e map[string]map[string]string
		_ = json.Unmarshal(body, &e)
		for _, v := range e {
			return v["message"]
		}
		return string(body)
	}
	cases := []struct {
		name, method, path string
		body               any
		status             int
		mentions           string
	}{
		{"malformed JSON", "POST", "/v1/tasks", `{"namespace": "demo",`, 400, ""},
		{"an unknown field", "POST", "/v1/tasks", func() any { b := createBody("linear_workflow", map[string]any{"value": 1}); b["contxt"] = 1; return b }(), 400, `"contxt"`},
		{"a context that is not an object", "POST", "/v1/tasks", func() any { b := createBody("linear_workflow", nil); b["context"] = []int{1}; return b }(), 400, "not an array"},
		{"a field of the wrong type", "POST", "/v1/tasks", func() any { b := createBody("linear_workflow", map[string]any{"value": 1}); b["name"] = 7; return b }(), 400, "name"},
		{"a body that is not an object", "POST", "/v1/tasks", `[1]`, 400, ""},
		{"a context failing the template's schema", "POST", "/v1/tasks", createBody("linear_workflow", map[string]any{"value": "three"}), 400, "value"},
		{"a bad task uuid", "GET", "/v1/tasks/nope", nil, 400, "task uuid"},
		{"a bad step uuid", "GET", "/v1/tasks/0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d/workflow_steps/nope", nil, 400, "step uuid"},
		{"an unknown task", "GET", "/v1/tasks/0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d", nil, 404, ""},
		{"an unknown template", "GET", "/v1/templates/demo/nope/1.0.0", nil, 404, "nope"},
		{"an unknown field of a step action", "PATCH", "/v1/tasks/0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d/workflow_steps/0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d",
			map[string]any{"action_type": "resolve_manually", "resolved_by": "a", "reason": "b", "why": "c"}, 400, `"why"`},
		{"an unknown field of a DLQ update", "PATCH", "/v1/dlq/entry/0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d",
			map[string]any{"resolution_notes": "x", "resolvd_by": "y"}, 400, `"resolvd_by"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, out := c.do(tc.method, tc.path, tc.body)
			if st != tc.status || !strings.Contains(msg(out), tc.mentions) {
				t.Errorf("%s %s: %d %s; want %d mentioning %q", tc.method, tc.path, st, out, tc.status, tc.mentions)
			}
		})
	}
	t.Run("a manual action on a finished task is 409 naming the state", func(t *testing.T) {
		idle := idleTask(t, c)
		c.json("DELETE", "/v1/tasks/"+idle.TaskUUID, nil, 200, nil)
		st, out := c.do("PATCH", "/v1/tasks/"+idle.TaskUUID+"/workflow_steps/"+idle.Steps[0].WorkflowStepUUID,
			map[string]any{"action_type": "resolve_manually", "resolved_by": "ops", "reason": "x"})
		if st != 409 || !strings.Contains(msg(out), "cancelled") {
			t.Errorf("%d %s; want 409 naming cancelled", st, out)
		}
	})
}

// GET /v1/tasks pages by offset through every task: a page deeper than
// the newest 10,000 is answered, and the namespace filter is applied
// before paging.
func TestListTasksPages(t *testing.T) {
	c, _ := newClient(t, "sqlite", api.Config{})
	for i := range 3 {
		c.json("POST", "/v1/tasks", createBody("diamond_workflow", map[string]any{"value": 10 + i}), 201, nil)
	}
	var ids []string
	for range 2 {
		ids = append(ids, idleTask(t, c).TaskUUID)
	}
	var list struct {
		Tasks      []taskResp `json:"tasks"`
		Pagination struct {
			TotalCount int  `json:"total_count"`
			TotalPages int  `json:"total_pages"`
			HasNext    bool `json:"has_next"`
		} `json:"pagination"`
	}
	c.json("GET", "/v1/tasks?namespace=idle&per_page=1&page=2", nil, 200, &list)
	if len(list.Tasks) != 1 || list.Tasks[0].TaskUUID != ids[0] || list.Pagination.TotalCount != 2 || list.Pagination.HasNext {
		t.Errorf("idle page 2 of 2: %+v; want the older idle task, total 2, no next", list)
	}
	c.json("GET", "/v1/tasks?per_page=2&page=3", nil, 200, &list)
	if len(list.Tasks) != 1 || list.Pagination.TotalCount != 5 || list.Pagination.TotalPages != 3 {
		t.Errorf("page 3 of 5 by 2: %+v", list)
	}
	c.json("GET", fmt.Sprintf("/v1/tasks?per_page=100&page=%d", 150), nil, 200, &list)
	if len(list.Tasks) != 0 || list.Pagination.TotalCount != 5 {
		t.Errorf("page 150 by 100 (past the newest 10,000): %+v", list)
	}
}
