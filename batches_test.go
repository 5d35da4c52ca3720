package tasker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/demo"
	"github.com/tasker-go/tasker/internal/pgdb/pgtest"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// batchTemplate: plan splits the context's "items" into batches of the
// context's "size"; work_NNN process them; collect converges over them.
// %s is the failure strategy, %d the parallelism.
const batchTemplate = `name: batch
namespace: test
version: 1.0.0
steps:
  - name: plan
    type: batchable
    handler: plan
    batch_config:
      batch_size: 100
      parallelism: %d
      cursor_field: row
      worker_template: work
      failure_strategy: %s
  - name: work
    type: batch_worker
    handler: work
    depends_on: [plan]
    retry: {max_attempts: 2, backoff: none}
  - name: collect
    type: deferred_convergence
    handler: collect
    depends_on: [work]
  - name: report
    handler: report
    depends_on: [collect]
`

type batchCtx struct {
	Items int `json:"items"`
	Size  int `json:"size"`
	// Fail names a batch whose every attempt fails.
	Fail string `json:"fail"`
}

// batchHandlers are the handlers of batchTemplate; what they saw is kept.
type batchHandlers struct {
	mu        sync.Mutex
	inputs    map[string]*taskertype.BatchInput // by worker
	collected map[string]json.RawMessage        // what collect saw
	running   atomic.Int32
	peak      atomic.Int32
	release   chan struct{} // nil: workers do not wait
}

func (b *batchHandlers) handlers() map[string]tasker.Handler {
	b.inputs = map[string]*taskertype.BatchInput{}
	return map[string]tasker.Handler{
		"plan": taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
			var c batchCtx
			must0(in.DecodeContext(&c))
			if c.Items == 0 {
				return taskertype.BatchResult(taskertype.NoBatches(), map[string]any{"reason": "empty_dataset"}), nil
			}
			return taskertype.BatchResult(taskertype.CreateBatches("work", int64(c.Items), taskertype.IntCursors(c.Items, c.Size)...), nil), nil
		}),
		"work": taskertype.HandlerFunc(func(ctx context.Context, in *taskertype.StepInput) (any, error) {
			n := b.running.Add(1)
			defer b.running.Add(-1)
			for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
			}
			if b.release != nil {
				select {
				case <-b.release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			b.mu.Lock()
			cp := *in.Batch
			b.inputs[in.StepName] = &cp
			b.mu.Unlock()
			var c batchCtx
			must0(in.DecodeContext(&c))
			if c.Fail != "" && in.Batch.Cursor.BatchID == c.Fail {
				return nil, fmt.Errorf("batch %s is broken", c.Fail)
			}
			if in.Batch.IsNoOp {
				return map[string]any{"items_processed": 0, "no_op": true}, nil
			}
			start, end, err := in.Batch.Cursor.IntRange()
			if err != nil {
				return nil, taskertype.Permanent(err)
			}
			return map[string]any{"items_processed": end - start, "start": start, "end": end}, nil
		}),
		"collect": taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
			b.mu.Lock()
			b.collected = in.Results
			b.mu.Unlock()
			total := 0
			for name, r := range in.Results {
				if !strings.HasPrefix(name, "work_") {
					continue
				}
				var w struct {
					Items int `json:"items_processed"`
				}
				_ = json.Unmarshal(r, &w)
				total += w.Items
			}
			return map[string]any{"total": total}, nil
		}),
		"report": taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
			return map[string]any{"reported": true}, nil
		}),
	}
}

// waitState polls task id until it is in state want.
func (h *harness) waitState(id uuid.UUID, want taskertype.TaskState) *tasker.TaskInfo {
	h.t.Helper()
	var info *tasker.TaskInfo
	waitUntil(h.t, func() bool {
		var err error
		info, err = h.eng.Task(h.t.Context(), id)
		must(h.t, err)
		return info.Task.State == want
	})
	return info
}

// waitUntil polls cond until it holds, for up to 20s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func must0(err error) {
	if err != nil {
		panic(err)
	}
}

