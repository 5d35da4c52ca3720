package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/api"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/template"
)

// The templates of the pull-worker tests: every handler is served by the
// test's worker over HTTP (none is a Go handler).
const pullTemplates = `
name: py_linear
namespace: py
version: 1.0.0
steps:
  - name: a
    handler: py.a
    config: {factor: 3}
  - name: b
    handler: py.b
    depends_on: [a]
    retry: {max_attempts: 2, backoff: none}
  - name: c
    handler: py.b
    depends_on: [b]
---
name: py_decision
namespace: py
version: 1.0.0
steps:
  - name: start
    handler: py.a
  - name: route
    type: decision
    handler: py.route
    depends_on: [start]
  - name: x
    handler: py.a
    depends_on: [route]
  - name: y
    handler: py.a
    depends_on: [route]
  - name: done
    type: deferred_convergence
    handler: py.a
    depends_on: [x, y]
---
name: py_batch
namespace: py
version: 1.0.0
steps:
  - name: plan
    type: batchable
    handler: py.plan
    batch_config: {batch_size: 2, worker_template: sum, cursor_field: i, failure_strategy: fail_fast}
  - name: sum
    type: batch_worker
    handler: py.sum
    depends_on: [plan]
  - name: total
    type: deferred_convergence
    handler: py.a
    depends_on: [sum]
---
name: py_one
namespace: py2
version: 1.0.0
steps:
  - name: only
    handler: py.a
`

