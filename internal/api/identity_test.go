package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/internal/api"
)

// POST /v1/tasks stores the request's fields and answers them; the same
// task again is 409 Conflict naming the first; an idempotency key makes
// another task (docs/identity.md).
func TestCreateTaskRequestFieldsAndDuplicates(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			c, _ := newClient(t, backend, api.Config{MaxBodyBytes: 4096})
			body := createBody("linear_workflow", map[string]any{"value": 5})
			body["initiator"], body["source_system"], body["reason"] = "alice", "shop", "order placed"
			body["tags"], body["priority"] = []string{"a", "b"}, 7
			body["parent_correlation_id"] = "0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5e"
			type resp struct {
				TaskUUID     string   `json:"task_uuid"`
				Correlation  string   `json:"correlation_id"`
				Parent       string   `json:"parent_correlation_id"`
				Initiator    string   `json:"initiator"`
				SourceSystem string   `json:"source_system"`
				Reason       string   `json:"reason"`
				Tags         []string `json:"tags"`
				Priority     int      `json:"priority"`
			}
			var created, got resp
			c.json("POST", "/v1/tasks", body, 201, &created)
			c.json("GET", "/v1/tasks/"+created.TaskUUID, nil, 200, &got)
			for what, r := range map[string]resp{"created": created, "read": got} {
				if r.Correlation != "0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d" || r.Parent != "0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5e" ||
					r.Initiator != "alice" || r.SourceSystem != "shop" || r.Reason != "order placed" ||
					!slices.Equal(r.Tags, []string{"a", "b"}) || r.Priority != 7 {
					t.Errorf("%s: %+v", what, r)
				}
			}
			st, out := c.do("POST", "/v1/tasks", body)
			if st != http.StatusConflict || !strings.Contains(string(out), `"Conflict"`) || !strings.Contains(string(out), created.TaskUUID) {
				t.Errorf("the same task again: %d %s, want 409 Conflict naming %s", st, out, created.TaskUUID)
			}
			body["idempotency_key"] = "k-1"
			var keyed resp
			c.json("POST", "/v1/tasks", body, 201, &keyed)
			if keyed.TaskUUID == created.TaskUUID {
				t.Error("a key did not make another task")
			}
			if st, out := c.do("POST", "/v1/tasks", body); st != http.StatusConflict || !strings.Contains(string(out), keyed.TaskUUID) {
				t.Errorf("the same key again: %d %s, want 409 naming %s", st, out, keyed.TaskUUID)
			}
		})
	}
}
