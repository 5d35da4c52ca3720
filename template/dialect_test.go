package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasker-go/tasker/taskertype"
)

// coreHeader is the valid top of a tasker-core template.
const coreHeader = "name: wf\nnamespace_name: demo\nversion: 1.0.0\n"

func TestEveryTaskerCoreFixtureLoadsAndRoundTrips(t *testing.T) {
	files, err := filepath.Glob("testdata/tasker-core/*.yaml")
	if err != nil || len(files) < 27 {
		t.Fatalf("fixtures: %v, %d files", err, len(files))
	}
	for _, env := range []string{"", "test", "development"} {
		ts, err := Loader{Environment: env}.LoadPaths("testdata/tasker-core")
		if err != nil {
			t.Fatalf("environment %q: %v", env, err)
		}
		if len(ts) != len(files) {
			t.Fatalf("environment %q: %d templates from %d files", env, len(ts), len(files))
		}
		for _, tp := range ts {
			if tp.Dialect != DialectTaskerCore {
				t.Errorf("%s: dialect %q", tp.Source, tp.Dialect)
			}
			// The stored document reads back as the same definition.
			doc, err := Marshal(tp)
			if err != nil {
				t.Fatalf("%s: %v", tp.Source, err)
			}
			back, err := Parse("db", doc)
			if err != nil {
				t.Fatalf("%s: Parse(Marshal): %v\n%s", tp.Source, err, doc)
			}
			again, _ := Marshal(back)
			if !bytes.Equal(doc, again) {
				t.Errorf("%s: the canonical document changed on a round trip:\n%s\n%s", tp.Source, doc, again)
			}
			if back.Dialect != DialectTasker || len(back.Warnings) != 0 {
				t.Errorf("%s: the canonical document is read as %s with warnings %v", tp.Source, back.Dialect, back.Warnings)
			}
		}
	}
}

