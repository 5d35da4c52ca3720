package ffi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-go/tasker/internal/ffi"
)

// pushEvent is what a test host reads of an event.
type pushEvent struct {
	EventID           string                     `json:"event_id"`
	HandlerName       string                     `json:"handler_name"`
	TaskContext       map[string]int             `json:"task_context"`
	DependencyResults map[string]json.RawMessage `json:"dependency_results"`
	Attempt           int                        `json:"attempt"`
}

// pairHost runs the pair template's handlers as a host would: double the
// context's n, then add one to the result.
func pairHost(t *testing.T) ffi.HostFunc {
	return func(raw []byte, _ int) ([]byte, error) {
		var evs []pushEvent
		if err := json.Unmarshal(raw, &evs); err != nil || len(evs) != 1 {
			t.Errorf("the host got %s (%v), want an array of one event", raw, err)
			return nil, err
		}
		out := make([]map[string]any, len(evs))
		for i, ev := range evs {
			var v int
			switch ev.HandlerName {
			case "ffi.double":
				v = 2 * ev.TaskContext["n"]
			case "ffi.add_one":
				var dep struct{ Value int }
				_ = json.Unmarshal(ev.DependencyResults["double"], &dep)
				v = dep.Value + 1
			}
			out[i] = map[string]any{"outcome": "success", "result": map[string]int{"value": v}}
		}
		return json.Marshal(out)
	}
}

func createPair(t *testing.T, h *ffi.Host, e int64, n int) string {
	t.Helper()
	r := call(t, h, e, "POST", "/v1/tasks", fmt.Sprintf(`{"namespace": "ffi", "name": "pair", "version": "1.0.0", "context": {"n": %d},
		"initiator": "test", "source_system": "ffi", "reason": "test", "tags": []}`, n))
	var task struct {
		TaskUUID string `json:"task_uuid"`
	}
	if err := json.Unmarshal(r.Body, &task); err != nil || task.TaskUUID == "" {
		t.Fatalf("create answered %d %s", r.Status, r.Body)
	}
	return task.TaskUUID
}

// waitTask waits for a task's status to be want; it answers the task.
func waitTask(t *testing.T, h *ffi.Host, e int64, task, want string) json.RawMessage {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := call(t, h, e, "GET", "/v1/tasks/"+task, "")
		var got struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(r.Body, &got)
		if got.Status == want {
			return r.Body
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %q, want %q: %s", task, got.Status, want, r.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func serve(t *testing.T, h *ffi.Host, e int64, cfg string, fn ffi.HostFunc) {
	t.Helper()
	var got struct {
		WorkerID string     `json:"worker_id"`
		Error    *ffi.Error `json:"error"`
	}
	if err := json.Unmarshal(h.Serve(e, []byte(cfg), fn), &got); err != nil || got.Error != nil || got.WorkerID == "" {
		t.Fatalf("Serve(%s): %+v, %v", cfg, got.Error, err)
	}
}

// stepResult is a step's results as the API lists them.
func stepResults(t *testing.T, h *ffi.Host, e int64, task string) map[string]json.RawMessage {
	t.Helper()
	r := call(t, h, e, "GET", "/v1/tasks/"+task+"/workflow_steps", "")
	var steps []struct {
		Name    string          `json:"name"`
		Results json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(r.Body, &steps); err != nil {
		t.Fatalf("steps: %s", r.Body)
	}
	out := map[string]json.RawMessage{}
	for _, s := range steps {
		out[s.Name] = s.Results
	}
	return out
}

// The engine calls the host with each step (no host thread polls); the
// task completes with the host's results, the worker is listed among the
// engine's pull workers while it serves, and a stop deregisters it.
func TestPushWorkerRunsTasks(t *testing.T) {
	h := ffi.NewHost(ffi.HostOptions{})
	e := openEngine(t, h, "")
	serve(t, h, e, `{"worker_id": "push-1", "namespaces": ["ffi"], "handlers": ["ffi.double", "ffi.add_one"], "concurrency": 3}`, pairHost(t))
	tasks := make([]string, 20)
	for i := range tasks {
		tasks[i] = createPair(t, h, e, i)
	}
	for i, task := range tasks {
		waitTask(t, h, e, task, "complete")
		if got, want := string(stepResults(t, h, e, task)["add_one"]), fmt.Sprintf(`{"value":%d}`, 2*i+1); got != want {
			t.Errorf("task %d: add_one's result %s, want %s", i, got, want)
		}
	}
	r := call(t, h, e, "GET", "/v1/workers/metrics", "")
	if !strings.Contains(string(r.Body), `"push-1"`) {
		t.Errorf("the push worker is not listed: %s", r.Body)
	}
	if out := decode(t, h.Stop(e, 10*time.Second)); out.Error != nil {
		t.Fatalf("stop: %+v", out.Error)
	}
}

// Whatever the host does wrong, each event gets a completion: no
// completion, not JSON, fewer completions than events, something else than
// a completion, one the engine refuses (a bad outcome, a checkpoint of a
// step that is no batch worker: it would stay held), a panic in the
// function; each fails the attempt as retryable with a message saying
// what, and the worker goes on.
func TestPushWorkerFailsWhatTheHostDoesNotComplete(t *testing.T) {
	// A step of one attempt, so that its failure is final and the DLQ
	// entry shows its message.
	const once = "name: once\nnamespace: ffi\nversion: 1.0.0\nsteps:\n  - {name: only, handler: ffi.once, retry: {max_attempts: 1}}\n"
	for _, tc := range []struct {
		name, want string
		bad        func() ([]byte, error)
	}{
		{"nothing", "gave no completions", func() ([]byte, error) { return nil, errors.New("the host's step function gave no completions") }},
		{"not JSON", "not a JSON array", func() ([]byte, error) { return []byte(`{"outcome": "success"`), nil }},
		{"too few", "gave 0 completions for 1 events", func() ([]byte, error) { return []byte(`[]`), nil }},
		{"not a completion", "is not a WorkerCompletion", func() ([]byte, error) { return []byte(`[{"result": 1}]`), nil }},
		{"refused outcome", `outcome \"bogus\"`, func() ([]byte, error) { return []byte(`[{"outcome": "bogus"}]`), nil }},
		{"checkpoint of a plain step", "only for batch workers", func() ([]byte, error) {
			return []byte(`[{"outcome": "checkpoint_yield", "checkpoint": {"cursor": 1}}]`), nil
		}},
		{"panic", "failed to run the step: boom", func() ([]byte, error) { panic("boom") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := ffi.NewHost(ffi.HostOptions{})
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "once.yaml"), []byte(once), 0o600); err != nil {
				t.Fatal(err)
			}
			e := openAt(t, h, dir)
			good := pairHost(t)
			serve(t, h, e, `{"worker_id": "w", "namespaces": ["ffi"], "handlers": ["ffi.once", "ffi.double", "ffi.add_one"]}`,
				func(raw []byte, max int) ([]byte, error) {
					if strings.Contains(string(raw), `"ffi.once"`) {
						return tc.bad()
					}
					return good(raw, max)
				})
			r := call(t, h, e, "POST", "/v1/tasks", `{"namespace": "ffi", "name": "once", "version": "1.0.0", "context": {},
				"initiator": "test", "source_system": "ffi", "reason": "test", "tags": []}`)
			var task struct {
				TaskUUID string `json:"task_uuid"`
			}
			if err := json.Unmarshal(r.Body, &task); err != nil {
				t.Fatalf("create: %s", r.Body)
			}
			waitTask(t, h, e, task.TaskUUID, "error")
			// The step's last failure, as the DLQ entry keeps it.
			r = call(t, h, e, "GET", "/v1/dlq/task/"+task.TaskUUID, "")
			if !strings.Contains(string(r.Body), "host_error: ") || !strings.Contains(string(r.Body), tc.want) ||
				!strings.Contains(string(r.Body), `"retryable":true`) {
				t.Errorf("the step's failure does not say %q (host_error, retryable): %s", tc.want, r.Body)
			}
			// The worker goes on.
			waitTask(t, h, e, createPair(t, h, e, 5), "complete")
		})
	}
}

