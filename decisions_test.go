package tasker_test

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// stepNames returns the names of a task's steps, in the order listed.
func stepNames(info *tasker.TaskInfo) []string {
	var names []string
	for _, s := range info.Steps {
		names = append(names, s.Name)
	}
	return names
}

// resultKeys returns the sorted names of the results a handler received.
func resultKeys(in *taskertype.StepInput) []string {
	return slices.Sorted(maps.Keys(in.Results))
}

// TestConditionalApprovalOfTaskerCore runs tasker-core's own
// conditional-approval fixture with Go handlers under its callables: each
// branch, both together, and none. Only the chosen steps exist, and the
// convergence step sees exactly the branches created.
func TestConditionalApprovalOfTaskerCore(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		tpl, err := template.LoadFile("template/testdata/tasker-core/conditional_approval_rust.yaml")
		must(t, err)
		cfg := database(t, backend)
		cfg.Templates = []*template.Template{tpl}
		eng, err := tasker.Open(t.Context(), cfg)
		must(t, err)
		const prefix = "tasker_example_rs::step_handlers::conditional_approval_rust::"
		var mu sync.Mutex
		finalSaw := map[float64][]string{}
		ok := func(_ context.Context, in *taskertype.StepInput) (any, error) {
			return map[string]any{"approved": true}, nil
		}
		for _, name := range []string{"ValidateRequestHandler", "AutoApproveHandler", "ManagerApprovalHandler", "FinanceReviewHandler"} {
			must(t, eng.RegisterHandler(prefix+name, taskertype.HandlerFunc(ok)))
		}
		amount := func(in *taskertype.StepInput) float64 {
			var c struct{ Amount float64 }
			_ = in.DecodeContext(&c)
			return c.Amount
		}
		must(t, eng.RegisterHandler(prefix+"RoutingDecisionHandler", taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
			// As tasker-core's handler, but with a no-branch case: a
			// zero amount needs no approval.
			a := amount(in)
			var o taskertype.DecisionPointOutcome
			switch {
			case a == 0:
				o = taskertype.NoBranches()
			case a < 1000:
				o = taskertype.CreateSteps("auto_approve")
			case a < 5000:
				o = taskertype.CreateSteps("manager_approval")
			default:
				o = taskertype.CreateSteps("manager_approval", "finance_review")
			}
			return taskertype.DecisionResult(o, map[string]any{"amount": a}), nil
		})))
		must(t, eng.RegisterHandler(prefix+"FinalizeApprovalHandler", taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
			mu.Lock()
			finalSaw[amount(in)] = resultKeys(in)
			mu.Unlock()
			return map[string]any{"final": true}, nil
		})))
		must(t, eng.Start(t.Context()))
		stopAtCleanup(t, eng)
		h := &harness{t: t, eng: eng}

		for _, tc := range []struct {
			amount float64
			steps  []string
			final  []string // the dependencies the convergence step saw; nil: it does not exist
		}{
			{500, []string{"validate_request", "routing_decision", "finalize_approval", "auto_approve"}, []string{"auto_approve"}},
			{2500, []string{"validate_request", "routing_decision", "finalize_approval", "manager_approval"}, []string{"manager_approval"}},
			{10000, []string{"validate_request", "routing_decision", "finalize_approval", "manager_approval", "finance_review"},
				[]string{"finance_review", "manager_approval"}},
			{0, []string{"validate_request", "routing_decision"}, nil},
		} {
			task, err := eng.CreateTask(t.Context(), tasker.CreateTaskParams{Namespace: tpl.Namespace, Name: tpl.Name,
				Context: map[string]any{"amount": tc.amount, "requester": "r", "purpose": "p"}})
			must(t, err)
			// Created with the steps not downstream of the decision only.
			info, err := eng.Task(t.Context(), task.ID)
			must(t, err)
			if len(info.Steps) > 2 && info.Task.State == taskertype.TaskPending {
				t.Errorf("amount %v: created with %v, want validate_request and routing_decision only", tc.amount, stepNames(info))
			}
			info = h.wait(task)
			if info.Task.State != taskertype.TaskComplete {
				t.Fatalf("amount %v: task is %s, want complete", tc.amount, info.Task.State)
			}
			if got := stepNames(info); !slices.Equal(got, tc.steps) {
				t.Errorf("amount %v: steps %v, want %v (tasker-core's list)", tc.amount, got, tc.steps)
			}
			mu.Lock()
			saw, ran := finalSaw[tc.amount]
			mu.Unlock()
			if tc.final == nil && ran {
				t.Errorf("amount %v: the convergence step ran with %v; no branch was created, so it should not exist", tc.amount, saw)
			}
			if tc.final != nil && !slices.Equal(saw, tc.final) {
				t.Errorf("amount %v: the convergence step saw the results of %v, want %v", tc.amount, saw, tc.final)
			}
			for _, s := range info.Steps {
				if evs := h.stepEvents(info, s.Name); len(evs) == 0 || evs[0] != "create" {
					t.Errorf("amount %v: step %s's log starts with %v, want a create record", tc.amount, s.Name, evs)
				}
			}
		}
	})
}