func TestTaskerCoreKeysLoadIntoTheModel(t *testing.T) {
	src := `name: approval
namespace_name: approvals
version: 2.1.0
description: all the keys
metadata: {author: me, tags: [a, b], documentation_url: ~, created_at: "2025-01-02T03:04:05Z"}
system_dependencies: {primary: erp, secondary: [crm]}
domain_events:
  - {name: approval.done, description: finished, schema: {type: object}}
input_schema: {type: object, required: [amount], properties: {amount: {type: number}}}
lifecycle:
  max_duration_minutes: 90
  max_waiting_for_dependencies_minutes: 5
  max_waiting_for_retry_minutes: 6
  max_steps_in_process_minutes: 7
  staleness_action: error
  auto_fail_on_timeout: true
steps:
  - name: fetch
    description: first
    type: batchable
    handler:
      callable: Approvals::Fetch
      method: fetch_all
      resolver: explicit_mapping
      initialization: {page: 50, timeout_ms: 2500}
    system_dependency: erp
    retry: {retryable: true, max_attempts: 0, backoff: fibonacci, backoff_base_ms: 200, max_backoff_ms: 5000}
    timeout_seconds: 60
    result_schema: {type: object}
    publishes_events:
      - {name: fetch.done, description: d, condition: permanent_failure, schema: {type: object}, delivery_mode: broadcast, publisher: my_mod::Pub}
  - name: work
    step_type: batch_worker
    handler: {callable: Approvals::Work}
    depends_on: [fetch]
    batch_config: {batch_size: 10, parallelism: 2, cursor_field: row, worker_template: work, failure_strategy: isolate}
    retry: {retryable: false}
  - name: decide
    type: decision
    handler: {callable: Approvals::Decide}
    dependencies: [fetch]
  - name: manual
    handler: {callable: Approvals::Manual}
    dependencies: [decide]
  - name: finish
    type: deferred_convergence
    handler: {callable: Approvals::Finish}
    dependencies: [work, manual]
`
	tp := mustParse(t, src)
	f := tp.Steps[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"namespace", tp.Namespace, "approvals"},
		{"dialect", tp.Dialect, DialectTaskerCore},
		{"metadata", string(tp.Metadata), `{"author":"me","created_at":"2025-01-02T03:04:05Z","documentation_url":null,"tags":["a","b"]}`},
		{"system_dependencies", *tp.SystemDependencies, SystemDependencies{Primary: "erp", Secondary: []string{"crm"}}},
		{"domain_events", len(tp.DomainEvents) == 1 && tp.DomainEvents[0].Name == "approval.done" && string(tp.DomainEvents[0].Schema) == `{"type":"object"}`, true},
		{"input_schema", string(tp.ContextSchema), `{"properties":{"amount":{"type":"number"}},"required":["amount"],"type":"object"}`},
		{"lifecycle", *tp.Lifecycle, Lifecycle{MaxDurationMinutes: 90, MaxWaitingForDependenciesMinutes: 5, MaxWaitingForRetryMinutes: 6,
			MaxStepsInProcessMinutes: 7, StalenessAction: StalenessError, AutoFailOnTimeout: tp.Lifecycle.AutoFailOnTimeout}},
		{"auto_fail_on_timeout", tp.Lifecycle.AutoFailOnTimeout != nil && *tp.Lifecycle.AutoFailOnTimeout, true},
		{"type", f.Type, StepBatchable},
		{"callable", f.Handler, "Approvals::Fetch"},
		{"method", f.Method, "fetch_all"},
		{"resolver", f.Resolver, "explicit_mapping"},
		{"initialization", string(f.Config), `{"page":50,"timeout_ms":2500}`},
		{"timeout_ms over timeout_seconds", f.Timeout, 2500 * time.Millisecond},
		{"system_dependency", f.SystemDependency, "erp"},
		{"max_attempts 0 is one attempt", f.Retry.MaxAttempts, 1},
		{"backoff", f.Retry.Backoff, taskertype.BackoffFibonacci},
		{"backoff_base_ms", f.Retry.Base, 200 * time.Millisecond},
		{"max_backoff_ms", f.Retry.Cap, 5 * time.Second},
		{"result_schema", string(f.ResultSchema), `{"type":"object"}`},
		{"event", f.PublishesEvents[0], EventDeclaration{Name: "fetch.done", Description: "d", Condition: EventOnPermanentFailure,
			Schema: json.RawMessage(`{"type":"object"}`), DeliveryMode: DeliveryBroadcast, Publisher: "my_mod::Pub"}},
		{"step_type", tp.Steps[1].Type, StepBatchWorker},
		{"depends_on alias", tp.Steps[1].DependsOn, []string{"fetch"}},
		{"batch_config", *tp.Steps[1].Batch, BatchConfig{BatchSize: 10, Parallelism: 2, CursorField: "row", WorkerTemplate: "work", FailureStrategy: FailureIsolate}},
		{"retry defaults of tasker-core", tp.Steps[1].Retry, taskertype.RetryPolicy{Retryable: false, MaxAttempts: 3, Backoff: taskertype.BackoffExponential,
			Base: time.Second, Cap: 30 * time.Second, Jitter: DefaultJitter}},
		{"default timeout", tp.Steps[1].Timeout, DefaultTimeout},
		{"decision", tp.Steps[2].TypeOf(), StepDecision},
		{"a standard step's Type is empty", tp.Steps[3].Type, StepType("")},
		{"deferred_convergence", tp.Steps[4].TypeOf(), StepDeferredConvergence},
		{"no warnings", len(tp.Warnings), 0},
	}
	for _, c := range checks {
		if g, w := toJSON(t, c.got), toJSON(t, c.want); g != w {
			t.Errorf("%s: got %s, want %s", c.name, g, w)
		}
	}
	if err := tp.ValidateContext(json.RawMessage(`{"amount": "x"}`)); !errors.Is(err, taskertype.ErrInvalid) {
		t.Errorf("a context against input_schema: %v, want ErrInvalid", err)
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBatchDefaultsAndEventDefaults(t *testing.T) {
	tp := mustParse(t, coreHeader+`steps:
  - {name: plan, type: batchable, handler: {callable: p}}
  - name: work
    type: batch_worker
    handler: {callable: w}
    dependencies: [plan]
    batch_config: {worker_template: work}
    publishes_events: [{name: a.b}]
`)
	w := tp.Steps[1]
	if *w.Batch != (BatchConfig{BatchSize: 1000, Parallelism: 10, CursorField: "id", WorkerTemplate: "work", FailureStrategy: FailureContinue}) {
		t.Errorf("batch defaults: %+v", *w.Batch)
	}
	if ev := w.PublishesEvents[0]; ev.Condition != EventOnSuccess || ev.DeliveryMode != DeliveryDurable {
		t.Errorf("event defaults: %+v", ev)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	src := coreHeader + `steps:
  - name: a
    handler: {callable: h, initialization: {x: 1, y: 1}}
    retry: {max_attempts: 5, backoff: linear, backoff_base_ms: 500, max_backoff_ms: 2000}
    timeout_seconds: 30
  - name: b
    handler: {callable: h}
    dependencies: [a]
    timeout_seconds: 40
environments:
  test:
    steps:
      - name: ALL
        timeout_seconds: 5
      - name: a
        retry: {max_attempts: 2}
        handler: {initialization: {y: 2, z: 3}}
      - name: nope
        timeout_seconds: 1
  staging:
    steps:
      - name: b
        timeout_seconds: 7
`
	prod := mustParse(t, src)
	if prod.Environment != "" || prod.Steps[0].Timeout != 30*time.Second || prod.Steps[0].Retry.MaxAttempts != 5 {
		t.Errorf("production has no overrides: env %q, %v, %d", prod.Environment, prod.Steps[0].Timeout, prod.Steps[0].Retry.MaxAttempts)
	}
	tp, err := Loader{Environment: "test"}.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a, b := tp.Steps[0], tp.Steps[1]
	if tp.Environment != "test" {
		t.Errorf("Environment = %q", tp.Environment)
	}
	if a.Timeout != 5*time.Second || b.Timeout != 5*time.Second {
		t.Errorf("ALL sets every step's timeout: %v %v", a.Timeout, b.Timeout)
	}
	// The retry override replaces the step's retry whole, tasker-core's
	// defaults filling what it leaves out.
	if want := (taskertype.RetryPolicy{Retryable: true, MaxAttempts: 2, Backoff: taskertype.BackoffExponential,
		Base: time.Second, Cap: 30 * time.Second, Jitter: DefaultJitter}); a.Retry != want {
		t.Errorf("retry override: %+v, want %+v", a.Retry, want)
	}
	if string(a.Config) != `{"x":1,"y":2,"z":3}` {
		t.Errorf("initialization is merged key by key: %s", a.Config)
	}
	if len(tp.Warnings) != 1 || !strings.Contains(tp.Warnings[0].String(), `test.yaml:21: environments.test.steps[2].name: no step is named "nope"`) {
		t.Errorf("warnings: %v", tp.Warnings)
	}
	if _, err := (Loader{Environment: "test", Strict: true}).Parse("test.yaml", []byte(src)); err == nil ||
		!strings.Contains(err.Error(), `no step is named "nope"`) || !strings.Contains(err.Error(), "--strict makes this an error") {
		t.Errorf("strict: %v", err)
	}
	st, err := Loader{Environment: "staging"}.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if st.Steps[1].Timeout != 7*time.Second || st.Steps[0].Timeout != 30*time.Second {
		t.Errorf("staging: %v %v", st.Steps[0].Timeout, st.Steps[1].Timeout)
	}
}

func TestUnknownKeysOfTaskerCoreAreWarnings(t *testing.T) {
	src := coreHeader + `steps:
  - name: a
    handler: {callable: h}
    lifecycle: {max_steps_in_process_minutes: 3}
    retry: {max_attempts: 2, initial_delay: 5, max_delay: 60}
`
	tp := mustParse(t, src)
	want := []string{
		`test.yaml:7: step "a": lifecycle: unknown key "lifecycle" is ignored`,
		`test.yaml:8: step "a": retry.initial_delay: unknown key "initial_delay" is ignored`,
		`test.yaml:8: step "a": retry.max_delay: unknown key "max_delay" is ignored`,
	}
	if len(tp.Warnings) != len(want) {
		t.Fatalf("warnings: %v", tp.Warnings)
	}
	for i, w := range want {
		if !strings.HasPrefix(tp.Warnings[i].String(), w) {
			t.Errorf("warning %d = %q, want %q...", i, tp.Warnings[i], w)
		}
	}
	_, err := Loader{Strict: true}.Parse("test.yaml", []byte(src))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 {
		t.Fatalf("--strict: %v", err)
	}
	// In the tasker dialect an unknown key is an error as before.
	ve = parseFail(t, header+"steps:\n  - name: a\n    handler: h\n    lifecycle: {}\n")
	if _, ok := find(ve, `test.yaml:7: step "a": lifecycle: unknown key "lifecycle"`, "hint: known keys in a step"); !ok {
		t.Errorf("tasker dialect: %v", ve)
	}
}

func TestTaskerCoreProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"depends_on and dependencies on one step", coreHeader + "steps:\n  - {name: a, handler: {callable: h}}\n  - name: b\n    handler: {callable: h}\n    dependencies: [a]\n    depends_on: [a]\n",
			[]string{`test.yaml:9: step "b": depends_on: both dependencies and depends_on`, "keep one of them"}},
		{"type and step_type on one step", coreHeader + "steps:\n  - name: a\n    handler: {callable: h}\n    type: standard\n    step_type: standard\n",
			[]string{`test.yaml:7: step "a": type: both type and step_type`}},
		{"the tasker dialect's base in a tasker-core retry", coreHeader + "steps:\n  - name: a\n    handler: {callable: h}\n    retry: {backoff_base_ms: 100, base: 1s}\n",
			[]string{`test.yaml:7: step "a": retry.base: "base" is a key of the tasker dialect, but this document is a tasker-core template (namespace_name at line 2)`, "write backoff_base_ms: 1000"}},
		{"the tasker dialect's timeout", coreHeader + "steps:\n  - name: a\n    handler: {callable: h}\n    timeout: 5s\n",
			[]string{`step "a": timeout: "timeout" is a key of the tasker dialect`, "timeout_seconds"}},
		{"namespace beside namespace_name", coreHeader + "namespace: demo\nsteps:\n  - {name: a, handler: {callable: h}}\n",
			[]string{`test.yaml:4: namespace: "namespace" is a key of the tasker dialect`}},
		{"a handler name in a tasker-core template", coreHeader + "steps:\n  - {name: a, handler: h}\n",
			[]string{`step "a": handler: handler is a name, the tasker dialect's form`, "write handler: {callable: h}"}},
		{"tasker-core's dependencies in a tasker template", header + "steps:\n  - {name: a, handler: h}\n  - {name: b, handler: h, dependencies: [a]}\n",
			[]string{`step "b": dependencies: "dependencies" is a key of the tasker-core dialect, but this document is in the tasker dialect`, "write depends_on: instead"}},
		{"backoff_base_ms with our base", header + "steps:\n  - name: a\n    handler: h\n    retry: {base: 1s, backoff_base_ms: 100}\n",
			[]string{`step "a": retry.backoff_base_ms: "backoff_base_ms" is a key of the tasker-core dialect`, "write base: 100ms"}},
		{"no callable", coreHeader + "steps:\n  - name: a\n    handler: {method: m}\n",
			[]string{`test.yaml:6: step "a": handler.callable: the handler has no callable`}},
		{"negative max_attempts", coreHeader + "steps:\n  - name: a\n    handler: {callable: h}\n    retry: {max_attempts: -1}\n",
			[]string{`step "a": retry.max_attempts: max_attempts -1 is out of range 0..100`}},
		{"timeout_seconds zero", coreHeader + "steps:\n  - name: a\n    handler: {callable: h}\n    timeout_seconds: 0\n",
			[]string{`test.yaml:7: step "a": timeout_seconds: timeout_seconds 0s is out of range`}},
		{"max_backoff_ms below backoff_base_ms", coreHeader + "steps:\n  - name: a\n    handler: {callable: h}\n    retry: {backoff_base_ms: 5000, max_backoff_ms: 1000}\n",
			[]string{`step "a": retry.max_backoff_ms: max_backoff_ms 1s is below backoff_base_ms 5s`}},
		{"an unknown step type", coreHeader + "steps:\n  - {name: a, handler: {callable: h}, type: decisoin}\n",
			[]string{`step "a": type: unknown type "decisoin"`, `did you mean "decision"?`}},
		{"an unknown dependency", coreHeader + "steps:\n  - name: a\n    handler: {callable: h}\n    dependencies:\n      - zz\n",
			[]string{`test.yaml:8: step "a": depends_on: unknown step "zz"`}},
		{"a cycle", coreHeader + "steps:\n  - {name: a, handler: {callable: h}, dependencies: [b]}\n  - {name: b, handler: {callable: h}, dependencies: [a]}\n",
			[]string{`step "a": depends_on: cycle: a -> b -> a`}},
		{"a batch_worker no batch_config names", coreHeader + "steps:\n  - {name: p, type: batchable, handler: {callable: h}}\n  - {name: w, type: batch_worker, handler: {callable: h}, dependencies: [p]}\n",
			[]string{`test.yaml:6: step "w": type: no batch_config names batch_worker step "w" as its worker_template`}},
		{"a batch_worker after no batchable step", coreHeader + "steps:\n  - {name: p, handler: {callable: h}}\n  - {name: w, type: batch_worker, handler: {callable: h}, dependencies: [p], batch_config: {worker_template: w}}\n",
			[]string{`step "w": type: a batch_worker step does not depend on a batchable step`}},
		{"a worker_template that is not a batch_worker", coreHeader + "steps:\n  - {name: p, type: batchable, handler: {callable: h}, batch_config: {worker_template: p}}\n",
			[]string{`step "p": batch_config.worker_template: worker_template "p" is a batchable step, not a batch_worker`}},
		{"a worker_template that is no step", coreHeader + "steps:\n  - {name: p, type: batchable, handler: {callable: h}, batch_config: {worker_template: nope}}\n",
			[]string{`step "p": batch_config.worker_template: worker_template "nope" is not a step of this template`}},
		{"batch_config on a standard step", coreHeader + "steps:\n  - {name: p, handler: {callable: h}, batch_config: {worker_template: p}}\n",
			[]string{`step "p": batch_config: batch_config on a standard step`}},
		{"batch_config out of range", coreHeader + "steps:\n  - {name: p, type: batchable, handler: {callable: h}, batch_config: {worker_template: w, batch_size: 0, parallelism: 5000, failure_strategy: halt}}\n",
			[]string{`batch_config.batch_size: batch_size 0 is out of range 1..100000`, `batch_config.parallelism: parallelism 5000 is out of range 1..1000`,
				`batch_config.failure_strategy: unknown failure strategy "halt"`}},
		{"a standard step after a batch_worker", coreHeader + "steps:\n  - {name: p, type: batchable, handler: {callable: h}}\n  - {name: w, type: batch_worker, handler: {callable: h}, dependencies: [p], batch_config: {worker_template: w}}\n  - {name: s, handler: {callable: h}, dependencies: [w]}\n",
			[]string{`step "s": depends_on: depends on batch_worker step "w", which never runs itself`, "make this step deferred_convergence"}},
		{"a deferred_convergence step after steps created with the task", coreHeader + "steps:\n  - {name: a, handler: {callable: h}}\n  - {name: c, type: deferred_convergence, handler: {callable: h}, dependencies: [a]}\n",
			[]string{`step "c": type: a deferred_convergence step waits for steps a decision or a batchable step creates, but none of its dependencies is one`}},
		{"a decision with nothing to create", coreHeader + "steps:\n  - {name: a, handler: {callable: h}}\n  - {name: d, type: decision, handler: {callable: h}, dependencies: [a]}\n",
			[]string{`step "d": type: the decision has no steps to create`}},
		{"a decision without dependencies", coreHeader + "steps:\n  - {name: d, type: decision, handler: {callable: h}}\n  - {name: b, handler: {callable: h}, dependencies: [d]}\n",
			[]string{`step "d": type: a decision step must depend on at least one step`}},
		{"a bad event", coreHeader + "steps:\n  - name: a\n    handler: {callable: h}\n    publishes_events:\n      - {name: Order, condition: sometimes, delivery_mode: slow, publisher: 'a b'}\n",
			[]string{`publishes_events[0].name: invalid event name "Order"`, `publishes_events[0].condition: unknown condition "sometimes"`,
				`publishes_events[0].delivery_mode: unknown delivery mode "slow"`, `publishes_events[0].publisher: invalid publisher name "a b"`}},
		{"an event declared twice", coreHeader + "steps:\n  - name: a\n    handler: {callable: h}\n    publishes_events: [{name: a.b}, {name: a.b}]\n",
			[]string{`event "a.b" is declared twice`}},
		{"a bad event schema", coreHeader + "steps:\n  - name: a\n    handler: {callable: h}\n    publishes_events: [{name: a.b, schema: {type: 12}}]\n",
			[]string{`step "a": publishes_events[0].schema: the schema is not valid`}},
		{"a bad lifecycle", coreHeader + "lifecycle: {max_duration_minutes: 0, max_waiting_for_retry_minutes: 20000, staleness_action: panic}\nsteps:\n  - {name: a, handler: {callable: h}}\n",
			[]string{`lifecycle.max_duration_minutes: max_duration_minutes 0 is out of range 1..43200`,
				`lifecycle.max_waiting_for_retry_minutes: max_waiting_for_retry_minutes 20000 is out of range 1..10080`,
				`lifecycle.staleness_action: unknown staleness action "panic"`}},
		{"a bad metadata timestamp", coreHeader + "metadata: {created_at: yesterday}\nsteps:\n  - {name: a, handler: {callable: h}}\n",
			[]string{`test.yaml:4: metadata.created_at: "yesterday" is not a timestamp`}},
		{"a bad input_schema", coreHeader + "input_schema: {type: nope}\nsteps:\n  - {name: a, handler: {callable: h}}\n",
			[]string{`input_schema: the schema is not valid`}},
		{"initialization that is not a mapping", coreHeader + "steps:\n  - name: a\n    handler: {callable: h, initialization: [1]}\n",
			[]string{`step "a": handler.initialization: got a list, want a mapping`}},
		{"a bad override in another environment", coreHeader + "steps:\n  - {name: a, handler: {callable: h}}\nenvironments:\n  test:\n    steps:\n      - {name: a, retry: {max_attempts: x}}\n",
			[]string{`test.yaml:9: environments.test.steps[0].retry.max_attempts: "x" is not a whole number`}},
		{"an override without a name", coreHeader + "steps:\n  - {name: a, handler: {callable: h}}\nenvironments:\n  production:\n    steps:\n      - {timeout_seconds: 3}\n",
			[]string{`environments.production.steps[0].name: the override names no step`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ve := parseFail(t, tc.src)
			for _, w := range tc.want {
				if _, ok := find(ve, w); !ok {
					t.Errorf("no problem contains %q; got:\n%v", w, ve)
				}
			}
		})
	}
}