// TestBatchesOfZeroOneAndManyWorkers: the batchable step's plan creates
// its workers, each sees its own cursor range, and the convergence step
// sees every worker's result; no batches create one no-op worker _000.
func TestBatchesOfZeroOneAndManyWorkers(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		b := &batchHandlers{}
		h := newHarnessOn(t, backend, fmt.Sprintf(batchTemplate, 2, "continue_on_failure"), b.handlers())
		for _, tc := range []struct {
			items, size int
			workers     []string
		}{
			{0, 10, []string{"work_000"}},
			{7, 10, []string{"work_001"}},
			{250, 50, []string{"work_001", "work_002", "work_003", "work_004", "work_005"}},
		} {
			info := h.run("batch", batchCtx{Items: tc.items, Size: tc.size})
			if info.Task.State != taskertype.TaskComplete {
				t.Fatalf("%d items: task is %s, want complete", tc.items, info.Task.State)
			}
			want := append([]string{"plan"}, tc.workers...)
			want = append(want, "collect", "report")
			if got := stepNames(info); !slices.Equal(got, want) {
				t.Errorf("%d items: steps %v, want %v", tc.items, got, want)
			}
			var total struct{ Total int }
			must(t, json.Unmarshal(h.step(info, "collect").Result, &total))
			if total.Total != tc.items {
				t.Errorf("%d items: collect counted %d items", tc.items, total.Total)
			}
			b.mu.Lock()
			var saw []string
			for name := range b.collected {
				saw = append(saw, name)
			}
			slices.Sort(saw)
			if !slices.Equal(saw, tc.workers) {
				t.Errorf("%d items: collect saw the results of %v, want %v", tc.items, saw, tc.workers)
			}
			for k, w := range tc.workers {
				in := b.inputs[w]
				switch {
				case in == nil:
					t.Errorf("%d items: worker %s did not run", tc.items, w)
				case tc.items == 0:
					if !in.IsNoOp || in.Cursor.BatchID != "000" {
						t.Errorf("no batches: worker %s got %+v, want a no-op placeholder", w, in)
					}
				default:
					start, end, err := in.Cursor.IntRange()
					must(t, err)
					if in.IsNoOp || start != int64(k*tc.size) || end != int64(min((k+1)*tc.size, tc.items)) ||
						in.Metadata.CursorField != "row" || in.Metadata.FailureStrategy != "continue_on_failure" || in.TemplateStep != "work" {
						t.Errorf("%d items: worker %s got %+v", tc.items, w, in)
					}
				}
			}
			b.mu.Unlock()
		}
	})
}

// TestBatchParallelism: at most batch_config.parallelism workers of one
// batch are in flight at once.
func TestBatchParallelism(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		b := &batchHandlers{release: make(chan struct{})}
		h := newHarnessOn(t, backend, fmt.Sprintf(batchTemplate, 2, "fail_fast"), b.handlers())
		task, err := h.eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "test", Name: "batch", Context: batchCtx{Items: 60, Size: 10}})
		must(t, err)
		go func() {
			// Let the workers go one at a time, slowly enough for a third
			// to start if the bound did not hold.
			for range 6 {
				time.Sleep(20 * time.Millisecond)
				select {
				case b.release <- struct{}{}:
				case <-t.Context().Done():
					return
				}
			}
		}()
		info := h.wait(task)
		if info.Task.State != taskertype.TaskComplete {
			t.Fatalf("task is %s, want complete", info.Task.State)
		}
		if p := b.peak.Load(); p > 2 || p < 1 {
			t.Errorf("at most %d workers ran at once, want 1..2 (parallelism 2)", p)
		}
	})
}