// A stop lets the calls in progress finish and stores their completions:
// the step the host was running completes; nothing calls the host after
// the stop returns.
func TestPushWorkerStopWaitsForRunningCalls(t *testing.T) {
	h := ffi.NewHost(ffi.HostOptions{})
	dir := t.TempDir()
	e := openAt(t, h, dir)
	in, release := make(chan struct{}, 1), make(chan struct{})
	var stopped atomic.Bool
	good := pairHost(t)
	serve(t, h, e, `{"worker_id": "w", "namespaces": ["ffi"], "handlers": ["ffi.double", "ffi.add_one"]}`, func(raw []byte, max int) ([]byte, error) {
		if stopped.Load() {
			t.Errorf("the host was called after the stop returned")
		}
		select {
		case in <- struct{}{}:
			<-release
		default:
		}
		return good(raw, max)
	})
	task := createPair(t, h, e, 1)
	<-in
	done := make(chan []byte)
	go func() { done <- h.Stop(e, 10*time.Second) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("the stop returned while the host still ran a step")
	default:
	}
	close(release)
	if out := decode(t, <-done); out.Error != nil {
		t.Fatalf("stop: %+v", out.Error)
	}
	stopped.Store(true)
	// The step the host was running is stored as it completed: read
	// through an engine opened again on the same database.
	e2 := openAt(t, h, dir)
	if got := string(stepResults(t, h, e2, task)["double"]); got != `{"value":2}` {
		t.Errorf("double's result after the stop: %s, want {\"value\":2}", got)
	}
}

