package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/api"
	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/template"
)

// APIOptions configures RunAPI.
type APIOptions struct {
	Backend
	// Clients are the concurrencies measured. Default 1 and 32.
	Clients []int
	// Duration is how long each mode runs at each concurrency, split into
	// Rounds interleaved with the other modes. Default 3s.
	Duration time.Duration
	// Rounds is how many times the modes take turns. Default 3.
	Rounds int
	// CPUProfile, when set, is the file a CPU profile of the measurement
	// (every mode and concurrency, not the setup) is written to.
	CPUProfile string
	Logger     *slog.Logger
}

// APIReport is one mode at one concurrency.
type APIReport struct {
	Mode     string        `json:"mode"` // in-process create, http create, http get
	Clients  int           `json:"clients"`
	Ops      int           `json:"ops"`
	PerSec   float64       `json:"per_sec"`
	P50, P95 time.Duration `json:"-"`
	P50Ms    float64       `json:"p50_ms"`
	P95Ms    float64       `json:"p95_ms"`
	// Costs per call, over the mode's turns: this process's CPU and heap
	// allocations (server, clients and the engine running the created
	// tasks' steps together),
	// and on PostgreSQL the CPU of the run's server backends (when they
	// can be read from /proc: a local server), the round trips and the
	// statements. The steps of tasks created in one turn may run in the
	// next: a create's figures carry most of its task's run, not all.
	GoCPUPerCallMicros float64 `json:"go_cpu_per_call_us"`
	PGCPUPerCallMicros float64 `json:"pg_cpu_per_call_us,omitempty"`
	PGCPUMeasured      bool    `json:"pg_cpu_measured,omitempty"`
	AllocsPerCall      float64 `json:"allocs_per_call"`
	BytesPerCall       float64 `json:"alloc_bytes_per_call"`
	TripsPerCall       float64 `json:"round_trips_per_call,omitempty"`
	StatementsPerCall  float64 `json:"statements_per_call,omitempty"`
}

// API modes.
const (
	ModeInProcess  = "in-process CreateTask"
	ModeHTTPCreate = "POST /v1/tasks"
	ModeHTTPGet    = "GET /v1/tasks/{uuid}"
)

// RunAPI measures the REST API against the in-process call it wraps, in
// one run: an engine with the single-step shape (its noop steps run in the
// same process, as in a real server), the API served on a loopback port,
// and for each concurrency the three modes taking turns for Rounds rounds.
func RunAPI(ctx context.Context, o APIOptions) (reports []APIReport, err error) {
	if len(o.Clients) == 0 {
		o.Clients = []int{1, 32}
	}
	o.Duration = cmpOr(o.Duration, 3*time.Second)
	o.Rounds = cmpOr(o.Rounds, 3)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	single, err := template.Parse("single", []byte(singleShape))
	if err != nil {
		return nil, err
	}
	// The run's connections carry a name of their own, so that the CPU of
	// their server backends can be read.
	app := fmt.Sprintf("tasker-bench-api-%d", time.Now().UnixNano())
	var admin *pgdb.DB
	if o.DatabaseURL != "" {
		if admin, err = pgdb.Open(ctx, pgdb.Options{URL: o.DatabaseURL, Logger: o.Logger, MaxConns: 1}); err != nil {
			return nil, err
		}
		defer admin.Close()
		if o.DatabaseURL, err = withParam(o.DatabaseURL, "application_name", app); err != nil {
			return nil, err
		}
	}
	b, err := Open(ctx, o.Backend, o.Logger, single)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	srv, err := api.New(api.Config{Engine: b.Engine, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	base := "http://" + ln.Addr().String()

	stopProfile, err := startCPUProfile(o.CPUProfile, "bench api")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, stopProfile()) }()

	for _, n := range o.Clients {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}, Timeout: 30 * time.Second}
		// Tasks for the GETs to read, created over HTTP first.
		ids := make([]string, 0, 64)
		for range 64 {
			id, err := httpCreate(ctx, hc, base)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		ops := map[string]func(ctx context.Context, i int) error{
			ModeInProcess: func(ctx context.Context, _ int) error {
				_, err := b.Engine.CreateTask(ctx, taskParams(single))
				return err
			},
			ModeHTTPCreate: func(ctx context.Context, _ int) error {
				_, err := httpCreate(ctx, hc, base)
				return err
			},
			ModeHTTPGet: func(ctx context.Context, i int) error { return httpGet(ctx, hc, base, ids[i%len(ids)]) },
		}
		modes := []string{ModeInProcess, ModeHTTPCreate, ModeHTTPGet}
		lat := map[string][]time.Duration{}
		count := map[string]int{}
		spent := map[string]time.Duration{}
		costs := map[string]*apiCost{}
		for _, m := range modes {
			costs[m] = &apiCost{}
		}
		for range o.Rounds {
			for _, m := range modes {
				start := time.Now()
				turn, err := startAPICost(ctx, b, admin, app)
				if err != nil {
					return nil, err
				}
				ls, err := drive(ctx, n, o.Duration/time.Duration(o.Rounds), ops[m])
				costs[m].add(turn.stop())
				if err != nil {
					return nil, fmt.Errorf("%s with %d clients: %w", m, n, err)
				}
				spent[m] += time.Since(start)
				lat[m] = append(lat[m], ls...)
				count[m] += len(ls)
			}
		}
		for _, m := range modes {
			r := APIReport{Mode: m, Clients: n, Ops: count[m], PerSec: float64(count[m]) / spent[m].Seconds(),
				P50: Percentile(lat[m], 50), P95: Percentile(lat[m], 95)}
			r.P50Ms, r.P95Ms = ms(r.P50), ms(r.P95)
			if calls := float64(count[m]); calls > 0 {
				c := costs[m]
				r.GoCPUPerCallMicros = micros(c.goCPU) / calls
				r.AllocsPerCall, r.BytesPerCall = float64(c.allocs)/calls, float64(c.bytes)/calls
				r.PGCPUPerCallMicros, r.PGCPUMeasured = micros(c.pgCPU)/calls, c.pgMeasured
				r.TripsPerCall, r.StatementsPerCall = float64(c.trips)/calls, float64(c.stmts)/calls
			}
			reports = append(reports, r)
		}
		hc.CloseIdleConnections()
	}
	return reports, nil
}