// newPullServer serves an engine whose py and py2 namespaces are run by
// pull workers.
func newPullServer(t *testing.T, backend string, pull tasker.PullConfig) *client {
	t.Helper()
	var tpls []*template.Template
	for i, doc := range strings.Split(pullTemplates, "---\n") {
		tpl, err := template.Parse(fmt.Sprintf("pull%d.yaml", i), []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		tpls = append(tpls, tpl)
	}
	tc := tasker.Config{DatabasePath: filepath.Join(t.TempDir(), "t.db"), Templates: tpls,
		WorkerNamespaces: []string{"py", "py2"}, PullUnregistered: true, Pull: pull}
	if backend == "postgres" {
		_, url := pgtest.Schema(t)
		tc.DatabasePath, tc.DatabaseURL, tc.AutoMigrate = "", url, true
	}
	eng, err := tasker.Open(t.Context(), tc)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Stop(context.Background()) })
	s, err := api.New(api.Config{Engine: eng, MaxBodyBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &client{t: t, srv: srv, v: newValidator(t)}
}

type wireEvent struct {
	EventID        string                     `json:"event_id"`
	TaskUUID       string                     `json:"task_uuid"`
	StepUUID       string                     `json:"step_uuid"`
	StepName       string                     `json:"step_name"`
	Namespace      string                     `json:"namespace"`
	Handler        string                     `json:"handler_name"`
	Initialization json.RawMessage            `json:"initialization"`
	TaskContext    json.RawMessage            `json:"task_context"`
	Deps           map[string]json.RawMessage `json:"dependency_results"`
	Attempt        int                        `json:"attempt"`
	MaxAttempts    int                        `json:"max_attempts"`
	Correlation    string                     `json:"correlation_id"`
	Batch          *struct {
		Cursor struct {
			BatchID string `json:"batch_id"`
			Start   int    `json:"start_cursor"`
			End     int    `json:"end_cursor"`
		} `json:"cursor"`
	} `json:"batch"`
	Checkpoint *struct {
		Cursor int `json:"cursor"`
	} `json:"checkpoint"`
}

type pollResp struct {
	Events      []wireEvent `json:"events"`
	Completions []struct {
		EventID string `json:"event_id"`
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"completions"`
}

func (c *client) register(id string, handlers ...string) {
	c.t.Helper()
	c.registerIn(id, []string{"py"}, handlers...)
}

func (c *client) registerIn(id string, namespaces []string, handlers ...string) {
	c.t.Helper()
	c.json("POST", "/v1/workers", map[string]any{"worker_id": id, "namespaces": namespaces, "handlers": handlers, "concurrency": 4}, 200, nil)
}

type stepResp struct {
	Name        string `json:"name"`
	State       string `json:"current_state"`
	Attempts    int    `json:"attempts"`
	MaxAttempts int    `json:"max_attempts"`
}

// steps returns the task's steps by name.
func (c *client) steps(task string) map[string]stepResp {
	c.t.Helper()
	var ss []stepResp
	c.json("GET", "/v1/tasks/"+task+"/workflow_steps", nil, 200, &ss)
	out := map[string]stepResp{}
	for _, s := range ss {
		out[s.Name] = s
	}
	return out
}

func (c *client) createTaskIn(namespace, name string, ctx any) string {
	c.t.Helper()
	body := createBody(name, ctx)
	body["namespace"] = namespace
	var created taskResp
	c.json("POST", "/v1/tasks", body, 201, &created)
	return created.TaskUUID
}

func (c *client) poll(worker string, max, timeoutMs int, completions ...map[string]any) pollResp {
	c.t.Helper()
	var r pollResp
	body := map[string]any{"max_events": max, "timeout_ms": timeoutMs}
	if len(completions) > 0 {
		body["completions"] = completions
	}
	c.json("POST", "/v1/workers/"+worker+"/poll", body, 200, &r)
	return r
}

func (c *client) createTask(name string, ctx any) string {
	c.t.Helper()
	return c.createTaskIn("py", name, ctx)
}

// waitStatus polls the task until it reaches status or the test times out.
func (c *client) waitStatus(task, status string) taskResp {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var r taskResp
		c.json("GET", "/v1/tasks/"+task, nil, 200, &r)
		if r.Status == status {
			return r
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("task %s is %s, want %s", task, r.Status, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A worker registered over HTTP receives the steps of its handlers with
// their context, configuration, dependency results and attempts; it
// completes them inside its next poll or on the complete route, and the
// task completes. Late, repeated and unknown completions change nothing.
func TestPullWorkerRunsATaskOverHTTP(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			c := newPullServer(t, backend, tasker.PullConfig{})
			c.register("w1", "py.a", "py.b")
			task := c.createTask("py_linear", map[string]any{"value": 7})

			r := c.poll("w1", 10, 10000)
			if len(r.Events) != 1 {
				t.Fatalf("events %+v, want step a", r.Events)
			}
			a := r.Events[0]
			if a.StepName != "a" || a.Handler != "py.a" || a.Namespace != "py" || a.TaskUUID != task || a.Attempt != 1 ||
				a.MaxAttempts != 3 || string(a.Initialization) != `{"factor":3}` || !strings.Contains(string(a.TaskContext), `"value":7`) ||
				len(a.Deps) != 0 || a.Batch != nil {
				t.Errorf("event a: %+v", a)
			}
			r = c.poll("w1", 10, 10000, map[string]any{"event_id": a.EventID, "outcome": "success", "result": map[string]any{"n": 21}})
			if len(r.Completions) != 1 || r.Completions[0].Status != "accepted" {
				t.Fatalf("completion of a: %+v", r.Completions)
			}
			if len(r.Events) != 1 || r.Events[0].StepName != "b" {
				t.Fatalf("after a: %+v", r.Events)
			}
			b := r.Events[0]
			if string(b.Deps["a"]) != `{"n":21}` || b.MaxAttempts != 2 {
				t.Errorf("event b: deps %s, max attempts %d", b.Deps["a"], b.MaxAttempts)
			}
			// Completing a's event again: 409, nothing changes.
			if st, out := c.do("POST", "/v1/workers/w1/events/"+a.EventID+"/complete", map[string]any{"outcome": "success"}); st != http.StatusConflict {
				t.Errorf("a again: %d %s, want 409", st, out)
			}
			// Unknown event: 404.
			if st, out := c.do("POST", "/v1/workers/w1/events/0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d/complete", map[string]any{"outcome": "success"}); st != http.StatusNotFound {
				t.Errorf("unknown event: %d %s, want 404", st, out)
			}
			// Another worker may not complete w1's event.
			c.register("w2", "py.b")
			if st, out := c.do("POST", "/v1/workers/w2/events/"+b.EventID+"/complete", map[string]any{"outcome": "success"}); st != http.StatusConflict {
				t.Errorf("w2 completing w1's event: %d %s, want 409", st, out)
			}
			// A result over the body limit: 413, the event stays pending.
			big := strings.Repeat("x", 70<<10)
			if st, _ := c.do("POST", "/v1/workers/w1/events/"+b.EventID+"/complete", map[string]any{"outcome": "success", "result": map[string]any{"s": big}}); st != http.StatusRequestEntityTooLarge {
				t.Errorf("big result: %d, want 413", st)
			}
			// A checkpoint for a step that is no batch worker: 400.
			if st, out := c.do("POST", "/v1/workers/w1/events/"+b.EventID+"/complete", map[string]any{"outcome": "checkpoint_yield", "checkpoint": map[string]any{"cursor": 1}}); st != http.StatusBadRequest {
				t.Errorf("checkpoint of a plain step: %d %s, want 400", st, out)
			}
			var res struct{ Status string }
			c.json("POST", "/v1/workers/w1/events/"+b.EventID+"/complete", map[string]any{"outcome": "success", "result": map[string]any{"done": true}}, 200, &res)
			if res.Status != "accepted" {
				t.Errorf("b: %+v", res)
			}
			// c sees every completed ancestor, as tasker-core's handlers do,
			// and the task's correlation id.
			r = c.poll("w1", 1, 10000)
			if len(r.Events) != 1 || r.Events[0].StepName != "c" {
				t.Fatalf("after b: %+v", r.Events)
			}
			cev := r.Events[0]
			if string(cev.Deps["a"]) != `{"n":21}` || string(cev.Deps["b"]) != `{"done":true}` || cev.Correlation != "0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d" {
				t.Errorf("event c: deps %v, correlation %q", cev.Deps, cev.Correlation)
			}
			c.poll("w1", 0, 0, map[string]any{"event_id": cev.EventID, "outcome": "success"})
			c.waitStatus(task, "complete")
			var m struct {
				Completed int64 `json:"completed"`
				InFlight  int   `json:"in_flight"`
				Workers   []struct {
					ID string `json:"worker_id"`
				} `json:"workers"`
			}
			c.json("GET", "/v1/workers/metrics", nil, 200, &m)
			if m.Completed != 3 || m.InFlight != 0 || len(m.Workers) != 2 {
				t.Errorf("metrics %+v", m)
			}
			c.json("DELETE", "/v1/workers/w2", nil, 200, nil)
			if st, _ := c.do("POST", "/v1/workers/w2/poll", map[string]any{}); st != http.StatusNotFound {
				t.Errorf("poll of a deregistered worker: %d, want 404", st)
			}
		})
	}
}

// A failure's retryable verdict decides whether the step runs again; a
// worker that polls and never completes gets its step failed as retryable
// after the complete timeout, and the retry reaches a worker.
func TestPullWorkerFailuresAndTimeouts(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			c := newPullServer(t, backend, tasker.PullConfig{CompleteTimeout: 300 * time.Millisecond})
			c.register("w", "py.a", "py.b")
			task := c.createTask("py_linear", map[string]any{"value": 1})
			a := c.poll("w", 1, 10000).Events[0]
			// Not completed: it times out and comes back as attempt 2.
			again := c.poll("w", 1, 10000)
			if len(again.Events) != 1 || again.Events[0].StepName != "a" || again.Events[0].Attempt != 2 {
				t.Fatalf("after the timeout: %+v", again.Events)
			}
			if st, out := c.do("POST", "/v1/workers/w/events/"+a.EventID+"/complete", map[string]any{"outcome": "success"}); st != http.StatusConflict {
				t.Errorf("the timed-out event: %d %s, want 409", st, out)
			}
			r := c.poll("w", 1, 10000, map[string]any{"event_id": again.Events[0].EventID, "outcome": "success", "result": map[string]any{}})
			b := r.Events[0]
			// Handed back: b is queued again, its attempt not counted, and
			// the worker, stopping, gets nothing more until it registers
			// again.
			r = c.poll("w", 1, 300, map[string]any{"event_id": b.EventID, "outcome": "handed_back", "error": map[string]any{"message": "stopping"}})
			if len(r.Completions) != 1 || r.Completions[0].Status != "accepted" {
				t.Fatalf("hand-back of b: %+v", r.Completions)
			}
			if len(r.Events) != 0 {
				t.Fatalf("a worker that handed back got %+v, want nothing", r.Events)
			}
			c.register("w", "py.a", "py.b")
			r = c.poll("w", 1, 10000)
			if len(r.Events) != 1 || r.Events[0].StepName != "b" || r.Events[0].Attempt != b.Attempt {
				t.Fatalf("after the hand-back: %+v, want b again as attempt %d", r.Events, b.Attempt)
			}
			b = r.Events[0]
			// A retryable failure of b: it runs again (max_attempts 2).
			r = c.poll("w", 1, 10000, map[string]any{"event_id": b.EventID, "outcome": "failure",
				"error": map[string]any{"error_type": "retryable_error", "message": "flaky", "retryable": true}})
			if len(r.Events) != 1 || r.Events[0].StepName != "b" || r.Events[0].Attempt != 2 {
				t.Fatalf("after a retryable failure: %+v", r.Events)
			}
			// A permanent failure: the task ends in error.
			c.poll("w", 0, 0, map[string]any{"event_id": r.Events[0].EventID, "outcome": "failure",
				"error": map[string]any{"error_type": "permanent_error", "message": "bad input", "retryable": false, "metadata": map[string]any{"k": 1}}})
			c.waitStatus(task, "error")
		})
	}
}

// Decision and batch outcomes and checkpoint yields travel over the wire
// as Go handlers return them.
func TestPullWorkerDecisionBatchCheckpoint(t *testing.T) {
	c := newPullServer(t, "sqlite", tasker.PullConfig{})
	c.register("w", "py.a", "py.route", "py.plan", "py.sum")
	dtask := c.createTask("py_decision", map[string]any{})
	btask := c.createTask("py_batch", map[string]any{"items": 3})
	var pending []map[string]any
	sums := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r := c.poll("w", 10, 200, pending...)
		pending = nil
		for _, ev := range r.Events {
			done := map[string]any{"event_id": ev.EventID, "outcome": "success"}
			switch ev.Handler {
			case "py.route":
				done["result"] = map[string]any{"decision_point_outcome": map[string]any{"type": "create_steps", "step_names": []string{"x"}}}
			case "py.plan":
				done["result"] = map[string]any{"batch_processing_outcome": map[string]any{"type": "create_batches", "worker_template_name": "sum", "worker_count": 2,
					"cursor_configs": []map[string]any{{"batch_id": "001", "start_cursor": 0, "end_cursor": 2, "batch_size": 2}, {"batch_id": "002", "start_cursor": 2, "end_cursor": 3, "batch_size": 1}}, "total_items": 3}}
			case "py.sum":
				if ev.Batch == nil {
					t.Fatalf("batch worker event without batch: %+v", ev)
				}
				// Yield once per batch, then finish from the checkpoint.
				if ev.Checkpoint == nil {
					done = map[string]any{"event_id": ev.EventID, "outcome": "checkpoint_yield",
						"checkpoint": map[string]any{"cursor": ev.Batch.Cursor.Start + 1, "items_processed": 1}}
				} else {
					sums[ev.Batch.Cursor.BatchID] = ev.Checkpoint.Cursor
					done["result"] = map[string]any{"items_processed": ev.Batch.Cursor.End - ev.Batch.Cursor.Start}
				}
			}
			pending = append(pending, done)
		}
		var d, b taskResp
		c.json("GET", "/v1/tasks/"+dtask, nil, 200, &d)
		c.json("GET", "/v1/tasks/"+btask, nil, 200, &b)
		if d.Status == "complete" && b.Status == "complete" && len(pending) == 0 {
			names := map[string]bool{}
			for _, s := range d.Steps {
				names[s.Name] = true
			}
			if !names["x"] || names["y"] {
				t.Errorf("decision created %v, want x and not y", names)
			}
			if sums["001"] != 1 || sums["002"] != 3 {
				t.Errorf("checkpoints seen by the batch workers: %v, want 001→1, 002→3", sums)
			}
			return
		}
	}
	t.Fatal("the decision and batch tasks did not complete")
}

// A worker that polls and never completes cannot make the server hold
// more than the channel's capacity: the events in flight stay bounded
// however many steps wait, and each held event times out.
func TestPullWorkerThatNeverCompletesStaysBounded(t *testing.T) {
	const capacity = 4
	c := newPullServer(t, "sqlite", tasker.PullConfig{Capacity: capacity, CompleteTimeout: 200 * time.Millisecond})
	c.register("hog", "py.a")
	for i := range 30 {
		c.createTask("py_linear", map[string]any{"value": i})
	}
	timedOut := int64(0)
	for i := 0; i < 60 && timedOut < 2*capacity; i++ {
		r := c.poll("hog", 100, 100)
		if len(r.Events) > capacity {
			t.Fatalf("one poll returned %d events, more than the capacity %d", len(r.Events), capacity)
		}
		var m struct {
			InFlight int   `json:"in_flight"`
			Capacity int   `json:"capacity"`
			TimedOut int64 `json:"timed_out"`
			Workers  []struct {
				Held int `json:"held"`
			} `json:"workers"`
		}
		c.json("GET", "/v1/workers/metrics", nil, 200, &m)
		if m.InFlight > capacity || m.Capacity != capacity || m.Workers[0].Held > capacity {
			t.Fatalf("metrics %+v: in flight or held over the capacity %d", m, capacity)
		}
		timedOut = m.TimedOut
	}
	if timedOut < 2*capacity {
		t.Fatalf("%d events timed out, want at least %d", timedOut, 2*capacity)
	}
}

// Deregistering a worker gives back the events it holds at once: the step
// comes back to another worker without waiting for the timeout. The worker
// received the event and may still be running it, so the attempt counts
// (a step taken and dropped over and over runs out of attempts).
func TestPullWorkerDeregisterReleasesItsEvents(t *testing.T) {
	c := newPullServer(t, "sqlite", tasker.PullConfig{})
	c.register("a", "py.a")
	c.createTask("py_linear", map[string]any{"value": 1})
	ev := c.poll("a", 1, 10000).Events[0]
	var d struct {
		Released int `json:"released"`
	}
	c.json("DELETE", "/v1/workers/a", nil, 200, &d)
	if d.Released != 1 {
		t.Errorf("released %d, want 1", d.Released)
	}
	c.register("b", "py.a")
	r := c.poll("b", 1, 10000)
	if len(r.Events) != 1 || r.Events[0].StepUUID != ev.StepUUID || r.Events[0].Attempt != 2 {
		t.Fatalf("after the release: %+v, want step a again as attempt 2 (the deregistered worker had received it)", r.Events)
	}
	var hb struct {
		Extended int      `json:"extended"`
		Lost     []string `json:"lost"`
	}
	c.json("POST", "/v1/workers/b/heartbeat", map[string]any{}, 200, &hb)
	if hb.Extended != 1 || len(hb.Lost) != 0 {
		t.Errorf("heartbeat %+v, want 1 extended", hb)
	}
	c.json("POST", "/v1/workers/b/heartbeat", map[string]any{"event_ids": []string{ev.EventID}}, 200, &hb)
	if hb.Extended != 0 || len(hb.Lost) != 1 {
		t.Errorf("heartbeat of a released event %+v, want it lost", hb)
	}
}

// A step whose handler no pull worker serves yet waits, whatever time
// passes: its message comes back without starting it, no attempt is spent,
// and once a worker serving it registers it runs as attempt 1.
func TestPullStepWaitsForAWorkerWithoutSpendingAttempts(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			c := newPullServer(t, backend, tasker.PullConfig{})
			task := c.createTask("py_linear", map[string]any{"value": 1})
			// Long enough for the step's message to come back several times
			// (100ms, 200ms, 400ms...): before, each delivery failed an
			// attempt with no_handler, and the task ran out of attempts.
			deadline := time.Now().Add(1500 * time.Millisecond)
			for time.Now().Before(deadline) {
				if a := c.steps(task)["a"]; a.Attempts != 0 || a.State != "enqueued" && a.State != "pending" {
					t.Fatalf("step a with no worker: %+v, want it waiting (enqueued), no attempt spent", a)
				}
				time.Sleep(50 * time.Millisecond)
			}
			c.register("late", "py.a", "py.b")
			r := c.poll("late", 1, 10000)
			if len(r.Events) != 1 || r.Events[0].StepName != "a" || r.Events[0].Attempt != 1 {
				t.Fatalf("once a worker registered: %+v, want step a as attempt 1", r.Events)
			}
		})
	}
}

// A worker's registration covers its namespaces only: a worker of
// namespace py serving py.a receives no event of py.a in namespace py2,
// and such a step is not even handed to the channel (it waits for a worker
// of py2, without spending attempts); the worker of py2 receives it.
func TestPullWorkersOfTwoNamespacesWithTheSameHandler(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			c := newPullServer(t, backend, tasker.PullConfig{})
			c.registerIn("wpy", []string{"py"}, "py.a", "py.b")
			other := c.createTaskIn("py2", "py_one", map[string]any{})
			deadline := time.Now().Add(time.Second)
			for time.Now().Before(deadline) {
				if r := c.poll("wpy", 10, 100); len(r.Events) != 0 {
					t.Fatalf("worker of py received %+v", r.Events)
				}
				var m struct {
					Queued int `json:"queued"`
				}
				c.json("GET", "/v1/workers/metrics", nil, 200, &m)
				if m.Queued != 0 {
					t.Fatalf("%d events wait in the channel: the py2 step was handed to it though no worker of py2 serves py.a", m.Queued)
				}
			}
			mine := c.createTask("py_linear", map[string]any{"value": 1})
			if r := c.poll("wpy", 10, 10000); len(r.Events) != 1 || r.Events[0].TaskUUID != mine {
				t.Fatalf("worker of py: %+v, want step a of its own task", r.Events)
			}
			if only := c.steps(other)["only"]; only.Attempts != 0 {
				t.Fatalf("the py2 step before a py2 worker: %+v, want no attempt spent", only)
			}
			c.registerIn("wpy2", []string{"py2"}, "py.a")
			r := c.poll("wpy2", 1, 10000)
			if len(r.Events) != 1 || r.Events[0].Namespace != "py2" || r.Events[0].TaskUUID != other || r.Events[0].Attempt != 1 {
				t.Fatalf("worker of py2: %+v, want the py2 step as attempt 1", r.Events)
			}
			c.poll("wpy2", 0, 0, map[string]any{"event_id": r.Events[0].EventID, "outcome": "success", "result": map[string]any{}})
			c.waitStatus(other, "complete")
		})
	}
}

// A step handed to the channel for a worker that deregisters before it
// polls it is given back at once: it does not hold a slot until its
// timeout fails it, it spends no attempt, and it waits, enqueued, for the
// next worker that serves it.
func TestPullQueuedStepOfAWorkerThatLeftIsGivenBack(t *testing.T) {
	c := newPullServer(t, "sqlite", tasker.PullConfig{})
	c.register("a", "py.a")
	task := c.createTask("py_linear", map[string]any{"value": 1})
	queued := func() int {
		var m struct {
			Queued int `json:"queued"`
		}
		c.json("GET", "/v1/workers/metrics", nil, 200, &m)
		return m.Queued
	}
	deadline := time.Now().Add(20 * time.Second)
	for queued() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("step a never reached the channel")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.json("DELETE", "/v1/workers/a", nil, 200, nil)
	if n := queued(); n != 0 {
		t.Fatalf("%d events still queued after their only worker left", n)
	}
	for {
		a := c.steps(task)["a"]
		if a.State == "enqueued" && a.Attempts == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("step a after its worker left: %+v, want enqueued with no attempt spent", a)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.register("b", "py.a")
	if r := c.poll("b", 1, 10000); len(r.Events) != 1 || r.Events[0].StepName != "a" || r.Events[0].Attempt != 1 {
		t.Fatalf("the next worker: %+v, want step a as attempt 1", r.Events)
	}
}
