package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/google/uuid"

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

// POST /v1/tasks stores the context compact, with one value per key (the
// last) and every number's digits; a lone surrogate escape is read as
// U+FFFD, and a context of bad UTF-8 is mended (to U+FFFD) rather than
// refused by a store, on every backend.
func TestCreateStoresTheContextCompactWithItsDigits(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			c, eng := newClient(t, backend, api.Config{})
			for _, tc := range []struct{ context, key, want string }{
				{`{"value": 2, "big": 12345678901234567891}`, "big", "12345678901234567891"},
				{`{"value": 2, "s": "\ud800"}`, "s", "\ufffd"},
				{"{\"value\": 2, \"s\": \"a\xffb\"}", "s", "a\ufffdb"},
				{"{\"value\": 2, \"big\": 12345678901234567891, \"s\": \"a\xffb\"}", "big", "12345678901234567891"},
				{`{ "value" : 2 , "a" : 1 , "a" : 3 }`, "a", "3"},
			} {
				body := `{"namespace":"idle","name":"linear_workflow","version":"1.0.0","idempotency_key":"` + uuid.NewString() + `","context":` + tc.context + `}`
				st, out := c.do("POST", "/v1/tasks", body)
				if st != 201 {
					t.Fatalf("create with %s: %d %s", tc.context, st, out)
				}
				var created struct {
					TaskUUID string `json:"task_uuid"`
				}
				if err := json.Unmarshal(out, &created); err != nil {
					t.Fatal(err)
				}
				_, got := c.do("GET", "/v1/tasks/"+created.TaskUUID, nil)
				dec := json.NewDecoder(bytes.NewReader(got))
				dec.UseNumber()
				var task struct {
					Context map[string]any `json:"context"`
				}
				if err := dec.Decode(&task); err != nil {
					t.Fatal(err)
				}
				if v := fmt.Sprint(task.Context[tc.key]); v != tc.want {
					t.Errorf("context %s: %s is %q, want %q", tc.context, tc.key, v, tc.want)
				}
				info, err := eng.Task(t.Context(), uuid.MustParse(created.TaskUUID))
				if err != nil {
					t.Fatal(err)
				}
				var compact bytes.Buffer
				if err := json.Compact(&compact, info.Task.Context); err != nil || !bytes.Equal(compact.Bytes(), info.Task.Context) || bytes.Count(info.Task.Context, []byte(`"a"`)) > 1 {
					t.Errorf("context %s stored as %s, want it compact with one value per key", tc.context, info.Task.Context)
				}
			}
		})
	}
}
