package template

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tasker-go/tasker/taskertype"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, a failure
// must be a *ValidationError with problems, and a success must be a valid
// acyclic template that a Registry accepts.
//
// The seeds are small on purpose: the fuzzer minimizes every input that
// finds new coverage, which costs about len(input)² executions, so seeds the
// size of the commented example files (1–2 KB) kept both workers minimizing
// for the whole run. Each execution parses once and validates once (in
// Registry.Add): compiling the context schema is most of the cost of a
// successful parse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"",
		header + steps("a:h:b", "b:h:a"),
		header + "defaults:\n  retry: {max_attempts: 5, base: 2s, cap: 1m, jitter: 0.2, backoff: linear}\n  timeout: 1m\n" + steps("a:h", "b:h:a"),
		header + "context_schema: {type: object, properties: {v: {$ref: '#/$defs/x'}}, $defs: {x: {type: integer}}}\n" + steps("a:h"),
		header + "steps:\n  - &s {name: a, handler: h}\n  - *s\n",
		"a: &a [*a]\n",
		// The shapes of the examples, without their comments.
		header + "context_schema: {type: object, required: [value], properties: {value: {type: integer, maximum: 9}}}\n" +
			steps("start:demo.add", "left:demo.add:start", "right:demo.square:start", "join:demo.multiply:left, right"),
		header + "description: >-\n  x\n  y\nsteps:\n  - {name: a, handler: h, retry: {max_attempts: 3, backoff: exponential}, timeout: 5s}\n  - {name: b, handler: h, depends_on: [a], retry: {backoff: fibonacci}}\n",
		// tasker-core's dialect, small.
		coreHeader + "steps:\n  - {name: a, handler: {callable: 'A::B', method: m, initialization: {timeout_ms: 5}}, retry: {max_attempts: 0, backoff_base_ms: 100}}\n" +
			"  - {name: b, step_type: decision, handler: {callable: h}, dependencies: [a]}\n  - {name: c, handler: {callable: h}, depends_on: [b]}\n" +
			"environments: {test: {steps: [{name: ALL, timeout_seconds: 3, retry: {max_attempts: 2}, handler: {initialization: {x: 1}}}]}}\n",
		coreHeader + "lifecycle: {max_duration_minutes: 5, staleness_action: dlq}\nsteps:\n  - {name: p, type: batchable, handler: {callable: h}}\n" +
			"  - {name: w, type: batch_worker, handler: {callable: h}, dependencies: [p], batch_config: {worker_template: w, batch_size: 5}}\n" +
			"  - {name: z, type: deferred_convergence, handler: {callable: h}, dependencies: [w], publishes_events: [{name: a.b, condition: always}]}\n",
	} {
		f.Add([]byte(s))
	}
	// tasker-core's own fixtures (slow to minimize, but the shapes real
	// templates have).
	fixtures, _ := filepath.Glob("testdata/tasker-core/*.yaml")
	for _, name := range fixtures {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		timer := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("SLOW input %q", data)) })
		defer timer.Stop()
		// The test environment and --strict: the other path through
		// environments and warnings; it must hold the same promises.
		if tp, err := (Loader{Environment: "test", Strict: true}).Parse("fuzz.yaml", data); err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 || tp != nil {
				t.Fatalf("strict Parse error %T %v is not a *ValidationError with problems", err, err)
			}
		} else if len(tp.Warnings) != 0 {
			t.Fatalf("strict Parse returned warnings: %v", tp.Warnings)
		}
		tp, err := Parse("fuzz.yaml", data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 || !errors.Is(err, taskertype.ErrInvalid) {
				t.Fatalf("Parse error %T %v is not a *ValidationError with problems", err, err)
			}
			if tp != nil {
				t.Fatal("Parse returned a template and an error")
			}
			_ = err.Error()
			return
		}
		if tp == nil {
			t.Fatal("Parse returned neither a template nor an error")
		}
		checkAcyclic(t, tp)
		// Add validates the template again, schema included.
		if err := NewRegistry().Add(tp); err != nil {
			t.Fatalf("a parsed template is refused by Registry.Add (Validate): %v", err)
		}
		// The stored document reads back, in the tasker dialect, as the
		// same definition.
		doc, err := Marshal(tp)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse("db", doc)
		if err != nil {
			t.Fatalf("Parse(Marshal(t)): %v\n%s", err, doc)
		}
		if again, err := Marshal(back); err != nil || !bytes.Equal(again, doc) {
			t.Fatalf("the canonical document changed on a round trip (%v):\n%s\n%s", err, doc, again)
		}
	})
}

// checkAcyclic checks every dependency exists and a topological order
// covers every step.
func checkAcyclic(t *testing.T, tp *Template) {
	t.Helper()
	if len(tp.Steps) == 0 || len(tp.Steps) > MaxSteps {
		t.Fatalf("%d steps", len(tp.Steps))
	}
	pending := make([]int, len(tp.Steps))
	dependents := make([][]int, len(tp.Steps))
	for i, s := range tp.Steps {
		if tp.StepIndex(s.Name) != i {
			t.Fatalf("step %q: StepIndex = %d, want %d", s.Name, tp.StepIndex(s.Name), i)
		}
		for _, d := range s.DependsOn {
			j := tp.StepIndex(d)
			if j < 0 {
				t.Fatalf("step %q depends on unknown %q", s.Name, d)
			}
			pending[i]++
			dependents[j] = append(dependents[j], i)
		}
	}
	var ready []int
	for i, n := range pending {
		if n == 0 {
			ready = append(ready, i)
		}
	}
	done := 0
	for len(ready) > 0 {
		i := ready[0]
		ready = ready[1:]
		done++
		for _, k := range dependents[i] {
			if pending[k]--; pending[k] == 0 {
				ready = append(ready, k)
			}
		}
	}
	if done != len(tp.Steps) {
		t.Fatalf("the template has a cycle: only %d of %d steps can run", done, len(tp.Steps))
	}
}
