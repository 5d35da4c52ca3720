package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker"
	tclient "github.com/tasker-go/tasker/client"
	"github.com/tasker-go/tasker/internal/api"
)

func idleTask(t *testing.T, c *client) taskResp {
	t.Helper()
	// A context of its own: the template's identity strategy refuses a
	// second task of the same context (a value drawn from 1,000 collided
	// about once a thousand runs).
	body := createBody("linear_workflow", map[string]any{"value": 3, "nonce": uuid.NewString()})
	body["namespace"] = "idle"
	var idle taskResp
	c.json("POST", "/v1/tasks", body, 201, &idle)
	return idle
}

func completeStep(t *testing.T, c *client, task, step string) {
	t.Helper()
	c.json("PATCH", "/v1/tasks/"+task+"/workflow_steps/"+step, map[string]any{"action_type": "complete_manually",
		"completed_by": "ops", "reason": "by hand", "completion_data": map[string]any{"result": map[string]any{"value": 1}}}, 200, nil)
}

// watch collects a task's events through the client package until the
// stream ends.
func watch(ctx context.Context, cl *tclient.Client, id string) (<-chan tclient.Event, <-chan error) {
	evs := make(chan tclient.Event, 256)
	done := make(chan error, 1)
	go func() {
		done <- cl.WatchTask(ctx, id, func(e tclient.Event) error { evs <- e; return nil })
		close(evs)
	}()
	return evs, done
}

func next(t *testing.T, evs <-chan tclient.Event) tclient.Event {
	t.Helper()
	select {
	case e, ok := <-evs:
		if !ok {
			t.Fatal("the stream ended early")
		}
		return e
	case <-time.After(20 * time.Second):
		t.Fatal("no event within 20s")
	}
	return tclient.Event{}
}

