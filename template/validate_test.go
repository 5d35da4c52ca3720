package template

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/taskertype"
)

func TestParseReportsProblems(t *testing.T) {
	manySteps := func(n int) string {
		specs := make([]string, n)
		for i := range specs {
			specs[i] = fmt.Sprintf("s%d:h", i)
		}
		return header + steps(specs...)
	}
	tests := []struct {
		name string
		src  string
		// want: each entry is a set of substrings one problem's String must
		// all contain.
		want [][]string
		// line, when set, is the line of the first wanted problem; -1: any
		// line but 0.
		line int
	}{
		{
			name: "malformed YAML is reported with the line the YAML library gives",
			src:  header + "steps:\n  - name: a\n    handler: [h\n",
			want: [][]string{{"malformed YAML", "hint:"}},
			line: -1,
		},
		{
			name: "a tab in the indentation is malformed YAML",
			src:  header + "steps:\n\t- name: a\n",
			want: [][]string{{"malformed YAML"}},
		},
		{
			name: "an empty file is an empty document",
			src:  "",
			want: [][]string{{"the document is empty", "hint: a template needs"}},
		},
		{
			name: "a file of comments only is an empty document",
			src:  "# nothing here\n",
			want: [][]string{{"the document is empty"}},
		},
		{
			name: "a null document is an empty document",
			src:  "---\n~\n",
			want: [][]string{{"the document is empty"}},
		},
		{
			name: "a document that is a list is not a template",
			src:  "- name: a\n",
			want: [][]string{{"the document is a list, not a mapping"}},
		},
		{
			name: "a second YAML document is refused",
			src:  header + steps("a:h") + "---\nname: other\n",
			want: [][]string{{"more than one YAML document"}},
			line: 7,
		},
		{
			name: "missing name, namespace and version are each reported",
			src:  steps("a:h"),
			want: [][]string{
				{"name: missing name", "hint: add name:"},
				{"namespace: missing namespace", "worker_<namespace>"},
				{"version: missing version", "hint: add version: 1.0.0"},
			},
		},
		{
			name: "an invalid template name says why and what is allowed",
			src:  "name: Linear\nnamespace: demo\nversion: 1.0.0\n" + steps("a:h"),
			want: [][]string{{`name: invalid name "Linear"`, "not a lowercase letter", "hint: use lowercase letters"}},
			line: 1,
		},
		{
			name: "an invalid namespace names the bad character",
			src:  "name: wf\nnamespace: my-ns\nversion: 1.0.0\n" + steps("a:h"),
			want: [][]string{{`namespace: invalid namespace "my-ns"`, `contains '-'`}},
			line: 2,
		},
		{
			name: "a namespace whose step queue would be another's domain-event queue is refused",
			src:  "name: wf\nnamespace: x_domain_events\nversion: 1.0.0\n" + steps("a:h"),
			want: [][]string{{`namespace: invalid namespace "x_domain_events": it ends with "_domain_events"`, "worker_x_domain_events", "namespace worker_x"}},
			line: 2,
		},
		{
			name: "a too long name is reported with its length",
			src:  "name: " + strings.Repeat("a", 64) + "\nnamespace: demo\nversion: 1.0.0\n" + steps("a:h"),
			want: [][]string{{"64 characters, more than 63"}},
		},
		{
			name: "a version YAML reads as a number gets the quoting hint",
			src:  "name: wf\nnamespace: demo\nversion: 1.0\n" + steps("a:h"),
			want: [][]string{{`invalid version "1.0"`, "MAJOR.MINOR.PATCH", "quote it"}},
			line: 3,
		},
		{
			name: "a version with a v prefix is invalid",
			src:  "name: wf\nnamespace: demo\nversion: v1.0.0\n" + steps("a:h"),
			want: [][]string{{`invalid version "v1.0.0"`}},
		},
		{
			name: "a version with leading zeros is invalid",
			src:  "name: wf\nnamespace: demo\nversion: 01.0.0\n" + steps("a:h"),
			want: [][]string{{`invalid version "01.0.0"`}},
		},
		{
			name: "a version with build metadata is refused",
			src:  "name: wf\nnamespace: demo\nversion: 1.0.0+build.5\n" + steps("a:h"),
			want: [][]string{{"build metadata", "hint: drop the +... part"}},
		},
		{
			name: "a template without steps is refused",
			src:  header,
			want: [][]string{{"steps: the template has no steps", "hint: add a list of steps"}},
		},
		{
			name: "an empty step list is refused",
			src:  header + "steps: []\n",
			want: [][]string{{"the template has no steps"}},
			line: 4,
		},
		{
			name: "more than MaxSteps steps are refused",
			src:  manySteps(MaxSteps + 1),
			want: [][]string{{"1001 steps, more than the limit of 1000", "hint: split"}},
		},
		{
			name: "duplicate step names name both positions",
			src:  header + steps("a:h", "b:h", "a:h"),
			want: [][]string{{`step "a": name: duplicate step name "a": steps #1 (line 5) and #3 (line 9)`, "hint: give every step its own name"}},
			line: 9,
		},
		{
			name: "an invalid step name is reported under the step's position",
			src:  header + steps("Step1:h"),
			want: [][]string{{`step "#1": name: invalid step name "Step1"`, "hint: use lowercase"}},
		},
		{
			name: "a step without a name is reported",
			src:  header + "steps:\n  - handler: h\n",
			want: [][]string{{`step "#1": name: missing step name`}},
		},
		{
			name: "a step without a handler is reported",
			src:  header + steps("a"),
			want: [][]string{{`step "a": handler: missing handler`, "hint: name the function"}},
		},
		{
			name: "an invalid handler name is reported",
			src:  header + steps("a:9lives"),
			want: [][]string{{`step "a": handler: invalid handler name "9lives"`, "hint: start with a letter"}},
		},
		{
			name: "an unknown dependency lists the known steps and suggests the closest",
			src:  header + steps("fetch:h", "parse:h:fetchh", "store:h:parse"),
			want: [][]string{{`step "parse": depends_on: unknown step "fetchh" (known steps: fetch, parse, store)`, `hint: did you mean "fetch"?`}},
			line: 9,
		},
		{
			name: "an unknown dependency far from every name suggests adding it",
			src:  header + steps("a:h:zz"),
			want: [][]string{{`unknown step "zz" (known steps: a)`, `hint: fix the name, or add a step named "zz"`}},
		},
		{
			name: "a step depending on itself is reported",
			src:  header + steps("a:h", "b:h:a, b"),
			want: [][]string{{`step "b": depends_on: step "b" depends on itself`, "hint: remove it"}},
		},
		{
			name: "a dependency listed twice is reported",
			src:  header + steps("a:h", "b:h:a, a"),
			want: [][]string{{`step "b": depends_on: "a" is listed twice`, "hint: list each dependency once"}},
		},
		{
			name: "a cycle is reported with its steps in order",
			src:  header + steps("a:h:c", "b:h:a", "c:h:b", "d:h:c"),
			want: [][]string{{`step "a": depends_on: cycle: a -> c -> b -> a`, "hint: each step depends on the next"}},
			line: 7,
		},
		{
			name: "a two-step cycle is reported",
			src:  header + steps("x:h:y", "y:h:x"),
			want: [][]string{{"cycle: x -> y -> x"}},
		},
		{
			name: "each strongly connected component reports its own cycle",
			src:  header + steps("a:h:b", "b:h:a", "c:h", "d:h:e", "e:h:d, c"),
			want: [][]string{{"cycle: a -> b -> a"}, {"cycle: d -> e -> d"}},
		},
		{
			name: "a bare number as a duration gets the unit hint",
			src:  header + "steps:\n  - name: a\n    handler: h\n    timeout: 500\n",
			want: [][]string{{`step "a": timeout: 500 is a bare number, not a duration`, "hint: write 500ms or 2s"}},
			line: 7,
		},
		{
			name: "a quoted number as a duration gets the unit hint",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {base: \"2\"}\n",
			want: [][]string{{`retry.base: "2" is not a duration`, "hint: write 500ms or 2s"}},
		},
		{
			name: "an unparsable duration is reported",
			src:  header + "steps:\n  - name: a\n    handler: h\n    timeout: 2 seconds\n",
			want: [][]string{{`timeout: "2 seconds" is not a duration`, "hint: write a Go duration"}},
		},
		{
			name: "max_attempts below 1 is out of range",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {max_attempts: 0}\n",
			want: [][]string{{`step "a": retry.max_attempts: max_attempts 0 is out of range 1..100`, "hint:"}},
		},
		{
			name: "max_attempts above 100 is out of range",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry:\n      max_attempts: 101\n",
			want: [][]string{{"max_attempts 101 is out of range 1..100"}},
			line: 8,
		},
		{
			name: "a fractional max_attempts is not a whole number",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {max_attempts: 2.5}\n",
			want: [][]string{{`retry.max_attempts: "2.5" is not a whole number`}},
		},
		{
			name: "jitter above 1 is out of range",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {jitter: 1.5}\n",
			want: [][]string{{"retry.jitter: jitter 1.5 is out of range 0..1", "hint: jitter is a fraction"}},
		},
		{
			name: "negative jitter is out of range",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {jitter: -0.1}\n",
			want: [][]string{{"jitter -0.1 is out of range 0..1"}},
		},
		{
			name: "NaN jitter is out of range",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {jitter: .nan}\n",
			want: [][]string{{"retry.jitter:", "out of range 0..1"}},
		},
		{
			name: "a negative base is refused",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {base: -1s}\n",
			want: [][]string{{"retry.base: base -1s is negative"}},
		},
		{
			name: "a zero base needs backoff none",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {base: 0s}\n",
			want: [][]string{{"retry.base: base is 0s but backoff is exponential", "backoff: none"}},
		},
		{
			name: "a cap below base is refused",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {base: 10s, cap: 5s}\n",
			want: [][]string{{"retry.cap: cap 5s is below base 10s", "hint: cap bounds every delay"}},
		},
		{
			name: "a zero timeout is refused",
			src:  header + "steps:\n  - name: a\n    handler: h\n    timeout: 0s\n",
			want: [][]string{{"timeout: timeout 0s is out of range", "at most 24h"}},
		},
		{
			name: "a timeout above 24h is refused",
			src:  header + "steps:\n  - name: a\n    handler: h\n    timeout: 25h\n",
			want: [][]string{{"timeout 25h0m0s is out of range"}},
		},
		{
			name: "an unknown backoff lists the valid ones",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {backoff: quadratic}\n",
			want: [][]string{{`retry.backoff: unknown backoff "quadratic"`, "hint: use one of exponential, linear, fibonacci, none"}},
		},
		{
			name: "retryable must be a boolean",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {retryable: yes}\n",
			want: [][]string{{`retry.retryable: "yes" is not a boolean`, "hint: write true or false"}},
		},
		{
			name: "a bad template default is reported once, at the defaults",
			src:  header + "defaults:\n  retry: {max_attempts: 0}\n  timeout: 500\n" + steps("a:h", "b:h:a"),
			want: [][]string{
				{"defaults.retry.max_attempts: max_attempts 0 is out of range"},
				{"defaults.timeout: 500 is a bare number", "hint: write 500ms or 2s"},
			},
		},
		{
			name: "a context_schema that does not compile gives the library's message",
			src:  header + "context_schema:\n  type: objekt\n" + steps("a:h"),
			want: [][]string{{"context_schema: the schema is not valid", "at /type", "hint: fix the schema"}},
			line: 5,
		},
		{
			name: "a context_schema with a bad pattern gives the regexp error",
			src:  header + "context_schema:\n  type: string\n  pattern: '['\n" + steps("a:h"),
			want: [][]string{{"context_schema:", "pattern"}},
		},
		{
			name: "a context_schema may not load other documents",
			src:  header + "context_schema: {$ref: 'file:///etc/passwd'}\n" + steps("a:h"),
			want: [][]string{{"context_schema: the schema does not compile", "must be self-contained"}},
		},
		{
			name: "a context_schema with infinite numbers is not JSON",
			src:  header + "context_schema:\n  maximum: .inf\n" + steps("a:h"),
			want: [][]string{{"context_schema: the schema is not JSON: .inf is not a JSON number", "hint: write the schema with JSON values only"}},
			line: 5,
		},
		{
			name: "a context_schema with a duplicate key is refused",
			src:  header + "context_schema:\n  type: object\n  type: string\n" + steps("a:h"),
			want: [][]string{{`duplicate key "type"`}},
		},
		{
			name: "an unknown top-level key is named with the known keys",
			src:  header + "descripton: x\n" + steps("a:h"),
			want: [][]string{{`descripton: unknown key "descripton"`, `did you mean "description"?`, "known keys at the top level"}},
			line: 4,
		},
		{
			name: "an unknown step key is named under its step",
			src:  header + "steps:\n  - name: a\n    handlr: h\n",
			want: [][]string{{`step "a": handlr: unknown key "handlr"`, `did you mean "handler"?`}, {"missing handler"}},
		},
		{
			name: "an unknown retry key is named with its path",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {attempts: 3}\n",
			want: [][]string{{`step "a": retry.attempts: unknown key "attempts"`, "known keys in retry"}},
		},
		{
			name: "an unknown key in defaults is named with its path",
			src:  header + "defaults:\n  retries: {}\n  retry: {foo: 1}\n" + steps("a:h"),
			want: [][]string{{`defaults.retries: unknown key "retries"`}, {`defaults.retry.foo: unknown key "foo"`}},
		},
		{
			name: "a duplicate key in a step is reported with both lines",
			src:  header + "steps:\n  - name: a\n    handler: h\n    handler: i\n",
			want: [][]string{{`handler: duplicate key "handler" (first at line 6)`}},
			line: 7,
		},
		{
			name: "a duplicate key in retry is named with its path",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry:\n      base: 1s\n      base: 2s\n",
			want: [][]string{{`step "a": retry.base: duplicate key "base" (first at line 8)`}},
			line: 9,
		},
		{
			name: "a duplicate top-level key is reported alone",
			src:  header + "name: other\n" + steps("a:h"),
			want: [][]string{{`name: duplicate key "name" (first at line 1)`}},
			line: 4,
		},
		{
			name: "steps given as a mapping are refused",
			src:  header + "steps: {a: h}\n",
			want: [][]string{{"steps: steps is a mapping, not a list"}},
		},
		{
			name: "a step that is a string is refused",
			src:  header + "steps:\n  - a\n  - name: b\n    handler: h\n",
			want: [][]string{{"step #1 is a string, not a mapping"}},
		},
		{
			name: "depends_on given as a string is refused",
			src:  header + "steps:\n  - name: a\n    handler: h\n  - name: b\n    handler: h\n    depends_on: a\n",
			want: [][]string{{`step "b": depends_on: got a string, want a list of step names`, "hint: write depends_on: [step_a, step_b]"}},
		},
		{
			name: "retry given as a list is refused",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: [1]\n",
			want: [][]string{{`step "a": retry: got a list, want a mapping`}},
		},
		{
			name: "a handler given as a mapping makes the document tasker-core, where namespace mixes the dialects",
			src:  header + "steps:\n  - name: a\n    handler: {x: 1}\n",
			want: [][]string{
				{`test.yaml:2: namespace: "namespace" is a key of the tasker dialect`, "the handler of step #1 at line 6 is a mapping", "write namespace_name: instead"},
				{`test.yaml:6: step "a": handler.callable: the handler has no callable`},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ve := parseFail(t, tc.src)
			for i, subs := range tc.want {
				p, ok := find(ve, subs...)
				if !ok {
					t.Errorf("no problem contains all of %q; got:\n%v", subs, ve)
					continue
				}
				if i == 0 && tc.line == -1 && p.Line <= 0 {
					t.Errorf("problem %q has no line", p)
				}
				if i == 0 && tc.line > 0 && p.Line != tc.line {
					t.Errorf("problem %q: line %d, want %d", p, p.Line, tc.line)
				}
			}
		})
	}
}

func TestParseCollectsEveryProblem(t *testing.T) {
	src := `name: Bad
namespace: demo
version: "1.0"
steps:
  - name: a
    handler: h
    depends_on: [c, nope]
    timeout: 5
  - name: b
    handler: h
    depends_on: [a]
    retry: {max_attempts: 0, backoff: slow}
  - name: c
    handler: h
    depends_on: [b]
  - name: c
    handler: h
`
	ve := parseFail(t, src)
	wants := []string{
		`test.yaml:1: name: invalid name "Bad"`,
		`test.yaml:3: version: invalid version "1.0"`,
		`test.yaml:7: step "a": depends_on: unknown step "nope"`,
		`test.yaml:7: step "a": depends_on: cycle: a -> c -> b -> a`,
		`test.yaml:8: step "a": timeout: 5 is a bare number`,
		`test.yaml:12: step "b": retry.max_attempts: max_attempts 0`,
		`test.yaml:12: step "b": retry.backoff: unknown backoff "slow"`,
		`test.yaml:16: step "c": name: duplicate step name "c"`,
	}
	for _, w := range wants {
		if _, ok := find(ve, w); !ok {
			t.Errorf("missing problem %q in:\n%v", w, ve)
		}
	}
	if len(ve.Problems) != len(wants) {
		t.Errorf("got %d problems, want %d:\n%v", len(ve.Problems), len(wants), ve)
	}
	for i := 1; i < len(ve.Problems); i++ {
		if ve.Problems[i].Line < ve.Problems[i-1].Line {
			t.Errorf("problems are not in line order:\n%v", ve)
		}
	}
	lines := strings.Split(ve.Error(), "\n")
	if lines[0] != fmt.Sprintf("test.yaml: %d problems", len(wants)) {
		t.Errorf("summary line = %q", lines[0])
	}
	if len(lines) != len(wants)+1 {
		t.Errorf("Error() has %d lines, want one per problem plus the summary", len(lines))
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{
			name: "a full problem renders file, line, step, field, message and hint",
			p: Problem{Source: "examples/x.yaml", Line: 12, Step: "b", Field: "depends_on",
				Message: `unknown step "zz" (known steps: a, b, c)`, Hint: "fix it"},
			want: `examples/x.yaml:12: step "b": depends_on: unknown step "zz" (known steps: a, b, c); hint: fix it`,
		},
		{
			name: "a template-level problem without a line omits them",
			p:    Problem{Source: "x.yaml", Field: "name", Message: "missing name"},
			want: "x.yaml: name: missing name",
		},
		{
			name: "a problem without a source starts with its line",
			p:    Problem{Line: 3, Message: "bad"},
			want: "line 3: bad",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestValidationError(t *testing.T) {
	t.Run("one problem has a singular summary", func(t *testing.T) {
		e := &ValidationError{Problems: []Problem{{Source: "a.yaml", Message: "bad"}}}
		if got, want := e.Error(), "a.yaml: 1 problem\na.yaml: bad"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	})
	t.Run("problems of several files count the files", func(t *testing.T) {
		e := &ValidationError{Problems: []Problem{{Source: "a.yaml", Message: "x"}, {Source: "b.yaml", Message: "y"}}}
		if first := strings.SplitN(e.Error(), "\n", 2)[0]; first != "2 problems in 2 files" {
			t.Errorf("summary = %q", first)
		}
	})
	t.Run("it matches ErrInvalid and nothing else", func(t *testing.T) {
		var err error = &ValidationError{}
		if !errors.Is(err, taskertype.ErrInvalid) {
			t.Error("errors.Is(ErrInvalid) = false")
		}
		if errors.Is(err, taskertype.ErrNotFound) {
			t.Error("errors.Is(ErrNotFound) = true")
		}
	})
}

func TestFindCyclesIsDeterministic(t *testing.T) {
	// 0 -> 1 -> 2 -> 0 and 2 -> 3 -> 2: one component, the shortest cycle
	// through its first step is reported.
	edges := [][]int{{1}, {2}, {0, 3}, {2}}
	for range 5 {
		got := findCycles(edges)
		if len(got) != 1 || fmt.Sprint(got[0]) != "[0 1 2]" {
			t.Fatalf("findCycles = %v, want [[0 1 2]]", got)
		}
	}
}
