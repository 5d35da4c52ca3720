package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/api"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
)

// BenchmarkCreateTask compares POST /v1/tasks over a loopback HTTP
// connection with the in-process Engine.CreateTask on the same engine, in
// one run (the idle namespace: no worker runs the steps). Report the ratio.
//
//	TASKER_TEST_POSTGRES_URL=... go test -run '^$' -bench CreateTask -count 3 ./internal/api
func BenchmarkCreateTask(b *testing.B) {
	backends := []string{"sqlite"}
	if os.Getenv(pgtest.EnvURL) != "" {
		backends = append(backends, "postgres")
	}
	for _, backend := range backends {
		h, eng := newServer(b, backend, api.Config{})
		srv := httptest.NewServer(h)
		b.Cleanup(srv.Close)
		// Each task has a key of its own: the same context is otherwise the
		// same task (docs/identity.md).
		n := 0
		b.Run(backend+"/in-process", func(b *testing.B) {
			for b.Loop() {
				n++
				if _, err := eng.CreateTask(b.Context(), tasker.CreateTaskParams{Namespace: "idle", Name: "linear_workflow", Context: map[string]any{"value": 1},
					IdempotencyKey: fmt.Sprint("p", n)}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(backend+"/http", func(b *testing.B) {
			for b.Loop() {
				n++
				body, _ := json.Marshal(map[string]any{"namespace": "idle", "name": "linear_workflow", "version": "1.0.0", "context": map[string]any{"value": 1},
					"idempotency_key": fmt.Sprint("h", n)})
				resp, err := srv.Client().Post(srv.URL+"/v1/tasks", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				// Read to the end: a body closed unread closes the
				// connection, and each call would dial a new one.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