func TestTaskEvents(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			h, eng, dbURL := newServerURL(t, backend, api.Config{Heartbeat: 30 * time.Millisecond, EventPoll: 50 * time.Millisecond})
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			c := &client{t: t, srv: srv, v: newValidator(t)}
			cl, err := tclient.New(c.srv.URL)
			if err != nil {
				t.Fatal(err)
			}

			t.Run("a snapshot, each transition as it commits, then end", func(t *testing.T) {
				idle := idleTask(t, c)
				evs, done := watch(t.Context(), cl, idle.TaskUUID)
				snap := next(t, evs)
				if snap.Type != "snapshot" || snap.Task == nil || snap.Task.TaskUuid != idle.TaskUUID || len(snap.Task.Steps) != 4 {
					t.Fatalf("first event: %+v, want the task's snapshot", snap)
				}
				completed := map[string]bool{}
				for _, s := range idle.Steps {
					completeStep(t, c, idle.TaskUUID, s.WorkflowStepUUID)
					for !completed[s.Name] {
						e := next(t, evs)
						if e.Type != "transition" {
							t.Fatalf("event %+v before step %s completed", e, s.Name)
						}
						if tr := e.Transition; tr.StepName != nil && tr.ToState == "complete" {
							completed[*tr.StepName] = true
						}
					}
				}
				var last tclient.Event
			collect:
				for {
					select {
					case e, ok := <-evs:
						if !ok {
							break collect
						}
						t.Logf("event %s %s", e.Type, e.Data)
						last = e
					case <-time.After(20 * time.Second):
						info, _ := eng.Task(t.Context(), uuid.MustParse(idle.TaskUUID))
						t.Fatalf("no end within 20s of %+v; the task is %s", last, info.Task.State)
					}
				}
				if err := <-done; err != nil {
					t.Fatalf("WatchTask: %v", err)
				}
				if last.Type != "end" || last.Status != "complete" {
					t.Fatalf("last event %+v, want end with status complete", last)
				}
			})

			t.Run("a finished task answers its snapshot and end", func(t *testing.T) {
				idle := idleTask(t, c)
				c.json("DELETE", "/v1/tasks/"+idle.TaskUUID, nil, 200, nil)
				var got []string
				err := cl.WatchTask(t.Context(), idle.TaskUUID, func(e tclient.Event) error { got = append(got, e.Type+":"+e.Status); return nil })
				if err != nil || strings.Join(got, ",") != "snapshot:,end:cancelled" {
					t.Fatalf("events %v, err %v; want snapshot then end:cancelled", got, err)
				}
			})

			t.Run("bad and unknown uuids are 400 and 404", func(t *testing.T) {
				err := cl.WatchTask(t.Context(), "nope", func(tclient.Event) error { return nil })
				var ae *tclient.Error
				if !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, "task uuid") {
					t.Errorf("bad uuid: %v, want 400 naming the task uuid", err)
				}
				err = cl.WatchTask(t.Context(), uuid.NewString(), func(tclient.Event) error { return nil })
				if !errors.Is(err, tclient.ErrNotFound) {
					t.Errorf("unknown task: %v, want 404", err)
				}
			})

			t.Run("an idle stream sends heartbeats", func(t *testing.T) {
				idle := idleTask(t, c)
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "GET", c.srv.URL+"/v1/tasks/"+idle.TaskUUID+"/events", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
					t.Errorf("content type %q", ct)
				}
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					if sc.Text() == ": heartbeat" {
						return
					}
				}
				t.Fatalf("no heartbeat: %v", sc.Err())
			})

			if backend == "postgres" {
				t.Run("transitions another process commits reach the stream", func(t *testing.T) {
					idle, other, evs, done := watchWithAnotherEngine(t, c, cl, dbURL)
					completeElsewhere(t, other, idle, evs)
					c.json("DELETE", "/v1/tasks/"+idle.TaskUUID, nil, 200, nil)
					for range evs {
					}
					if err := <-done; err != nil {
						t.Fatal(err)
					}
				})

				// A transaction that took its transition's id before another
				// one committed a later id, and commits after the stream read
				// that later id: the poll still reads it.
				t.Run("a transition committed out of id order reaches the stream", func(t *testing.T) {
					idle, other, evs, done := watchWithAnotherEngine(t, c, cl, dbURL)
					conn, err := pgx.Connect(t.Context(), dbURL)
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close(context.Background())
					late, err := conn.Begin(t.Context())
					if err != nil {
						t.Fatal(err)
					}
					defer late.Rollback(context.Background())
					last := idle.Steps[len(idle.Steps)-1]
					if _, err := late.Exec(t.Context(), `INSERT INTO transitions (task_id, step_id, from_state, to_state, event, at, processor)
						VALUES ($1, $2, 'pending', 'waiting_for_retry', 'test', clock_timestamp(), 'test')`,
						uuid.MustParse(idle.TaskUUID), uuid.MustParse(last.WorkflowStepUUID)); err != nil {
						t.Fatal(err)
					}
					completeElsewhere(t, other, idle, evs)
					// The stream has read the later id; now the earlier one commits.
					if err := late.Commit(t.Context()); err != nil {
						t.Fatal(err)
					}
					for {
						e := next(t, evs)
						if tr := e.Transition; tr != nil && tr.StepName != nil && *tr.StepName == last.Name && tr.ToState == "waiting_for_retry" {
							break
						}
					}
					c.json("DELETE", "/v1/tasks/"+idle.TaskUUID, nil, 200, nil)
					for range evs {
					}
					if err := <-done; err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

// watchWithAnotherEngine creates an idle task, opens a second engine on the
// same database (another process's commits: not on this server's bus) and
// watches the task past its snapshot.
func watchWithAnotherEngine(t *testing.T, c *client, cl *tclient.Client, dbURL string) (taskResp, *tasker.Engine, <-chan tclient.Event, <-chan error) {
	t.Helper()
	idle := idleTask(t, c)
	other, err := tasker.Open(t.Context(), tasker.Config{DatabaseURL: dbURL, DisableOrchestration: true, DisableWorkers: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Stop(context.Background()) })
	evs, done := watch(t.Context(), cl, idle.TaskUUID)
	if e := next(t, evs); e.Type != "snapshot" {
		t.Fatalf("first event %+v", e)
	}
	return idle, other, evs, done
}

// completeElsewhere completes the task's first step through other and waits
// for the stream to send it.
func completeElsewhere(t *testing.T, other *tasker.Engine, idle taskResp, evs <-chan tclient.Event) {
	t.Helper()
	if err := other.CompleteStep(t.Context(), uuid.MustParse(idle.TaskUUID), idle.Steps[0].Name, json.RawMessage(`{"value":1}`)); err != nil {
		t.Fatal(err)
	}
	for {
		e := next(t, evs)
		if tr := e.Transition; tr != nil && tr.StepName != nil && *tr.StepName == idle.Steps[0].Name && tr.ToState == "complete" {
			return
		}
	}
}

// A client that does not read is sent "dropped" once the engine's events
// overflow its buffer, and the bus is never held up by it.
func TestTaskEventsDropsASlowClient(t *testing.T) {
	h, eng := newServer(t, "sqlite", api.Config{EventBuffer: 1, EventPoll: time.Hour})
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := &client{t: t, srv: srv, v: newValidator(t)}
	idle := idleTask(t, c)
	w := &blockingWriter{header: http.Header{}, wrote: make(chan struct{}, 64), release: make(chan struct{})}
	req := httptest.NewRequestWithContext(t.Context(), "GET", "/v1/tasks/"+idle.TaskUUID+"/events", nil)
	served := make(chan struct{})
	go func() { h.ServeHTTP(w, req); close(served) }()
	<-w.wrote // the snapshot
	w.block()
	for _, s := range idle.Steps[:3] {
		if err := eng.CompleteStep(t.Context(), uuid.MustParse(idle.TaskUUID), s.Name, json.RawMessage(`{"value":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	close(w.release)
	select {
	case <-served:
	case <-time.After(20 * time.Second):
		t.Fatal("the stream did not end")
	}
	out := w.String()
	if !strings.Contains(out, "event: dropped") {
		t.Fatalf("no dropped event in:\n%s", out)
	}
	if strings.Contains(out, "event: end") {
		t.Errorf("an end after dropped:\n%s", out)
	}
}

type blockingWriter struct {
	header  http.Header
	mu      sync.Mutex
	buf     strings.Builder
	blocked bool
	wrote   chan struct{}
	release chan struct{}
}

func (w *blockingWriter) Header() http.Header { return w.header }
func (w *blockingWriter) WriteHeader(int)     {}
func (w *blockingWriter) Flush()              {}
func (w *blockingWriter) block()              { w.mu.Lock(); w.blocked = true; w.mu.Unlock() }
func (w *blockingWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	blocked := w.blocked
	w.mu.Unlock()
	if blocked {
		<-w.release
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return len(b), nil
}
func (w *blockingWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.buf.String() }

func TestTaskEventsStreamLimit(t *testing.T) {
	c, _ := newClient(t, "sqlite", api.Config{MaxEventStreams: 1})
	idle := idleTask(t, c)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cl, _ := tclient.New(c.srv.URL)
	first := make(chan tclient.Event, 1)
	go func() {
		_ = cl.WatchTask(ctx, idle.TaskUUID, func(e tclient.Event) error {
			select {
			case first <- e:
			default:
			}
			return nil
		})
	}()
	<-first
	err := cl.WatchTask(t.Context(), idle.TaskUUID, func(tclient.Event) error { return nil })
	var ae *tclient.Error
	if !errors.As(err, &ae) || ae.StatusCode != 503 || ae.RetryAfter == 0 {
		t.Fatalf("second stream: %v, want 503 with Retry-After", err)
	}
}