// nestedTemplate: route chooses a or b; inner, after a, chooses a1 and/or
// a2; finish converges over all four, whichever exist. Both decisions
// follow the context's "route" and "inner" lists.
const nestedTemplate = `name: nested
namespace: test
version: 1.0.0
steps:
  - name: start
    handler: ok
  - name: route
    type: decision
    handler: choose
    depends_on: [start]
    config: {key: route}
  - name: a
    handler: ok
    depends_on: [route]
  - name: b
    handler: ok
    depends_on: [route]
  - name: inner
    type: decision
    handler: choose
    depends_on: [a]
    config: {key: inner}
  - name: a1
    handler: ok
    depends_on: [inner]
  - name: a2
    handler: slow_ok
    depends_on: [inner]
  - name: finish
    type: deferred_convergence
    handler: finish
    depends_on: [a, b, a1, a2]
`

func TestNestedDecisionsAndConvergence(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		var mu sync.Mutex
		finishSaw := map[string][]string{}
		choose := taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
			var cfg struct{ Key string }
			must(t, in.DecodeConfig(&cfg))
			var c map[string]json.RawMessage
			if err := in.DecodeContext(&c); err != nil {
				return nil, err
			}
			var names []string
			if err := json.Unmarshal(c[cfg.Key], &names); err != nil {
				return nil, taskertype.Permanent(err)
			}
			if len(names) > 0 {
				return taskertype.DecisionResult(taskertype.CreateSteps(names...), nil), nil
			}
			return taskertype.DecisionResult(taskertype.NoBranches(), nil), nil
		})
		ok := taskertype.HandlerFunc(func(context.Context, *taskertype.StepInput) (any, error) { return "ok", nil })
		h := newHarnessOn(t, backend, nestedTemplate, map[string]tasker.Handler{
			"choose": choose, "ok": ok, "slow_ok": ok,
			"finish": taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
				var c struct{ Case string }
				_ = in.DecodeContext(&c)
				mu.Lock()
				finishSaw[c.Case] = resultKeys(in)
				mu.Unlock()
				return "done", nil
			}),
		})
		for _, tc := range []struct {
			name         string
			route, inner []string
			steps        []string
			finish       []string
		}{
			{"the outer decision chooses b", []string{"b"}, nil, []string{"start", "route", "b", "finish"}, []string{"b"}},
			{"the inner decision chooses a1 and a2", []string{"a"}, []string{"a1", "a2"},
				[]string{"start", "route", "a", "inner", "a1", "a2", "finish"}, []string{"a", "a1", "a2"}},
			{"the inner decision chooses a2", []string{"a"}, []string{"a2"},
				[]string{"start", "route", "a", "inner", "a2", "finish"}, []string{"a", "a2"}},
			{"the inner decision chooses nothing", []string{"a"}, nil, []string{"start", "route", "a", "inner", "finish"}, []string{"a"}},
			{"both branches of the outer decision", []string{"a", "b"}, []string{"a1"},
				[]string{"start", "route", "a", "b", "inner", "a1", "finish"}, []string{"a", "a1", "b"}},
			{"the outer decision chooses nothing", nil, nil, []string{"start", "route"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h.t = t
				info := h.run("nested", map[string]any{"case": tc.name, "route": tc.route, "inner": tc.inner})
				if info.Task.State != taskertype.TaskComplete {
					t.Fatalf("task is %s, want complete", info.Task.State)
				}
				if got := stepNames(info); !slices.Equal(got, tc.steps) {
					t.Errorf("steps %v, want %v", got, tc.steps)
				}
				mu.Lock()
				saw, ran := finishSaw[tc.name]
				mu.Unlock()
				switch {
				case tc.finish == nil && ran:
					t.Errorf("finish ran (saw %v) though no branch it waits for was created", saw)
				case tc.finish != nil && !slices.Equal(saw, tc.finish):
					// finish must not run before the inner decision said
					// which of a1, a2 exist, nor miss one it created.
					t.Errorf("finish saw the results of %v, want %v", saw, tc.finish)
				}
			})
		}
	})
}