// TestBatchFailureStrategies: a batch whose worker 002 always fails.
func TestBatchFailureStrategies(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		for _, strategy := range []string{"continue_on_failure", "fail_fast", "isolate"} {
			t.Run(strategy, func(t *testing.T) {
				b := &batchHandlers{}
				// Parallelism 1: the workers run in order, so that under
				// fail_fast 003 and 004 have not started when 002 fails.
				h := newHarnessOn(t, backend, fmt.Sprintf(batchTemplate, 1, strategy), b.handlers())
				info := h.run("batch", batchCtx{Items: 40, Size: 10, Fail: "002"})
				states := map[string]taskertype.StepState{}
				for _, s := range info.Steps {
					states[s.Name] = s.State
				}
				failed := h.step(info, "work_002")
				switch strategy {
				case "continue_on_failure":
					if info.Task.State != taskertype.TaskComplete {
						t.Fatalf("task is %s, want complete: %v", info.Task.State, states)
					}
					var r struct {
						Failed bool   `json:"batch_worker_failed"`
						Error  string `json:"error"`
					}
					must(t, json.Unmarshal(failed.Result, &r))
					if failed.State != taskertype.StepComplete || !r.Failed || !strings.Contains(r.Error, "batch 002 is broken") {
						t.Errorf("work_002 is %s with result %s, want complete with its failure", failed.State, failed.Result)
					}
					var total struct{ Total int }
					must(t, json.Unmarshal(h.step(info, "collect").Result, &total))
					if total.Total != 30 {
						t.Errorf("collect counted %d items, want the 30 of the three workers that succeeded", total.Total)
					}
					if evs := h.stepEvents(info, "work_002"); evs[len(evs)-1] != string(taskertype.StepEventContinueFailed) {
						t.Errorf("work_002's log ends %v, want continue_failed", evs)
					}
				case "fail_fast":
					if info.Task.State != taskertype.TaskError {
						t.Fatalf("task is %s, want error: %v", info.Task.State, states)
					}
					want := map[string]taskertype.StepState{"plan": taskertype.StepComplete, "work_001": taskertype.StepComplete,
						"work_002": taskertype.StepError, "work_003": taskertype.StepCancelled, "work_004": taskertype.StepCancelled,
						"collect": taskertype.StepPending}
					for name, st := range want {
						if states[name] != st {
							t.Errorf("%s is %s, want %s (all: %v)", name, states[name], st, states)
						}
					}
				case "isolate":
					if info.Task.State != taskertype.TaskError {
						t.Fatalf("task is %s, want error: %v", info.Task.State, states)
					}
					if states["work_002"] != taskertype.StepError || states["work_003"] != taskertype.StepComplete ||
						states["work_004"] != taskertype.StepComplete || states["collect"] != taskertype.StepPending {
						t.Errorf("steps %v: want work_002 in error for an operator, the other workers complete, collect waiting", states)
					}
					// The operator resolves the isolated worker; the batch
					// and the convergence step run on.
					must(t, h.eng.ResolveStep(t.Context(), info.Task.ID, "work_002"))
					info = h.waitState(info.Task.ID, taskertype.TaskComplete)
					var total struct{ Total int }
					must(t, json.Unmarshal(h.step(info, "collect").Result, &total))
					if total.Total != 30 {
						t.Errorf("collect counted %d items, want 30", total.Total)
					}
				}
			})
		}
	})
}

// TestBatchPlanIsChecked: a plan over the batch_config's batch_size, or
// naming a step that is no batch worker, fails the batchable step with a
// message saying why.
func TestBatchPlanIsChecked(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		var plan atomic.Value
		hs := (&batchHandlers{}).handlers()
		hs["plan"] = taskertype.HandlerFunc(func(context.Context, *taskertype.StepInput) (any, error) {
			return taskertype.BatchResult(plan.Load().(taskertype.BatchProcessingOutcome), nil), nil
		})
		h := newHarnessOn(t, backend, fmt.Sprintf(batchTemplate, 2, "continue_on_failure"), hs)
		for _, tc := range []struct {
			o    taskertype.BatchProcessingOutcome
			want string
		}{
			{taskertype.CreateBatches("work", 200, taskertype.IntCursors(200, 200)...), "more than the batch_config's batch_size 100"},
			{taskertype.CreateBatches("collect", 10, taskertype.IntCursors(10, 10)...), `worker template "collect" is not a batch_worker step`},
			{taskertype.BatchProcessingOutcome{Type: "some_batches"}, `want "create_batches" or "no_batches"`},
		} {
			plan.Store(tc.o)
			info := h.run("batch", map[string]any{})
			p := h.step(info, "plan")
			if info.Task.State != taskertype.TaskError || p.State != taskertype.StepError || p.Failure == nil || !strings.Contains(p.Failure.Message, tc.want) {
				t.Errorf("plan %+v: task %s, plan %s with %+v; want it failed saying %q", tc.o, info.Task.State, p.State, p.Failure, tc.want)
			}
			if len(info.Steps) != 1 {
				t.Errorf("plan %+v: steps %v, want plan only", tc.o, stepNames(info))
			}
		}
	})
}

