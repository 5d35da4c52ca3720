package template

import (
	"errors"
	"fmt"
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
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		timer := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("SLOW input %q", data)) })
		defer timer.Stop()
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
