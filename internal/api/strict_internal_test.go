package api

import (
	"bytes"
	"encoding/json"
	"github.com/tasker-go/tasker/internal/api/gen"
	"io"
	"strings"
	"testing"
)

var benchTaskBody = []byte(`{"namespace":"demo","name":"single_workflow","version":"1.0.0","context":{"value":3},` +
	`"idempotency_key":"6d1f0d4e-3b1a-4a43-9d55-0c6b3f1d2a10","correlation_id":"0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d",` +
	`"initiator":"bench","reason":"bench","source_system":"bench","requested_at":"2026-12-06T00:00:00Z","tags":[]}`)

func BenchmarkDecodeTaskRequest(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, unknown, err := decodeTaskRequest(benchTaskBody); err != nil || unknown != "" {
			b.Fatal(unknown, err)
		}
	}
}

// The decoding POST /v1/tasks did before createTaskServer: the strict
// check's map, the generated decoder, the context encoded again.
func BenchmarkDecodeTaskRequestTwice(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(benchTaskBody, &m); err != nil {
			b.Fatal(err)
		}
		var v gen.TaskRequest
		if err := json.NewDecoder(bytes.NewReader(benchTaskBody)).Decode(&v); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(v.Context); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecodeTaskRequest(t *testing.T) {
	t.Run("the context is kept as the JSON it came as", func(t *testing.T) {
		req, unknown, err := decodeTaskRequest([]byte(`{"name":"n","namespace":"ns","context":{"b": 1.50, "a":12345678901234567891},"priority":3}`))
		if err != nil || unknown != "" {
			t.Fatal(unknown, err)
		}
		raw, ok := req.Context.(json.RawMessage)
		if !ok || string(raw) != `{"b": 1.50, "a":12345678901234567891}` {
			t.Errorf("context %T %s", req.Context, req.Context)
		}
		if req.Name != "n" || req.Namespace != "ns" || req.Priority == nil || *req.Priority != 3 {
			t.Errorf("request %+v", req)
		}
	})
	t.Run("a null or absent context is nil", func(t *testing.T) {
		for _, body := range []string{`{"name":"n","context":null}`, `{"name":"n"}`, `null`} {
			req, _, err := decodeTaskRequest([]byte(body))
			if err != nil || req.Context != nil {
				t.Errorf("%s: %v %v", body, req.Context, err)
			}
		}
	})
	t.Run("a member the spec does not define is named, whatever its case", func(t *testing.T) {
		for body, want := range map[string]string{`{"name":"n","contxt":1}`: "contxt", `{"Name":"n"}`: "Name"} {
			if _, unknown, _ := decodeTaskRequest([]byte(body)); unknown != want {
				t.Errorf("%s: unknown %q, want %q", body, unknown, want)
			}
		}
	})
	t.Run("a member of the wrong type is the decoder's error naming it", func(t *testing.T) {
		_, _, err := decodeTaskRequest([]byte(`{"name":3}`))
		if err == nil || !strings.Contains(err.Error(), "TaskRequest.name") {
			t.Errorf("err %v, want one naming TaskRequest.name", err)
		}
	})
	t.Run("an empty body is io.EOF, a body that is no object an error", func(t *testing.T) {
		if _, _, err := decodeTaskRequest([]byte(" \n")); err != io.EOF {
			t.Errorf("empty body: %v", err)
		}
		for _, body := range []string{`[1]`, `{"name":"n"} {}`, `{"name":`} {
			if _, _, err := decodeTaskRequest([]byte(body)); err == nil {
				t.Errorf("%s: no error", body)
			}
		}
	})
}