func TestMaxAttemptsBoundary(t *testing.T) {
	for _, c := range []struct {
		written, want int
	}{{0, 1}, {1, 1}, {3, 3}, {100, 100}} {
		tp := mustParse(t, coreHeader+"steps:\n  - name: a\n    handler: {callable: h}\n    retry: {max_attempts: "+strconv.Itoa(c.written)+"}\n")
		if got := tp.Steps[0].Retry.MaxAttempts; got != c.want {
			t.Errorf("max_attempts: %d: MaxAttempts = %d, want %d", c.written, got, c.want)
		}
	}
	// The boundary fixture: the first attempt runs, none after it.
	tp, err := LoadFile("testdata/tasker-core/boundary_max_attempts_zero.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r := tp.Steps[0].Retry; r.MaxAttempts != 1 || r.Base != 100*time.Millisecond {
		t.Errorf("boundary_max_attempts_zero: %+v", r)
	}
}

func TestTheTaskerDialectTakesTheNewKeys(t *testing.T) {
	tp := mustParse(t, header+`lifecycle: {staleness_action: none}
steps:
  - {name: a, handler: h, method: run, resolver: r, config: {k: v}}
  - {name: d, type: decision, handler: h, depends_on: [a]}
  - {name: b, handler: h, depends_on: [d], system_dependency: s, result_schema: {type: object}}
`)
	if a := tp.Steps[0]; a.Method != "run" || a.Resolver != "r" || string(a.Config) != `{"k":"v"}` {
		t.Errorf("step a: %+v", a)
	}
	if tp.Steps[1].Type != StepDecision || tp.Lifecycle.StalenessAction != StalenessNone || tp.Dialect != DialectTasker {
		t.Errorf("type %q, lifecycle %+v, dialect %q", tp.Steps[1].Type, tp.Lifecycle, tp.Dialect)
	}
	ve := parseFail(t, header+"steps:\n  - {name: a, handler: h, batch_config: {worker_template: a, extra: 1}}\n")
	if _, ok := find(ve, `step "a": batch_config.extra: unknown key "extra"`); !ok {
		t.Errorf("an unknown key inside batch_config of a tasker document is an error: %v", ve)
	}
}