// A call slower than the complete timeout keeps its step: the worker
// heartbeats the events its calls hold. The step runs once.
func TestPushWorkerHeartbeatsLongCalls(t *testing.T) {
	h := ffi.NewHost(ffi.HostOptions{})
	e := openEngine(t, h, "") // complete_timeout_ms 2000
	var calls atomic.Int32
	good := pairHost(t)
	serve(t, h, e, `{"worker_id": "w", "namespaces": ["ffi"], "handlers": ["ffi.double", "ffi.add_one"]}`,
		func(raw []byte, max int) ([]byte, error) {
			if strings.Contains(string(raw), `"ffi.double"`) {
				calls.Add(1)
				time.Sleep(3 * time.Second)
			}
			return good(raw, max)
		})
	task := createPair(t, h, e, 4)
	waitTask(t, h, e, task, "complete")
	if n := calls.Load(); n != 1 {
		t.Errorf("the slow step ran %d times, want once", n)
	}
	if got := string(stepResults(t, h, e, task)["add_one"]); got != `{"value":9}` {
		t.Errorf("add_one's result %s, want {\"value\":9}", got)
	}
}

// A stop whose timeout ends while a call still runs says so (still_running):
// the handle is gone, the step runs again later; what the call gives is
// ignored.
func TestPushWorkerStopTimeoutSaysCallsStillRun(t *testing.T) {
	h := ffi.NewHost(ffi.HostOptions{})
	e := openEngine(t, h, "")
	in, release := make(chan struct{}, 1), make(chan struct{})
	serve(t, h, e, `{"worker_id": "w", "namespaces": ["ffi"], "handlers": ["ffi.double", "ffi.add_one"]}`, func(raw []byte, max int) ([]byte, error) {
		in <- struct{}{}
		<-release
		return pairHost(t)(raw, max)
	})
	createPair(t, h, e, 1)
	<-in
	r := decode(t, h.Stop(e, 300*time.Millisecond))
	close(release)
	if r.Error == nil || r.Error.Kind != ffi.KindStillRunning || !strings.Contains(r.Error.Message, "calls still running: 1") {
		t.Fatalf("stop with a call still running answered %+v, want still_running naming 1 call", r.Error)
	}
}

// A host that hands back whatever it gets drains the worker each time: it
// registers again after a while, and does not spin on the step.
func TestPushWorkerHandBackDoesNotSpin(t *testing.T) {
	h := ffi.NewHost(ffi.HostOptions{})
	e := openEngine(t, h, "")
	var calls atomic.Int32
	serve(t, h, e, `{"worker_id": "w", "namespaces": ["ffi"], "handlers": ["ffi.double", "ffi.add_one"]}`, func(raw []byte, _ int) ([]byte, error) {
		calls.Add(1)
		return []byte(`[{"outcome": "handed_back"}]`), nil
	})
	createPair(t, h, e, 1)
	time.Sleep(3500 * time.Millisecond)
	if n := calls.Load(); n < 2 || n > 5 {
		t.Errorf("the host was called %d times in 3.5 s, want 2 to 5 (once, then again each time the worker registered again, a second after its hand-back)", n)
	}
}

// A push worker the engine forgot (deregistered through tasker_call)
// registers again, and serves on.
func TestPushWorkerRegistersAgain(t *testing.T) {
	h := ffi.NewHost(ffi.HostOptions{})
	e := openEngine(t, h, "")
	serve(t, h, e, `{"worker_id": "w", "namespaces": ["ffi"], "handlers": ["ffi.double", "ffi.add_one"]}`, pairHost(t))
	if r := call(t, h, e, "DELETE", "/v1/workers/w", ""); r.Status != 200 {
		t.Fatalf("deregister: %d %s", r.Status, r.Body)
	}
	waitTask(t, h, e, createPair(t, h, e, 7), "complete")
}

// Bad configs, an unknown handle, no function and a worker id served twice
// are error values naming what was wrong.
func TestServeRejectsBadInput(t *testing.T) {
	h := ffi.NewHost(ffi.HostOptions{})
	e := openEngine(t, h, "")
	fn := pairHost(t)
	ok := `{"worker_id": "w", "namespaces": ["ffi"], "handlers": ["ffi.double"]}`
	serve(t, h, e, ok, fn)
	call(t, h, e, "POST", "/v1/workers", `{"worker_id": "poller", "namespaces": ["ffi"], "handlers": ["ffi.add_one"]}`)
	for _, tc := range []struct {
		name, cfg, want string
		handle          int64
		fn              ffi.HostFunc
	}{
		{"not JSON", `{"worker_id": `, "not valid JSON", e, fn},
		{"unknown field", `{"worker_id": "x", "namespace": ["ffi"]}`, "unknown field", e, fn},
		{"concurrency", `{"worker_id": "x", "namespaces": ["ffi"], "handlers": ["h"], "concurrency": 5000}`, "concurrency 5000", e, fn},
		{"no namespaces", `{"worker_id": "x", "handlers": ["h"]}`, "namespace", e, fn},
		{"twice", ok, "served already", e, fn},
		{"a polling worker's id", `{"worker_id": "poller", "namespaces": ["ffi"], "handlers": ["ffi.double"]}`, "registered already", e, fn},
		{"no function", ok, "no step function", e, nil},
		{"unknown handle", ok, "no engine is open", e + 100, fn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := decode(t, h.Serve(tc.handle, []byte(tc.cfg), tc.fn))
			if r.Error == nil || !strings.Contains(r.Error.Message, tc.want) {
				t.Errorf("Serve(%s): %+v, want an error saying %q", tc.cfg, r.Error, tc.want)
			}
		})
	}
}
