package ffi_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasker-go/tasker/internal/ffi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const tpl = `name: pair
namespace: ffi
version: 1.0.0
steps:
  - {name: double, handler: ffi.double}
  - {name: add_one, handler: ffi.add_one, depends_on: [double]}
`

type reply struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
	Error  *ffi.Error      `json:"error"`
}

func decode(t *testing.T, b []byte) reply {
	t.Helper()
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply %s is not JSON: %v", b, err)
	}
	return r
}

func openEngine(t *testing.T, h *ffi.Host, extra string) int64 {
	t.Helper()
	return openIn(t, h, t.TempDir(), extra)
}

// openAt opens an engine on the database of dir (made by an engine opened
// there before, or new).
func openAt(t *testing.T, h *ffi.Host, dir string) int64 { t.Helper(); return openIn(t, h, dir, "") }

func openIn(t *testing.T, h *ffi.Host, dir, extra string) int64 {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "pair.yaml"), []byte(tpl), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"database_path": %q, "templates": [%q], "complete_timeout_ms": 2000%s}`, filepath.Join(dir, "t.db"), dir, extra)
	var got struct {
		Handle int64      `json:"handle"`
		Error  *ffi.Error `json:"error"`
	}
	if err := json.Unmarshal(h.Open([]byte(cfg)), &got); err != nil || got.Error != nil || got.Handle == 0 {
		t.Fatalf("Open: %+v, %v", got.Error, err)
	}
	t.Cleanup(func() { h.Stop(got.Handle, 10*time.Second) })
	return got.Handle
}

func call(t *testing.T, h *ffi.Host, handle int64, method, path, body string) reply {
	t.Helper()
	r := decode(t, h.Call(handle, method, path, []byte(body)))
	if r.Error != nil {
		t.Fatalf("%s %s: %+v", method, path, r.Error)
	}
	return r
}

// A host registers as a pull worker, polls the steps of its handlers,
// completes them, and the task completes with their results: the path of a
// Python worker through ctypes.
func TestHostRunsATaskThroughThePullProtocol(t *testing.T) {
	h := ffi.NewHost(ffi.HostOptions{})
	e := openEngine(t, h, "")
	if r := call(t, h, e, "POST", "/v1/workers", `{"worker_id": "py-1", "namespaces": ["ffi"], "handlers": ["ffi.double", "ffi.add_one"]}`); r.Status != 201 && r.Status != 200 {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	r := call(t, h, e, "POST", "/v1/tasks", `{"namespace": "ffi", "name": "pair", "version": "1.0.0", "context": {"n": 20},
		"initiator": "test", "source_system": "ffi", "reason": "test", "tags": []}`)
	if r.Status != 201 && r.Status != 200 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var task struct {
		TaskUUID string `json:"task_uuid"`
	}
	if err := json.Unmarshal(r.Body, &task); err != nil || task.TaskUUID == "" {
		t.Fatalf("create answered %s", r.Body)
	}
	value := 20
	for _, want := range []string{"ffi.double", "ffi.add_one"} {
		r := call(t, h, e, "POST", "/v1/workers/py-1/poll", `{"max_events": 1, "timeout_ms": 5000}`)
		var polled struct {
			Events []struct {
				EventID string `json:"event_id"`
				Handler string `json:"handler"`
			} `json:"events"`
		}
		if err := json.Unmarshal(r.Body, &polled); err != nil || len(polled.Events) != 1 {
			t.Fatalf("poll: %d %s", r.Status, r.Body)
		}
		if !strings.Contains(string(r.Body), want) {
			t.Fatalf("poll for %s answered %s", want, r.Body)
		}
		if want == "ffi.double" {
			value *= 2
		} else {
			value++
		}
		body := fmt.Sprintf(`{"outcome": "success", "result": {"value": %d}}`, value)
		r = call(t, h, e, "POST", "/v1/workers/py-1/events/"+polled.Events[0].EventID+"/complete", body)
		if r.Status != 200 {
			t.Fatalf("complete: %d %s", r.Status, r.Body)
		}
	}
	waitTask(t, h, e, task.TaskUUID, "complete")
	if value != 41 {
		t.Fatalf("value %d, want 41", value)
	}
}

// Bad input is an error value naming what was wrong: a bad config, an
// unknown handle, a bad method or path; the API's own errors come back
// with their status.
func TestBadInputIsAnErrorValue(t *testing.T) {
	h := ffi.NewHost(ffi.HostOptions{})
	for _, cfg := range []string{`nope`, `{"database_pat": "x"}`, `{"templates": ["/does/not/exist"]}`, `{"log_level": "loud"}`} {
		r := decode(t, h.Open([]byte(cfg)))
		if r.Error == nil || r.Error.Message == "" {
			t.Errorf("Open(%s): %+v, want an error", cfg, r)
		}
	}
	if r := decode(t, h.Call(99, "GET", "/health", nil)); r.Error == nil || r.Error.Kind != ffi.KindUnknownHandle {
		t.Errorf("unknown handle: %+v", r)
	}
	e := openEngine(t, h, "")
	for _, c := range [][2]string{{"FETCH", "/health"}, {"GET", "health"}} {
		if r := decode(t, h.Call(e, c[0], c[1], nil)); r.Error == nil || r.Error.Kind != ffi.KindInvalid {
			t.Errorf("%s %s: %+v, want invalid_input", c[0], c[1], r)
		}
	}
	r := call(t, h, e, "POST", "/v1/workers/nobody/poll", `{}`)
	if r.Status != 404 {
		t.Errorf("poll by an unregistered worker: %d %s, want 404", r.Status, r.Body)
	}
	r = call(t, h, e, "POST", "/v1/workers", `{"worker_id": `)
	if r.Status != 400 {
		t.Errorf("malformed JSON: %d %s, want 400", r.Status, r.Body)
	}
	if r := decode(t, h.Stop(e, time.Second)); r.Error != nil {
		t.Fatalf("stop: %+v", r.Error)
	}
	if r := decode(t, h.Stop(e, time.Second)); r.Error == nil || r.Error.Kind != ffi.KindUnknownHandle {
		t.Errorf("second stop: %+v, want unknown_handle", r)
	}
}

// Stop ends the long polls in progress: a host thread blocked in a poll
// returns, and the handle is gone.
func TestStopEndsLongPolls(t *testing.T) {
	h := ffi.NewHost(ffi.HostOptions{})
	e := openEngine(t, h, "")
	call(t, h, e, "POST", "/v1/workers", `{"worker_id": "w", "namespaces": ["ffi"], "handlers": ["ffi.double"]}`)
	var wg sync.WaitGroup
	done := make(chan []byte, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done <- h.Call(e, "POST", "/v1/workers/w/poll", []byte(`{"max_events": 1, "timeout_ms": 30000}`))
		}()
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if r := decode(t, h.Stop(e, 10*time.Second)); r.Error != nil {
		t.Fatalf("stop: %+v", r.Error)
	}
	wg.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %v with polls waiting 30s", d)
	}
	close(done)
	for b := range done {
		if len(b) == 0 || !json.Valid(b) {
			t.Errorf("a poll ended with %q, want JSON", b)
		}
	}
}

// At most MaxEngines are open at once; stopping one frees its slot.
func TestEnginesAreBounded(t *testing.T) {
	h := ffi.NewHost(ffi.HostOptions{})
	var handles []int64
	for range ffi.MaxEngines {
		handles = append(handles, openEngine(t, h, ""))
	}
	dir := t.TempDir()
	if r := decode(t, h.Open([]byte(fmt.Sprintf(`{"database_path": %q}`, filepath.Join(dir, "x.db"))))); r.Error == nil || r.Error.Kind != ffi.KindLimit {
		t.Fatalf("open beyond %d: %+v, want limit", ffi.MaxEngines, r)
	}
	h.Stop(handles[0], 10*time.Second)
	openEngine(t, h, "")
}

// With demo_handlers, the built-in Go handlers run their steps in the
// engine, beside the host's workers: a step of demo.noop completes with no
// pull worker registered.
func TestDemoHandlersRunInTheEngine(t *testing.T) {
	h := ffi.NewHost(ffi.HostOptions{})
	dir := t.TempDir()
	const noop = "name: nop\nnamespace: ffi_go\nversion: 1.0.0\nsteps:\n  - {name: only, handler: demo.noop}\n"
	if err := os.WriteFile(filepath.Join(dir, "nop.yaml"), []byte(noop), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"database_path": %q, "templates": [%q], "demo_handlers": true}`, filepath.Join(dir, "t.db"), dir)
	var opened struct {
		Handle int64      `json:"handle"`
		Error  *ffi.Error `json:"error"`
	}
	if err := json.Unmarshal(h.Open([]byte(cfg)), &opened); err != nil || opened.Error != nil || opened.Handle == 0 {
		t.Fatalf("Open: %+v, %v", opened.Error, err)
	}
	t.Cleanup(func() { h.Stop(opened.Handle, 10*time.Second) })
	r := call(t, h, opened.Handle, "POST", "/v1/tasks", `{"namespace": "ffi_go", "name": "nop", "version": "1.0.0", "context": {},
		"initiator": "test", "source_system": "ffi", "reason": "test", "tags": []}`)
	var task struct {
		TaskUUID string `json:"task_uuid"`
	}
	if err := json.Unmarshal(r.Body, &task); err != nil || task.TaskUUID == "" {
		t.Fatalf("create answered %d %s", r.Status, r.Body)
	}
	waitTask(t, h, opened.Handle, task.TaskUUID, "complete")
}

// A Host sizes its engines' defaults by the processors it was given
// (cmd/libtasker: the CPUs, before it adds Ps for the host's threads), not
// by GOMAXPROCS: the pull channel's capacity is the default worker
// concurrency, 8 per processor and at least 100.
func TestHostSizesEnginesByItsProcs(t *testing.T) {
	for _, tc := range []struct{ procs, want int }{{20, 160}, {0, max(100, 8*runtime.GOMAXPROCS(0))}} {
		h := ffi.NewHost(ffi.HostOptions{Procs: tc.procs})
		e := openEngine(t, h, "")
		r := call(t, h, e, "GET", "/v1/workers/metrics", "")
		var m struct {
			Capacity int `json:"capacity"`
		}
		if err := json.Unmarshal(r.Body, &m); err != nil || r.Status != 200 {
			t.Fatalf("metrics: %d %s", r.Status, r.Body)
		}
		if m.Capacity != tc.want {
			t.Errorf("Procs %d: the pull channel's capacity is %d, want %d", tc.procs, m.Capacity, tc.want)
		}
	}
}
