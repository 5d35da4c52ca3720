package tasker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// diamondCallables are the handler.callable names of tasker-core's
// diamond_pattern fixture: Go handlers are registered under them.
var diamondCallables = map[string]string{
	"diamond_start":    "tasker_example_rs::step_handlers::diamond_workflow::DiamondStartHandler",
	"diamond_branch_b": "tasker_example_rs::step_handlers::diamond_workflow::DiamondBranchBHandler",
	"diamond_branch_c": "tasker_example_rs::step_handlers::diamond_workflow::DiamondBranchCHandler",
	"diamond_end":      "tasker_example_rs::step_handlers::diamond_workflow::DiamondEndHandler",
}

// diamondHandler does what the fixture's initialization asks: square the
// input (or the one dependency's result), or multiply the dependencies'
// results and square the product. It records the configuration it got.
func diamondHandler(seen *sync.Map) tasker.Handler {
	return taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
		var cfg struct {
			Operation string `json:"operation"`
		}
		if err := in.DecodeConfig(&cfg); err != nil {
			return nil, err
		}
		seen.Store(in.StepName, in.Config)
		var n int64
		switch len(in.Results) {
		case 0:
			var c struct {
				EvenNumber int64 `json:"even_number"`
			}
			if err := in.DecodeContext(&c); err != nil {
				return nil, err
			}
			n = c.EvenNumber
		default:
			n = 1
			for name := range in.Results {
				var v int64
				if err := in.DecodeResult(name, &v); err != nil {
					return nil, err
				}
				n *= v
			}
		}
		switch cfg.Operation {
		case "square", "multiply_and_square":
			return n * n, nil
		}
		return nil, taskertype.Permanent(fmt.Errorf("unknown operation %q in the step's configuration", cfg.Operation))
	})
}

// TestATaskerCoreTemplateRunsWithGoHandlers loads tasker-core's diamond
// fixture as it is, registers Go handlers under its callables and runs a
// task to completion: the handlers compute 2^16 from the operations in
// their configuration (handler.initialization, merged with the
// development environment's overrides).
func TestATaskerCoreTemplateRunsWithGoHandlers(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		tpl, err := template.Loader{Environment: "development"}.LoadFile("template/testdata/tasker-core/diamond_pattern.yaml")
		must(t, err)
		cfg := database(t, backend)
		cfg.Templates = []*template.Template{tpl}
		eng, err := tasker.Open(t.Context(), cfg)
		must(t, err)
		var seen sync.Map
		for _, callable := range diamondCallables {
			must(t, eng.RegisterHandler(callable, diamondHandler(&seen)))
		}
		must(t, eng.Start(t.Context()))
		stopAtCleanup(t, eng)
		h := &harness{t: t, eng: eng}

		task, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "rust_e2e_diamond", Name: "diamond_pattern",
			Context: map[string]any{"even_number": 2}})
		must(t, err)
		info := h.wait(task)
		if info.Task.State != taskertype.TaskComplete {
			t.Fatalf("task is %s, want complete", info.Task.State)
		}
		var end int64
		must(t, json.Unmarshal(h.step(info, "diamond_end").Result, &end))
		if end != 1<<16 {
			t.Errorf("diamond_end = %d, want 2^16 = 65536", end)
		}
		for step := range diamondCallables {
			raw, ok := seen.Load(step)
			if !ok {
				t.Fatalf("step %s never ran", step)
			}
			var c map[string]any
			must(t, json.Unmarshal(raw.(json.RawMessage), &c))
			if c["debug_mode"] != true || c["operation"] == nil {
				t.Errorf("step %s got configuration %s, want its initialization merged with the development override (debug_mode)", step, raw)
			}
		}
		// The input schema is the task context's schema.
		_, err = eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: "rust_e2e_diamond", Name: "diamond_pattern",
			Context: map[string]any{"even_number": 1000}})
		if !errors.Is(err, taskertype.ErrInvalid) {
			t.Errorf("a context outside input_schema: err = %v, want ErrInvalid", err)
		}
	})
}

// TestTheHandlerInputCarriesConfigAndMethod checks, on each backend, that
// a step's configuration and method reach its handler from a template the
// engine read back from the database (the task is created from the stored
// canonical document), and that initialization.timeout_ms sets the
// step's timeout.
func TestTheHandlerInputCarriesConfigAndMethod(t *testing.T) {
	const src = `name: methods
namespace_name: test
version: 1.0.0
steps:
  - name: validate
    handler: {callable: multi, method: validate, initialization: {limit: 3, timeout_ms: 1500}}
  - name: plain
    handler: {callable: multi}
    dependencies: [validate]
`
	onBackends(t, func(t *testing.T, backend string) {
		tpl, err := template.Parse("methods.yaml", []byte(src))
		must(t, err)
		cfg := database(t, backend)
		cfg.Templates = []*template.Template{tpl}
		eng, err := tasker.Open(t.Context(), cfg)
		must(t, err)
		type got struct {
			method string
			config string
		}
		var mu sync.Mutex
		calls := map[string]got{}
		must(t, eng.RegisterHandler("multi", taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			calls[in.StepName] = got{in.Method, string(in.Config)}
			return map[string]string{"method": in.Method}, nil
		})))
		must(t, eng.Start(t.Context()))
		stopAtCleanup(t, eng)
		h := &harness{t: t, eng: eng}
		info := h.run("methods", map[string]any{})
		if info.Task.State != taskertype.TaskComplete {
			t.Fatalf("task is %s, want complete", info.Task.State)
		}
		mu.Lock()
		defer mu.Unlock()
		if g := calls["validate"]; g.method != "validate" || g.config != `{"limit":3,"timeout_ms":1500}` {
			t.Errorf("validate got method %q config %s", g.method, g.config)
		}
		if g := calls["plain"]; g.method != "" || g.config != "" {
			t.Errorf("plain got method %q config %q, want none", g.method, g.config)
		}
		if d := h.step(info, "validate").Timeout; d != 1500*time.Millisecond {
			t.Errorf("validate's timeout = %v, want 1.5s from initialization.timeout_ms", d)
		}
	})
}