func TestMermaid(t *testing.T) {
	tp, err := LoadFile("testdata/tasker-core/batch_processing_example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := `graph TD
    analyze_dataset[/"analyze_dataset<br/><i>batchable</i>"/]
    process_batch[["process_batch<br/><i>batch_worker</i>"]]
    aggregate_results(["aggregate_results<br/><i>deferred_convergence</i>"])
    analyze_dataset -. creates workers .-> process_batch
    process_batch -.-> aggregate_results
`
	if got := tp.Mermaid(); got != want {
		t.Errorf("Mermaid:\n%s\nwant\n%s", got, want)
	}
	d := mustParse(t, header+steps("a:h", "b:h:a"))
	if got := d.Mermaid(); got != "graph TD\n    a[\"a\"]\n    b[\"b\"]\n    a --> b\n" {
		t.Errorf("Mermaid of a plain template:\n%s", got)
	}
}

func TestDigestsOfTemplatesWithoutTheNewKeysDoNotChange(t *testing.T) {
	// The canonical document of a template without the new keys is the
	// one earlier versions stored: their digests must not change, or a
	// re-registered template would conflict with itself.
	tp := mustParse(t, header+steps("a:h", "b:h:a"))
	doc, err := Marshal(tp)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"name":"wf","namespace":"demo","version":"1.0.0","steps":[` +
		`{"name":"a","handler":"h","retry":{"retryable":true,"max_attempts":3,"backoff":"exponential","base":"1s","cap":"5m0s","jitter":0.1},"timeout":"30s"},` +
		`{"name":"b","handler":"h","depends_on":["a"],"retry":{"retryable":true,"max_attempts":3,"backoff":"exponential","base":"1s","cap":"5m0s","jitter":0.1},"timeout":"30s"}]}`
	if string(doc) != want {
		t.Errorf("canonical document:\n%s\nwant\n%s", doc, want)
	}
}

func TestValidateChecksTheNewFieldsOfAHandBuiltTemplate(t *testing.T) {
	tp := mustParse(t, header+steps("a:h", "b:h:a"))
	c := *tp
	c.Steps = append([]Step(nil), tp.Steps...)
	c.Steps[1].Type = StepBatchWorker
	c.Steps[0].Config = json.RawMessage(`[1]`)
	err := c.Validate()
	for _, w := range []string{"the configuration is not a JSON object", `no batch_config names batch_worker step "b"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate: %v; want %q", err, w)
		}
	}
}

func TestTheFixturesAreTheSharedOnes(t *testing.T) {
	// The copies under testdata keep the test independent of ../shared;
	// when the shared material is there, they must not have drifted.
	dir := "../../shared/compat/tasker-core/templates"
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Skip("the shared compatibility material is not here")
	}
	for _, f := range files {
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join("testdata/tasker-core", filepath.Base(f)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: the copy under testdata differs or is missing (%v)", filepath.Base(f), err)
		}
	}
}
