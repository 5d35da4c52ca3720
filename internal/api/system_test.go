package api_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/api"
)

// runTasks creates n linear_workflow tasks over the API and waits until
// they complete; it returns their uuids.
func runTasks(t *testing.T, c *client, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		var created taskResp
		c.json("POST", "/v1/tasks", createBody("linear_workflow", map[string]any{"value": 10 + i}), 201, &created)
		ids = append(ids, created.TaskUUID)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, id := range ids {
		for {
			var got taskResp
			c.json("GET", "/v1/tasks/"+id, nil, 200, &got)
			if got.Status == "complete" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s: %s after 30s", id, got.Status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return ids
}

// scrape reads /metrics.
func scrape(t *testing.T, c *client) map[string]*dto.MetricFamily {
	t.Helper()
	st, out := c.do("GET", "/metrics", nil)
	if st != 200 {
		t.Fatalf("GET /metrics: %d %s", st, out)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the value of the series of name whose labels include
// labels, summed over the series that match (a histogram: its count).
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	var sum float64
	found := false
series:
	for _, m := range f.Metric {
		for k, v := range labels {
			ok := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					ok = true
				}
			}
			if !ok {
				continue series
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum, found
}

func TestMetricsAfterTasks(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			c, eng := newClient(t, backend, api.Config{})
			runTasks(t, c, 3)
			fams := scrape(t, c)
			st := eng.Stats()
			want := []struct {
				name   string
				labels map[string]string
				value  float64
			}{
				{"tasker_tasks_created_total", map[string]string{"namespace": "demo"}, 3},
				{"tasker_tasks_completed_total", map[string]string{"namespace": "demo"}, 3},
				{"tasker_tasks_failed_total", map[string]string{"namespace": "demo"}, 0},
				{"tasker_step_attempts_total", map[string]string{"namespace": "demo", "outcome": "success"}, 12},
				{"tasker_step_attempts_total", map[string]string{"namespace": "demo", "handler": "demo.add", "outcome": "success"}, 9},
				{"tasker_step_attempts_total", map[string]string{"namespace": "demo", "outcome": "failure"}, 0},
				{"tasker_step_duration_seconds", map[string]string{"namespace": "demo"}, 12},
				{"tasker_http_requests_total", map[string]string{"route": "/v1/tasks", "method": "POST", "status": "201"}, 3},
				{"tasker_http_request_duration_seconds", map[string]string{"route": "/v1/tasks", "method": "POST"}, 3},
				{"tasker_queue_depth_up", nil, 1},
				{"tasker_queue_depth", map[string]string{"queue": "worker_demo"}, 0},
				{"tasker_engine_pull_capacity", nil, float64(st.Pull.Capacity)},
				{"tasker_engine_breakers_state", map[string]string{"breaker": "store", "state": "closed"}, 1},
				{"tasker_engine_breakers_opened_total", map[string]string{"breaker": "queue"}, 0},
				{"tasker_engine_worker_concurrency", nil, float64(st.Worker.Concurrency)},
				{"tasker_engine_dead_lettered_total", nil, 0},
				{"tasker_engine_domain_events_invalid_total", nil, 0},
			}
			if backend == "sqlite" {
				want = append(want, struct {
					name   string
					labels map[string]string
					value  float64
				}{"tasker_db_pool_max_connections", map[string]string{"pool": "sqlite_writer"}, 1})
			}
			for _, w := range want {
				got, ok := value(fams, w.name, w.labels)
				if !ok || got != w.value {
					t.Errorf("%s%v = %v (found %v), want %v", w.name, w.labels, got, ok, w.value)
				}
			}
			// Counters that moved: the figures of Engine.Stats read at
			// scrape time, at least what they were just before.
			for name, atLeast := range map[string]float64{
				"tasker_engine_events_count_total":                      float64(st.Events.Count),
				"tasker_engine_events_last_processed_timestamp_seconds": float64(st.Events.LastProcessed.Unix()),
				"tasker_engine_templates_hits_total":                    float64(st.Templates.Hits),
				"tasker_engine_admission_admitted_total":                3,
				"tasker_db_pool_max_connections":                        1,
			} {
				if got, ok := value(fams, name, nil); !ok || got < atLeast || got == 0 {
					t.Errorf("%s = %v (found %v), want at least %v and not 0", name, got, ok, atLeast)
				}
			}
			// Every section of Engine.Stats has its metrics (Tasks, Steps and
			// Pools have their own names above; Wakeups only where the queue
			// reports them).
			typ := reflect.TypeFor[tasker.Stats]()
			for i := range typ.NumField() {
				f := typ.Field(i)
				switch f.Name {
				case "Tasks", "Steps", "Pools":
					continue
				case "Wakeups":
					if st.Wakeups == nil {
						continue
					}
				case "Queues", "Outbox":
					// Only a broker queue (RabbitMQ) counts per queue and
					// sends through the outbox.
					if len(st.Queues) == 0 && st.Outbox == nil {
						continue
					}
				}
				prefix := "tasker_engine_" + snakeName(f.Name)
				found := false
				for name := range fams {
					found = found || strings.HasPrefix(name, prefix)
				}
				if !found {
					t.Errorf("Engine.Stats.%s has no metric named %s*", f.Name, prefix)
				}
			}
		})
	}
}

// snakeName is InFlight → in_flight, DeadLettered → dead_lettered.
func snakeName(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func TestConfigAuditAnalytics(t *testing.T) {
	for _, backend := range backends(t) {
		t.Run(backend, func(t *testing.T) {
			c, _ := newClient(t, backend, api.Config{Settings: api.Settings{Environment: "staging"}})
			ids := runTasks(t, c, 3)

			t.Run("config is a safe view", func(t *testing.T) {
				var cfg struct {
					Auth struct {
						Enabled            bool   `json:"enabled"`
						VerificationMethod string `json:"verification_method"`
					} `json:"auth"`
					Messaging struct {
						Backend string   `json:"backend"`
						Queues  []string `json:"queues"`
					} `json:"messaging"`
					Metadata struct {
						Environment string `json:"environment"`
					} `json:"metadata"`
					Breakers struct {
						FailureThreshold int `json:"failure_threshold"`
					} `json:"circuit_breakers"`
				}
				st, out := c.do("GET", "/config", nil)
				if st != 200 {
					t.Fatalf("GET /config: %d %s", st, out)
				}
				if err := json.Unmarshal(out, &cfg); err != nil {
					t.Fatal(err)
				}
				if cfg.Auth.Enabled || cfg.Auth.VerificationMethod != "none" || cfg.Messaging.Backend != backend ||
					cfg.Metadata.Environment != "staging" || cfg.Breakers.FailureThreshold != 5 ||
					!strings.Contains(strings.Join(cfg.Messaging.Queues, ","), "worker_demo") {
					t.Errorf("config: %s", out)
				}
				for _, secret := range []string{"postgres://", "password", ".db"} {
					if strings.Contains(string(out), secret) {
						t.Errorf("config holds %q: %s", secret, out)
					}
				}
			})

			t.Run("a step's audit lists its attempt with its result, newest first", func(t *testing.T) {
				var steps []struct {
					StepUUID string          `json:"step_uuid"`
					Results  json.RawMessage `json:"results"`
				}
				c.json("GET", "/v1/tasks/"+ids[0]+"/workflow_steps", nil, 200, &steps)
				var audit []struct {
					Success       bool            `json:"success"`
					From          *string         `json:"from_state"`
					To            string          `json:"to_state"`
					ExecutionTime *int64          `json:"execution_time_ms"`
					Result        json.RawMessage `json:"result"`
					Correlation   *string         `json:"correlation_id"`
					Worker        *string         `json:"worker_uuid"`
					StepUUID      string          `json:"workflow_step_uuid"`
				}
				c.json("GET", "/v1/tasks/"+ids[0]+"/workflow_steps/"+steps[1].StepUUID+"/audit", nil, 200, &audit)
				if len(audit) != 1 {
					t.Fatalf("audit: %d records, want 1 (one attempt)", len(audit))
				}
				a := audit[0]
				if !a.Success || a.From == nil || *a.From != "in_progress" || a.To != "enqueued_for_orchestration" ||
					a.ExecutionTime == nil || *a.ExecutionTime < 0 || !jsonSame(a.Result, steps[1].Results) ||
					a.Correlation == nil || *a.Correlation != "0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d" ||
					a.Worker == nil || *a.Worker == "" || a.StepUUID != steps[1].StepUUID {
					t.Errorf("audit record: %+v (result %s), want the attempt's success with the step's result %s", a, a.Result, steps[1].Results)
				}
				if st, out := c.do("GET", "/v1/tasks/"+ids[0]+"/workflow_steps/"+ids[1]+"/audit", nil); st != 404 {
					t.Errorf("audit of another task's id as a step: %d %s, want 404", st, out)
				}
				if st, out := c.do("GET", "/v1/tasks/"+ids[0]+"/workflow_steps/nope/audit", nil); st != 400 {
					t.Errorf("audit of a malformed step uuid: %d %s, want 400", st, out)
				}
			})

			t.Run("performance counts the tasks of the window", func(t *testing.T) {
				var p struct {
					Total, Completed, Failed, Active int64
					CompletionRate                   float64 `json:"completion_rate"`
					TaskSeconds                      float64 `json:"average_task_duration_seconds"`
					StepSeconds                      float64 `json:"average_step_duration_seconds"`
					Health                           float64 `json:"system_health_score"`
				}
				var raw map[string]any
				c.json("GET", "/v1/analytics/performance?hours=1", nil, 200, &raw)
				b, _ := json.Marshal(raw)
				_ = json.Unmarshal(b, &p)
				p.Total, p.Completed = int64(raw["total_tasks"].(float64)), int64(raw["completed_tasks"].(float64))
				p.Failed, p.Active = int64(raw["failed_tasks"].(float64)), int64(raw["active_tasks"].(float64))
				if p.Total != 3 || p.Completed != 3 || p.Failed != 0 || p.Active != 0 || p.CompletionRate != 1 ||
					p.TaskSeconds <= 0 || p.StepSeconds <= 0 || p.Health != 1 {
					t.Errorf("performance: %s", b)
				}
				if st, out := c.do("GET", "/v1/analytics/performance?hours=0", nil); st != 400 || !strings.Contains(string(out), "hours") {
					t.Errorf("hours=0: %d %s, want 400 naming hours", st, out)
				}
			})

			t.Run("bottlenecks list the slowest steps and templates from the store", func(t *testing.T) {
				var b struct {
					SlowSteps []struct {
						Step       string  `json:"step_name"`
						Executions int64   `json:"execution_count"`
						Avg        float64 `json:"average_duration_seconds"`
					} `json:"slow_steps"`
					SlowTasks []struct {
						Task       string  `json:"task_name"`
						Executions int64   `json:"execution_count"`
						Steps      float64 `json:"average_step_count"`
					} `json:"slow_tasks"`
					Resources struct {
						Health struct {
							Complete int64 `json:"complete_tasks"`
							Steps    int64 `json:"complete_steps"`
						} `json:"system_health"`
					} `json:"resource_utilization"`
				}
				c.json("GET", "/v1/analytics/bottlenecks?min_executions=3&limit=10", nil, 200, &b)
				if len(b.SlowSteps) != 4 || b.SlowSteps[0].Executions != 3 || b.SlowSteps[0].Avg < b.SlowSteps[3].Avg {
					t.Errorf("slow steps: %+v, want linear_workflow's 4 steps, 3 runs each, slowest first", b.SlowSteps)
				}
				if len(b.SlowTasks) != 1 || b.SlowTasks[0].Task != "linear_workflow" || b.SlowTasks[0].Executions != 3 || b.SlowTasks[0].Steps != 4 {
					t.Errorf("slow tasks: %+v, want linear_workflow, 3 runs of 4 steps", b.SlowTasks)
				}
				if b.Resources.Health.Complete != 3 || b.Resources.Health.Steps != 12 {
					t.Errorf("system health: %+v, want 3 complete tasks and 12 complete steps", b.Resources.Health)
				}
				c.json("GET", "/v1/analytics/bottlenecks?min_executions=4", nil, 200, &b)
				if len(b.SlowSteps) != 0 || len(b.SlowTasks) != 0 {
					t.Errorf("min_executions=4: %+v, want none", b)
				}
				if st, out := c.do("GET", "/v1/analytics/bottlenecks?limit=0", nil); st != 400 || !strings.Contains(string(out), "limit") {
					t.Errorf("limit=0: %d %s, want 400 naming limit", st, out)
				}
			})
		})
	}
}

func jsonSame(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}