// TestDecisionOutcomesThatCannotApplyFailTheStep: a decision that names a
// step not declared downstream of it, returns no outcome, or passes the
// limit of created steps fails for good, with a message naming the step;
// nothing is created.
func TestDecisionOutcomesThatCannotApplyFailTheStep(t *testing.T) {
	onBackends(t, func(t *testing.T, backend string) {
		decide := taskertype.HandlerFunc(func(_ context.Context, in *taskertype.StepInput) (any, error) {
			var c struct {
				Raw json.RawMessage
			}
			if err := in.DecodeContext(&c); err != nil {
				return nil, err
			}
			return c.Raw, nil
		})
		ok := taskertype.HandlerFunc(func(context.Context, *taskertype.StepInput) (any, error) { return "ok", nil })
		var tpls []*template.Template
		tpl, err := template.Parse("nested.yaml", []byte(nestedTemplate))
		must(t, err)
		tpls = append(tpls, tpl)
		cfg := database(t, backend)
		cfg.Templates = tpls
		cfg.MaxCreatedSteps = 2
		eng, err := tasker.Open(t.Context(), cfg)
		must(t, err)
		for name, hd := range map[string]tasker.Handler{"choose": decide, "ok": ok, "slow_ok": ok, "finish": ok} {
			must(t, eng.RegisterHandler(name, hd))
		}
		must(t, eng.Start(t.Context()))
		stopAtCleanup(t, eng)
		h := &harness{t: t, eng: eng}
		for _, tc := range []struct {
			raw  string
			want []string
		}{
			{`{"decision_point_outcome": {"type": "create_steps", "step_names": ["start"]}}`,
				[]string{`decision "route" chose step "start"`, "not declare downstream", "it may create: a, b, inner"}},
			{`{"decision_point_outcome": {"type": "create_steps", "step_names": ["a1"]}}`,
				[]string{`chose step "a1"`, "not declare downstream"}},
			{`{"decision_point_outcome": {"type": "create_steps", "step_names": ["nope"]}}`,
				[]string{`chose step "nope"`, "not a step of template"}},
			{`{"route": "a"}`, []string{`decision "route"`, `no "decision_point_outcome"`}},
			{`{"decision_point_outcome": {"type": "maybe"}}`, []string{`type "maybe"`}},
			// a and b, and inner after a: 3 created, over the limit of 2.
			{`{"decision_point_outcome": {"type": "create_steps", "step_names": ["a", "b"]}}`,
				[]string{"to 3", "limit of 2", "MaxCreatedSteps"}},
		} {
			info := h.run("nested", map[string]any{"raw": json.RawMessage(tc.raw)})
			if info.Task.State != taskertype.TaskError {
				t.Errorf("%s: task is %s, want error", tc.raw, info.Task.State)
			}
			if got := stepNames(info); !slices.Equal(got, []string{"start", "route"}) {
				t.Errorf("%s: steps %v, want start and route only", tc.raw, got)
			}
			route := h.step(info, "route")
			if route.State != taskertype.StepError || route.Failure == nil || route.Failure.Retryable {
				t.Fatalf("%s: route is %s with failure %+v, want error, not retryable", tc.raw, route.State, route.Failure)
			}
			for _, w := range tc.want {
				if !strings.Contains(route.Failure.Message, w) {
					t.Errorf("%s: failure %q does not say %q", tc.raw, route.Failure.Message, w)
				}
			}
			if evs := h.stepEvents(info, "route"); evs[len(evs)-1] != string(taskertype.StepEventRefuseOutcome) {
				t.Errorf("%s: route's events %v, want the last to be refuse_outcome", tc.raw, evs)
			}
		}
	})
}
