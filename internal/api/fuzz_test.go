package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/api"
)

// Whatever body a client sends to the routes that decode one, the answer is
// a client error or a success with a JSON body, never a 500 or a panic.
func FuzzRequestBodies(f *testing.F) {
	h, _ := newServer(f, "sqlite", api.Config{MaxBodyBytes: 64 << 10})
	const id = "0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d"
	routes := []struct{ method, path string }{
		{"POST", "/v1/tasks"},
		{"PATCH", "/v1/tasks/" + id + "/workflow_steps/" + id},
		{"PATCH", "/v1/dlq/entry/" + id},
	}
	f.Add(uint8(0), `{"namespace":"demo","name":"linear_workflow","version":"1.0.0","context":{"value":3}}`)
	f.Add(uint8(0), `{"namespace":"demo","name":"linear_workflow","context":[1]}`)
	f.Add(uint8(0), `{"namespace":`)
	f.Add(uint8(1), `{"action_type":"complete_manually","completed_by":"a","reason":"b","completion_data":{"result":1}}`)
	f.Add(uint8(1), `{"action_type":"nope"}`)
	f.Add(uint8(2), `{"resolution_status":"Bogus"}`)
	f.Add(uint8(2), `{"metadata":{"a":[1,2]},"resolved_by":"x"}`)
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		r := routes[int(which)%len(routes)]
		req := httptest.NewRequestWithContext(t.Context(), r.method, r.path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", r.method, r.path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Errorf("%s %s %q: %d without a JSON body: %s", r.method, r.path, body, rec.Code, rec.Body)
		}
		_ = http.StatusOK
	})
}

// Whatever body a pull worker sends to the /v1/workers routes, the answer
// is a client error or a success with a JSON body, never a 500 or a panic.
func FuzzWorkerBodies(f *testing.F) {
	h, _ := newServer(f, "sqlite", api.Config{MaxBodyBytes: 64 << 10, MaxPollTimeout: time.Millisecond})
	reg := httptest.NewRequest("POST", "/v1/workers", strings.NewReader(`{"worker_id":"fz","namespaces":["demo"],"handlers":["py.x"]}`))
	reg.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, reg)
	if rec.Code != http.StatusOK {
		f.Fatalf("register: %d %s", rec.Code, rec.Body)
	}
	const id = "0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d"
	routes := []struct{ method, path string }{
		{"POST", "/v1/workers"},
		{"POST", "/v1/workers/fz/poll"},
		{"POST", "/v1/workers/fz/events/" + id + "/complete"},
		{"POST", "/v1/workers/fz/heartbeat"},
	}
	f.Add(uint8(0), `{"worker_id":"w","namespaces":["a"],"handlers":["b"],"concurrency":2}`)
	f.Add(uint8(0), `{"worker_id":"a/b","namespaces":[],"handlers":[""]}`)
	f.Add(uint8(1), `{"max_events":5,"timeout_ms":10,"completions":[{"event_id":"`+id+`","outcome":"success","result":{"a":1}}]}`)
	f.Add(uint8(1), `{"max_events":-1,"completions":[{"outcome":"failure"}]}`)
	f.Add(uint8(2), `{"outcome":"failure","error":{"message":"m","retry_after_seconds":-1,"metadata":{"k":[1]}}}`)
	f.Add(uint8(2), `{"outcome":"checkpoint_yield","checkpoint":{"cursor":null,"items_processed":-3}}`)
	f.Add(uint8(3), `{"event_ids":["`+id+`","nope"]}`)
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		r := routes[int(which)%len(routes)]
		req := httptest.NewRequestWithContext(t.Context(), r.method, r.path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		// 503: the registry is full (the fuzzer registers many workers).
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s %q: %d %s", r.method, r.path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Errorf("%s %s %q: %d without a JSON body: %s", r.method, r.path, body, rec.Code, rec.Body)
		}
	})
}
