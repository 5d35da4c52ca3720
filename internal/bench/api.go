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
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/api"
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
	Logger *slog.Logger
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
func RunAPI(ctx context.Context, o APIOptions) ([]APIReport, error) {
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

	var reports []APIReport
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
		for range o.Rounds {
			for _, m := range modes {
				start := time.Now()
				ls, err := drive(ctx, n, o.Duration/time.Duration(o.Rounds), ops[m])
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
			reports = append(reports, r)
		}
		hc.CloseIdleConnections()
	}
	return reports, nil
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