// TestCheckpointResume: a worker yields a checkpoint after each 10 items;
// its third run fails; the retry starts from the last checkpoint, not from
// the start, and the accumulated results reach the end.
func TestCheckpointResume(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		var mu sync.Mutex
		var starts []string // the cursor each run of the worker started from
		failed := false
		hs := (&batchHandlers{}).handlers()
		maps.Copy(hs, map[string]tasker.Handler{
			"plan": taskertype.HandlerFunc(func(context.Context, *taskertype.StepInput) (any, error) {
				return taskertype.BatchResult(taskertype.CreateBatches("work", 50, taskertype.IntCursors(50, 100)...), nil), nil
			}),
			"work": taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
				start, end, err := in.Batch.Cursor.IntRange()
				if err != nil {
					return nil, err
				}
				var sum int64
				if cp := in.Batch.Checkpoint; cp != nil {
					must0(json.Unmarshal(cp.Cursor, &start))
					must0(json.Unmarshal(cp.AccumulatedResults, &sum))
				}
				mu.Lock()
				starts = append(starts, fmt.Sprint(start))
				fail := start == 20 && !failed
				failed = failed || fail
				mu.Unlock()
				if fail {
					return nil, errors.New("the database went away")
				}
				next := min(start+10, end)
				for i := start; i < next; i++ {
					sum += i
				}
				if next < end {
					acc, _ := json.Marshal(sum)
					return taskertype.Checkpoint{Cursor: json.RawMessage(fmt.Sprint(next)), ItemsProcessed: next, AccumulatedResults: acc}, nil
				}
				return map[string]any{"sum": sum, "items_processed": end}, nil
			}),
		})
		h := newHarnessOn(t, backend, fmt.Sprintf(batchTemplate, 2, "fail_fast"), hs)
		info := h.run("batch", map[string]any{})
		if info.Task.State != taskertype.TaskComplete {
			t.Fatalf("task is %s, want complete", info.Task.State)
		}
		mu.Lock()
		got := strings.Join(starts, ",")
		mu.Unlock()
		if want := "0,10,20,20,30,40"; got != want {
			t.Errorf("the worker's runs started at %s, want %s (the retry resumes at the last checkpoint, 20)", got, want)
		}
		w := h.step(info, "work_001")
		var r struct{ Sum int64 }
		must(t, json.Unmarshal(w.Result, &r))
		if r.Sum != 49*50/2 {
			t.Errorf("sum = %d, want %d", r.Sum, 49*50/2)
		}
		// Four yields and one failure: two attempts counted, not six.
		if w.Attempts != 2 {
			t.Errorf("attempts = %d, want 2 (yields do not count)", w.Attempts)
		}
		evs := h.stepEvents(info, "work_001")
		if n := strings.Count(strings.Join(evs, " "), string(taskertype.StepEventCheckpointYield)); n != 4 {
			t.Errorf("log %v has %d checkpoint_yield events, want 4", evs, n)
		}
	})
}

// BenchmarkBatch1000Items: a batch of 1,000 items in 10 workers of 100
// (parallelism 10, no checkpoints; then a checkpoint every 25 items), from
// the task's creation to its completion; reports items/s.
func BenchmarkBatch1000Items(b *testing.B) {
	for _, backend := range backends() {
		for _, every := range []int{0, 25} {
			b.Run(fmt.Sprintf("%s/checkpoint_every=%d", backend, every), func(b *testing.B) {
				doc := strings.NewReplacer("parallelism: 4", "parallelism: 10", "checkpoint_every: 25", fmt.Sprintf("checkpoint_every: %d", every))
				src, err := os.ReadFile("examples/batch.yaml")
				if err != nil {
					b.Fatal(err)
				}
				tpl, err := template.Parse("batch.yaml", []byte(doc.Replace(string(src))))
				if err != nil {
					b.Fatal(err)
				}
				var cfg tasker.Config
				if backend == "postgres" {
					_, url := pgtest.Schema(b)
					cfg = tasker.Config{DatabaseURL: url, AutoMigrate: true}
				} else {
					cfg = tasker.Config{DatabasePath: filepath.Join(b.TempDir(), "t.db")}
				}
				cfg.Templates = []*template.Template{tpl}
				cfg.DefaultIdentityStrategy = tasker.IdentityAlwaysUnique // one context, b.N tasks
				eng, err := tasker.Open(b.Context(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				for name, h := range demo.Handlers() {
					if err := eng.RegisterHandler(name, h); err != nil {
						b.Fatal(err)
					}
				}
				if err := eng.Start(b.Context()); err != nil {
					b.Fatal(err)
				}
				defer eng.Stop(context.Background())
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					task, err := eng.CreateTask(b.Context(), tasker.CreateTaskParams{Namespace: "demo", Name: "batch_sum", Context: map[string]int{"items": 1000}})
					if err != nil {
						b.Fatal(err)
					}
					if st, err := eng.WaitTask(b.Context(), task.ID); err != nil || st.State != taskertype.TaskComplete {
						b.Fatalf("task ended %v, %v", st, err)
					}
				}
				b.ReportMetric(float64(1000*b.N)/time.Since(start).Seconds(), "items/s")
			})
		}
	}
}

// TestTwoBatchesConverge: a convergence step that waits for the workers of
// two batches is created once both batchable steps have planned, with
// edges to every worker of both.
func TestTwoBatchesConverge(t *testing.T) {
	const doc = `name: two
namespace: test
version: 1.0.0
steps:
  - name: plan_a
    type: batchable
    handler: plan_a
    batch_config: {worker_template: wa}
  - name: plan_b
    type: batchable
    handler: plan_b
    batch_config: {worker_template: wb}
  - name: wa
    type: batch_worker
    handler: work
    depends_on: [plan_a]
  - name: wb
    type: batch_worker
    handler: work
    depends_on: [plan_b]
  - name: collect
    type: deferred_convergence
    handler: collect
    depends_on: [wa, wb]
`
	onBackends(t, func(t *testing.T, backend string) {
		var mu sync.Mutex
		var saw []string
		planner := func(wt string, n int) tasker.Handler {
			return taskertype.HandlerFunc(func(context.Context, *taskertype.StepInput) (any, error) {
				return taskertype.BatchResult(taskertype.CreateBatches(wt, int64(n), taskertype.IntCursors(n, 1)...), nil), nil
			})
		}
		h := newHarnessOn(t, backend, doc, map[string]tasker.Handler{
			"plan_a": planner("wa", 2),
			"plan_b": planner("wb", 3),
			"work": taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
				return map[string]any{"batch": in.Batch.Cursor.BatchID}, nil
			}),
			"collect": taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
				mu.Lock()
				saw = resultKeys(in)
				mu.Unlock()
				return map[string]any{}, nil
			}),
		})
		info := h.run("two", map[string]any{})
		if info.Task.State != taskertype.TaskComplete {
			t.Fatalf("task is %s, want complete", info.Task.State)
		}
		mu.Lock()
		defer mu.Unlock()
		if want := []string{"wa_001", "wa_002", "wb_001", "wb_002", "wb_003"}; !slices.Equal(saw, want) {
			t.Errorf("collect saw %v, want %v", saw, want)
		}
	})
}

