package api_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tasker-go/tasker/internal/api"
)

// POST /v1/tasks answers the task and its steps as its create transaction
// committed them, without reading them back: for a task no worker moves
// (the idle namespace), that answer is the same as GET /v1/tasks/{uuid}'s,
// field for field, on every backend (a time the store keeps at another
// precision, a field the create leaves out, would differ).
func TestCreateAnswersWhatIsStored(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			c, _ := newClient(t, backend, api.Config{})
			for _, name := range []string{"linear_workflow", "diamond_workflow"} {
				body := contextBody()
				body["name"] = name
				if name == "diamond_workflow" {
					body["namespace"] = "demo"
					body["context"] = map[string]any{"value": float64(5)}
					delete(body, "idempotency_key")
				}
				var created, got map[string]any
				st, out := c.do("POST", "/v1/tasks", body)
				if st != 201 {
					t.Fatalf("create %s: %d %s", name, st, out)
				}
				if err := json.Unmarshal(out, &created); err != nil {
					t.Fatal(err)
				}
				if name == "diamond_workflow" {
					// Its steps run at once: the answer must only be the
					// spec's (c.do checked it) and name the task.
					if created["task_uuid"] == "" {
						t.Fatalf("create %s: no task_uuid: %s", name, out)
					}
					continue
				}
				c.json("GET", "/v1/tasks/"+created["task_uuid"].(string), nil, 200, &got)
				if !reflect.DeepEqual(created, got) {
					for k := range got {
						if !reflect.DeepEqual(created[k], got[k]) {
							t.Errorf("%s: the create answered %s %v, GET answers %v", name, k, created[k], got[k])
						}
					}
				}
			}
		})
	}
}
