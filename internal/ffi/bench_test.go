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

	"github.com/tasker-go/tasker/internal/bench"
	"github.com/tasker-go/tasker/internal/ffi"
)

// BenchmarkPullWorker runs b.N four-step chains (or single steps) through
// pull workers that poll and complete through Host.Call, the path of a
// Python worker over the C ABI, without Python: for CPU profiles of the
// engine's side (go test -bench PullWorker -cpuprofile).
func BenchmarkPullWorker(b *testing.B) {
	for _, shape := range []string{"single", "linear"} {
		for _, via := range []string{"go", "pull"} {
			b.Run(shape+"/"+via, func(b *testing.B) { benchPull(b, shape, via == "go") })
		}
	}
}

// benchPull runs the shape's steps through pull workers, or, with goHandler,
// through the Go handler demo.noop in the same engine (the baseline the
// pull route is held against).
func benchPull(b *testing.B, shape string, goHandler bool) {
	dir := b.TempDir()
	handler := "bench.noop"
	if goHandler {
		handler = "demo.noop"
	}
	steps := "  - {name: s1, handler: " + handler + "}\n"
	n := 1
	if shape == "linear" {
		steps += "  - {name: s2, handler: " + handler + ", depends_on: [s1]}\n" +
			"  - {name: s3, handler: " + handler + ", depends_on: [s2]}\n" +
			"  - {name: s4, handler: " + handler + ", depends_on: [s3]}\n"
		n = 4
	}
	if err := os.WriteFile(filepath.Join(dir, "t.yaml"), []byte("name: t\nnamespace: bench\nversion: 1.0.0\nidentity_strategy: always_unique\nsteps:\n"+steps), 0o600); err != nil {
		b.Fatal(err)
	}
	h := ffi.NewHost(ffi.HostOptions{})
	var opened struct {
		Handle int64 `json:"handle"`
	}
	cfg := fmt.Sprintf(`{"database_path": %q, "templates": [%q], "complete_timeout_ms": 60000, "pull_capacity": 64, "demo_handlers": %t}`, filepath.Join(dir, "t.db"), dir, goHandler)
	if err := json.Unmarshal(h.Open([]byte(cfg)), &opened); err != nil || opened.Handle == 0 {
		b.Fatalf("open: %v", err)
	}
	e := opened.Handle
	defer h.Stop(e, 10*time.Second)
	if out := h.Call(e, "POST", "/v1/workers", []byte(`{"worker_id": "w", "namespaces": ["bench"], "handlers": ["bench.noop"]}`)); !strings.Contains(string(out), `"status":20`) {
		b.Fatal(string(out))
	}
	pullers := 8
	if goHandler {
		pullers = 0
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < pullers; i++ {
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
				}
				completions = ""
				if len(cs) > 0 {
					completions = `, "completions": [` + strings.Join(cs, ",") + `]`
				}
			}
		}()
	}
	b.ResetTimer()
	cpu0 := bench.ProcessCPU()
	var cw sync.WaitGroup
	var next atomic.Int64
	tasks := make([]string, b.N)
	for i := 0; i < 4; i++ {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for {
				j := next.Add(1) - 1
				if j >= int64(b.N) {
					return
				}
				out := h.Call(e, "POST", "/v1/tasks", []byte(`{"namespace": "bench", "name": "t", "version": "1.0.0", "context": {}, "initiator": "b", "source_system": "b", "reason": "b", "tags": []}`))
				var r struct {
					Status int `json:"status"`
					Body   struct {
						TaskUUID string `json:"task_uuid"`
					} `json:"body"`
				}
				if err := json.Unmarshal(out, &r); err != nil || r.Status/100 != 2 {
					b.Error(string(out))
					return
				}
				tasks[j] = r.Body.TaskUUID
			}
		}()
	}
	cw.Wait()
	// Every task complete, read in creation order: by the time the last
	// ones are read, most are done, so the reads cost little.
	deadline := time.Now().Add(2 * time.Minute)
	for _, id := range tasks {
		for !strings.Contains(string(h.Call(e, "GET", "/v1/tasks/"+id, nil)), `"status":"complete"`) {
			if time.Now().After(deadline) {
				b.Fatalf("task %s not complete after 2m; metrics %s", id, h.Call(e, "GET", "/v1/workers/metrics", nil))
			}
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "steps/s")
	b.ReportMetric(float64((bench.ProcessCPU()-cpu0).Microseconds())/float64(b.N*n), "cpu-µs/step")
	close(stop)
	wg.Wait()
}
