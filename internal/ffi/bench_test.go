package ffi_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/ffi"
)

// BenchmarkPullWorker runs b.N four-step chains (or single steps) through
// pull workers that poll and complete through Host.Call, the path of a
// Python worker over the C ABI, without Python: for CPU profiles of the
// engine's side (go test -bench PullWorker -cpuprofile).
func BenchmarkPullWorker(b *testing.B) {
	for _, shape := range []string{"single", "linear"} {
		b.Run(shape, func(b *testing.B) { benchPull(b, shape) })
	}
}

func benchPull(b *testing.B, shape string) {
	dir := b.TempDir()
	steps := "  - {name: s1, handler: bench.noop}\n"
	n := 1
	if shape == "linear" {
		steps += "  - {name: s2, handler: bench.noop, depends_on: [s1]}\n" +
			"  - {name: s3, handler: bench.noop, depends_on: [s2]}\n" +
			"  - {name: s4, handler: bench.noop, depends_on: [s3]}\n"
		n = 4
	}
	if err := os.WriteFile(filepath.Join(dir, "t.yaml"), []byte("name: t\nnamespace: bench\nversion: 1.0.0\nidentity_strategy: always_unique\nsteps:\n"+steps), 0o600); err != nil {
		b.Fatal(err)
	}
	h := ffi.NewHost()
	var opened struct {
		Handle int64 `json:"handle"`
	}
	cfg := fmt.Sprintf(`{"database_path": %q, "templates": [%q], "complete_timeout_ms": 60000, "pull_capacity": 64}`, filepath.Join(dir, "t.db"), dir)
	if err := json.Unmarshal(h.Open([]byte(cfg)), &opened); err != nil || opened.Handle == 0 {
		b.Fatalf("open: %v", err)
	}
	e := opened.Handle
	defer h.Stop(e, 10*time.Second)
	if out := h.Call(e, "POST", "/v1/workers", []byte(`{"worker_id": "w", "namespaces": ["bench"], "handlers": ["bench.noop"]}`)); !strings.Contains(string(out), `"status":20`) {
		b.Fatal(string(out))
	}
	var done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var completions string
			for {
				select {
				case <-stop:
					return
				default:
				}
				body := `{"max_events": 1, "timeout_ms": 200` + completions + `}`
				var r struct {
					Status int `json:"status"`
					Body   struct {
						Events []struct {
							EventID string `json:"event_id"`
						} `json:"events"`
					} `json:"body"`
				}
				out := h.Call(e, "POST", "/v1/workers/w/poll", []byte(body))
				if !strings.HasPrefix(string(out), `{"status":200`) {
					b.Error(string(out))
					return
				}
				if err := json.Unmarshal(out, &r); err != nil {
					b.Error(err, string(out))
					return
				}
				var cs []string
				for _, ev := range r.Body.Events {
					cs = append(cs, `{"event_id": "`+ev.EventID+`", "outcome": "success", "result": {}}`)
					done.Add(1)
				}
				completions = ""
				if len(cs) > 0 {
					completions = `, "completions": [` + strings.Join(cs, ",") + `]`
				}
			}
		}()
	}
	b.ResetTimer()
	var cw sync.WaitGroup
	var next atomic.Int64
	for i := 0; i < 4; i++ {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for next.Add(1) <= int64(b.N) {
				if out := h.Call(e, "POST", "/v1/tasks", []byte(`{"namespace": "bench", "name": "t", "version": "1.0.0", "context": {}, "initiator": "b", "source_system": "b", "reason": "b", "tags": []}`)); !strings.Contains(string(out), `"status":20`) {
					b.Error(string(out))
					return
				}
			}
		}()
	}
	cw.Wait()
	deadline := time.Now().Add(2 * time.Minute)
	for done.Load() < int64(b.N*n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d steps after 2m; metrics %s", done.Load(), b.N*n, h.Call(e, "GET", "/v1/workers/metrics", nil))
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "steps/s")
	close(stop)
	wg.Wait()
}