// TestResolvingACheckpointedWorker: an isolated worker that failed after a
// checkpoint, resolved by an operator, gives the convergence step a null
// result, not its checkpoint.
func TestResolvingACheckpointedWorker(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		b := &batchHandlers{}
		hs := b.handlers()
		hs["work"] = taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
			if in.Batch.Checkpoint == nil {
				return taskertype.Checkpoint{Cursor: json.RawMessage(`5`), ItemsProcessed: 5}, nil
			}
			return nil, taskertype.Permanent(errors.New("row 5 is corrupt"))
		})
		h := newHarnessOn(t, backend, fmt.Sprintf(batchTemplate, 1, "isolate"), hs)
		info := h.run("batch", batchCtx{Items: 10, Size: 10})
		w := h.step(info, "work_001")
		if info.Task.State != taskertype.TaskError || w.State != taskertype.StepError || !strings.Contains(string(w.Result), `"checkpoint"`) {
			t.Fatalf("task %s, work_001 %s with result %s; want error, error, its checkpoint kept", info.Task.State, w.State, w.Result)
		}
		must(t, h.eng.ResolveStep(t.Context(), info.Task.ID, "work_001"))
		h.waitState(info.Task.ID, taskertype.TaskComplete)
		b.mu.Lock()
		defer b.mu.Unlock()
		if r := string(b.collected["work_001"]); r != "null" {
			t.Errorf("collect saw work_001's result %s, want null", r)
		}
	})
}

// TestCheckpointYieldInTaskerCoresForm: a worker whose result is
// tasker-core's {"type": "checkpoint_yield", ...} yields a checkpoint too.
func TestCheckpointYieldInTaskerCoresForm(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		b := &batchHandlers{}
		hs := b.handlers()
		hs["work"] = taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
			if cp := in.Batch.Checkpoint; cp != nil {
				return map[string]any{"items_processed": cp.ItemsProcessed + 5, "resumed_at": cp.Cursor, "acc": cp.AccumulatedResults}, nil
			}
			return map[string]any{"type": "checkpoint_yield", "cursor": 5, "items_processed": 5, "accumulated_results": []int{1, 2}}, nil
		})
		h := newHarnessOn(t, backend, fmt.Sprintf(batchTemplate, 1, "fail_fast"), hs)
		info := h.run("batch", batchCtx{Items: 10, Size: 10})
		if info.Task.State != taskertype.TaskComplete {
			t.Fatalf("task is %s, want complete", info.Task.State)
		}
		w := h.step(info, "work_001")
		var r struct {
			Items     int             `json:"items_processed"`
			ResumedAt json.RawMessage `json:"resumed_at"`
			Acc       json.RawMessage `json:"acc"`
		}
		must(t, json.Unmarshal(w.Result, &r))
		if r.Items != 10 || string(r.ResumedAt) != "5" || string(r.Acc) != "[1,2]" || w.Attempts != 1 {
			t.Errorf("work_001: result %s, attempts %d; want it resumed at 5 with [1,2], one attempt", w.Result, w.Attempts)
		}
	})
}