// apiCost is what the calls of one mode cost, summed over its turns.
type apiCost struct {
	goCPU, pgCPU  time.Duration
	pgMeasured    bool
	allocs, bytes uint64
	trips, stmts  uint64
}

func (c *apiCost) add(d apiCost) {
	c.goCPU += d.goCPU
	c.pgCPU += d.pgCPU
	c.pgMeasured = c.pgMeasured || d.pgMeasured
	c.allocs += d.allocs
	c.bytes += d.bytes
	c.trips += d.trips
	c.stmts += d.stmts
}

// apiTurn measures one turn of a mode.
type apiTurn struct {
	b            *Bench
	goCPU        time.Duration
	mem          runtime.MemStats
	trips, stmts uint64
	pg           *pgCPU
}

func startAPICost(ctx context.Context, b *Bench, admin *pgdb.DB, app string) (*apiTurn, error) {
	t := &apiTurn{b: b}
	runtime.ReadMemStats(&t.mem)
	t.goCPU = ProcessCPU()
	if b.pg != nil {
		t.trips, t.stmts = b.pg.RoundTrips(), b.pg.DB().Statements()
	}
	if admin != nil {
		var err error
		if t.pg, err = startPGCPU(ctx, admin, app); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *apiTurn) stop() apiCost {
	c := apiCost{goCPU: ProcessCPU() - t.goCPU}
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	c.allocs, c.bytes = mem.Mallocs-t.mem.Mallocs, mem.TotalAlloc-t.mem.TotalAlloc
	if t.b.pg != nil {
		c.trips, c.stmts = t.b.pg.RoundTrips()-t.trips, t.b.pg.DB().Statements()-t.stmts
	}
	if t.pg != nil {
		c.pgCPU, _, c.pgMeasured = t.pg.stop()
	}
	return c
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// drive runs op from n goroutines for d and returns each call's latency.
func drive(ctx context.Context, n int, d time.Duration, op func(ctx context.Context, i int) error) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var all []time.Duration
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			var ls []time.Duration
			for i := g; time.Now().Before(deadline) && ctx.Err() == nil; i += n {
				t0 := time.Now()
				if err := op(ctx, i); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					cancel()
					break
				}
				ls = append(ls, time.Since(t0))
			}
			mu.Lock()
			all = append(all, ls...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return nil, *p
	}
	slices.Sort(all)
	return all, nil
}

func httpCreate(ctx context.Context, hc *http.Client, base string) (string, error) {
	body, err := json.Marshal(map[string]any{"namespace": "demo", "name": "single_workflow", "version": "1.0.0",
		"context": map[string]any{"value": 3}, "idempotency_key": uuid.NewString(), "correlation_id": uuid.NewString(),
		"initiator": "bench", "reason": "bench", "source_system": "bench", "requested_at": time.Now().UTC(), "tags": []string{}})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/tasks", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var t struct {
		ID string `json:"task_uuid"`
	}
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", fmt.Errorf("POST /v1/tasks: %d %s", resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil {
		return "", err
	}
	return t.ID, nil
}

func httpGet(ctx context.Context, hc *http.Client, base, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/tasks/"+id, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New("GET /v1/tasks/{uuid}: " + resp.Status)
	}
	return nil
}
