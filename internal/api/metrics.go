package api

import (
	"context"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/auth"
	"github.com/tasker-go/tasker/internal/stats"
)

// metrics is the server's Prometheus registry (its own, never the global
// default) and the instruments the HTTP layer updates; the engine's figures
// are read at scrape time by engineCollector.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	authFail *prometheus.CounterVec
}

func newMetrics(eng *tasker.Engine, queueTimeout time.Duration) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tasker_http_requests_total", Help: "HTTP requests answered, by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tasker_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route pattern and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
		authFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tasker_auth_failures_total", Help: "Requests refused 401 or 403, by the spec's AuthFailureReason.",
		}, []string{"reason"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.authFail,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&engineCollector{eng: eng, queueTimeout: queueTimeout})
	return m
}

func (m *metrics) authFailure(r auth.Reason) { m.authFail.WithLabelValues(string(r)).Inc() }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets a streaming handler (SSE) flush through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts and times each request by its route pattern (a
// request no route matched counts under "unmatched": the label's values
// are bounded by the routes).
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.clock.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			route := routePattern(r.Context())
			if route == "" {
				route = "unmatched"
			} else if _, path, ok := strings.Cut(route, " "); ok {
				route = path
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			m := methodLabel(r.Method)
			s.metrics.requests.WithLabelValues(route, m, strconv.Itoa(status)).Inc()
			s.metrics.latency.WithLabelValues(route, m).Observe(s.clock.Now().Sub(start).Seconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

// engineCollector turns Engine.Stats() into metrics at scrape time: the
// outcome counters by namespace and handler, the pools, the queue depths,
// and every figure of every analysed structure (statsMetrics).
type engineCollector struct {
	eng          *tasker.Engine
	queueTimeout time.Duration
}

var (
	descTasks = map[string]*prometheus.Desc{
		"created":           prometheus.NewDesc("tasker_tasks_created_total", "Tasks created by this process, by namespace.", []string{"namespace"}, nil),
		"completed":         prometheus.NewDesc("tasker_tasks_completed_total", "Tasks this process moved to complete, by namespace.", []string{"namespace"}, nil),
		"failed":            prometheus.NewDesc("tasker_tasks_failed_total", "Tasks this process moved to error, by namespace.", []string{"namespace"}, nil),
		"cancelled":         prometheus.NewDesc("tasker_tasks_cancelled_total", "Tasks this process cancelled, by namespace.", []string{"namespace"}, nil),
		"resolved_manually": prometheus.NewDesc("tasker_tasks_resolved_manually_total", "Tasks this process resolved by an operator's hand, by namespace.", []string{"namespace"}, nil),
	}
	descStepAttempts = prometheus.NewDesc("tasker_step_attempts_total",
		"Step attempts this process's orchestration judged, by namespace, handler and outcome (success, retry, failure).",
		[]string{"namespace", "handler", "outcome"}, nil)
	descStepDuration = prometheus.NewDesc("tasker_step_duration_seconds",
		"Run time of the judged step attempts (the attempt's finish minus its start), by namespace and handler.",
		[]string{"namespace", "handler"}, nil)
	descQueueDepth = prometheus.NewDesc("tasker_queue_depth", "Messages waiting in a queue, visible now.", []string{"queue"}, nil)
	descQueueUp    = prometheus.NewDesc("tasker_queue_depth_up", "1 when the last scrape read the queue depths, 0 when it failed.", nil, nil)
	descPool       = map[string]*prometheus.Desc{
		"max":      prometheus.NewDesc("tasker_db_pool_max_connections", "The pool's bound.", []string{"pool"}, nil),
		"in_use":   prometheus.NewDesc("tasker_db_pool_in_use_connections", "Connections handed out now.", []string{"pool"}, nil),
		"idle":     prometheus.NewDesc("tasker_db_pool_idle_connections", "Idle connections now.", []string{"pool"}, nil),
		"acquires": prometheus.NewDesc("tasker_db_pool_acquires_total", "Connections handed out (PostgreSQL only).", []string{"pool"}, nil),
		"waits":    prometheus.NewDesc("tasker_db_pool_waits_total", "Acquires that waited for a connection.", []string{"pool"}, nil),
		"wait":     prometheus.NewDesc("tasker_db_pool_wait_seconds_total", "Total time acquires waited for a connection.", []string{"pool"}, nil),
	}
)

// Describe sends nothing: the engine's figures are an unchecked collector
// (their set follows the Stats struct).
func (c *engineCollector) Describe(chan<- *prometheus.Desc) {}

// Collect reads the engine once.
func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.eng.Stats()
	for _, t := range st.Tasks {
		for k, v := range map[string]uint64{"created": t.Created, "completed": t.Completed, "failed": t.Failed,
			"cancelled": t.Cancelled, "resolved_manually": t.ResolvedByHand} {
			ch <- prometheus.MustNewConstMetric(descTasks[k], prometheus.CounterValue, float64(v), t.Namespace)
		}
	}
	for _, s := range st.Steps {
		for k, v := range map[string]uint64{"success": s.Succeeded, "retry": s.Retried, "failure": s.Failed} {
			ch <- prometheus.MustNewConstMetric(descStepAttempts, prometheus.CounterValue, float64(v), s.Namespace, s.Handler, k)
		}
		buckets := make(map[float64]uint64, len(stats.DurationBuckets))
		for i, b := range stats.DurationBuckets {
			buckets[b] = s.Buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(descStepDuration, s.Count, s.Sum.Seconds(), buckets, s.Namespace, s.Handler)
	}
	for _, p := range st.Pools {
		for k, v := range map[string]float64{"max": float64(p.MaxConns), "in_use": float64(p.InUse), "idle": float64(p.Idle)} {
			ch <- prometheus.MustNewConstMetric(descPool[k], prometheus.GaugeValue, v, p.Name)
		}
		for k, v := range map[string]float64{"acquires": float64(p.Acquires), "waits": float64(p.Waits), "wait": p.WaitTime.Seconds()} {
			ch <- prometheus.MustNewConstMetric(descPool[k], prometheus.CounterValue, v, p.Name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.queueTimeout)
	defer cancel()
	depths, err := c.eng.QueueDepths(ctx)
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descQueueUp, prometheus.GaugeValue, up)
	for _, d := range depths {
		ch <- prometheus.MustNewConstMetric(descQueueDepth, prometheus.GaugeValue, float64(d.Depth), d.Queue)
	}
	st.Tasks, st.Steps, st.Pools = nil, nil, nil // above
	statsMetrics(reflect.ValueOf(st), "tasker_engine", nil, nil, ch)
}

// statsMetrics turns every figure of a Stats value into a metric named by
// its path (tasker_engine_pull_in_flight): an unsigned integer is a counter
// (the structures count with uint64 since start), an int or a float a
// gauge, a duration a gauge in seconds, a time a gauge of Unix seconds
// (0 when zero), a bool 0 or 1. A slice of structs with a Name (the
// breakers) becomes one series per element labelled by it, and a State
// string a series labelled by the state. Other strings and ids are left
// out: not numbers, and unbounded as labels.
func statsMetrics(v reflect.Value, name string, labels, values []string, ch chan<- prometheus.Metric) {
	emit := func(vt prometheus.ValueType, f float64, n string) {
		if vt == prometheus.CounterValue {
			n += "_total"
		}
		d := prometheus.NewDesc(n, "Engine.Stats figure "+n+" (docs/api.md).", labels, nil)
		ch <- prometheus.MustNewConstMetric(d, vt, f, values...)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			statsMetrics(v.Elem(), name, labels, values, ch)
		}
	case reflect.Struct:
		switch t := v.Interface().(type) {
		case time.Time:
			f := 0.0
			if !t.IsZero() {
				f = float64(t.UnixNano()) / 1e9
			}
			emit(prometheus.GaugeValue, f, name+"_timestamp_seconds")
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			fv := v.Field(i)
			if f.Name == "State" && fv.Kind() == reflect.String {
				d := prometheus.NewDesc(name+"_state", "1 for the state the structure is in (Engine.Stats).", append(labels[:len(labels):len(labels)], "state"), nil)
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, 1, append(values[:len(values):len(values)], fv.String())...)
				continue
			}
			statsMetrics(fv, name+"_"+snake(f.Name), labels, values, ch)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Struct {
			return
		}
		label := strings.TrimSuffix(name[strings.LastIndex(name, "_")+1:], "s")
		for i := range v.Len() {
			e := v.Index(i)
			n := e.FieldByName("Name")
			if !n.IsValid() {
				n = e.FieldByName("Queue") // queue.Counters
			}
			if !n.IsValid() || n.Kind() != reflect.String {
				return
			}
			statsMetrics(e, name, append(labels[:len(labels):len(labels)], label), append(values[:len(values):len(values)], n.String()), ch)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		emit(prometheus.CounterValue, float64(v.Uint()), name)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type() == reflect.TypeFor[time.Duration]() {
			emit(prometheus.GaugeValue, time.Duration(v.Int()).Seconds(), name+"_seconds")
			return
		}
		emit(prometheus.GaugeValue, float64(v.Int()), name)
	case reflect.Float32, reflect.Float64:
		emit(prometheus.GaugeValue, v.Float(), name)
	case reflect.Bool:
		f := 0.0
		if v.Bool() {
			f = 1
		}
		emit(prometheus.GaugeValue, f, name)
	}
}

// snake turns a Go field name into snake case: InFlight → in_flight,
// RatePerSec → rate_per_sec, P95 → p95.
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// methodLabel folds a request's method into a fixed set: a client sends
// any token it likes as the method, and each would be a new series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions:
		return m
	}
	return "other"
}
