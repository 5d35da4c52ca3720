package dynamic

import (
	"slices"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/template"
)

const nested = `name: nested
namespace: test
version: 1.0.0
steps:
  - {name: start, handler: h}
  - {name: route, type: decision, handler: h, depends_on: [start]}
  - {name: a, handler: h, depends_on: [route]}
  - {name: a_next, handler: h, depends_on: [a]}
  - {name: b, handler: h, depends_on: [route]}
  - {name: inner, type: decision, handler: h, depends_on: [a]}
  - {name: a1, handler: h, depends_on: [inner]}
  - {name: finish, type: deferred_convergence, handler: h, depends_on: [a, b, a1]}
  - {name: after, handler: h, depends_on: [finish]}
`

type fakeTask struct{ exists, finished map[string]bool }

func (f fakeTask) Exists(n string) bool   { return f.exists[n] }
func (f fakeTask) Finished(n string) bool { return f.finished[n] }

func names(g *Graph, pos []int) []string {
	var out []string
	for _, i := range pos {
		out = append(out, g.t.Steps[i].Name)
	}
	return out
}

func set(ns ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range ns {
		m[n] = true
	}
	return m
}

func TestDecide(t *testing.T) {
	tpl, err := template.Parse("nested.yaml", []byte(nested))
	if err != nil {
		t.Fatal(err)
	}
	g := New(tpl)
	if got := names(g, g.Initial()); !slices.Equal(got, []string{"start", "route"}) {
		t.Fatalf("initial steps %v, want start and route", got)
	}
	if d := g.Depth(g.Index("inner")); d != 2 {
		t.Errorf("depth of inner = %d, want 2", d)
	}
	route := g.Index("route")
	for _, tc := range []struct {
		name    string
		outcome Outcome
		want    []string
	}{
		// a makes a_next and inner reachable; finish waits for inner.
		{"a", Outcome{Type: "create_steps", StepNames: []string{"a"}}, []string{"a", "a_next", "inner"}},
		// b only: nothing more can come, so finish and after follow.
		{"b", Outcome{Type: "create_steps", StepNames: []string{"b"}}, []string{"b", "finish", "after"}},
		{"none", Outcome{Type: "no_branches"}, nil},
	} {
		got, err := g.Decide(route, &tc.outcome, fakeTask{exists: set("start", "route"), finished: set("start")})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n := names(g, got); !slices.Equal(n, tc.want) {
			t.Errorf("%s: creates %v, want %v", tc.name, n, tc.want)
		}
	}
	// The inner decision decides nothing: finish now converges over a.
	inner := g.Index("inner")
	got, err := g.Decide(inner, &Outcome{Type: "no_branches"},
		fakeTask{exists: set("start", "route", "a", "a_next", "inner"), finished: set("start", "route", "a")})
	if err != nil {
		t.Fatal(err)
	}
	if n := names(g, got); !slices.Equal(n, []string{"finish", "after"}) {
		t.Errorf("inner decides nothing: creates %v, want finish and after", n)
	}
	// Steps outside the decision's region are refused, naming them.
	for _, bad := range []string{"a1", "start", "finish_x"} {
		_, err := g.Decide(route, &Outcome{Type: "create_steps", StepNames: []string{bad}}, fakeTask{exists: set("start", "route")})
		if err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("choosing %s: %v, want an error naming it", bad, err)
		}
	}
}

func TestParseOutcome(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"decision_point_outcome": {"type": "create_steps", "step_names": ["a"]}}`, true},
		{`{"decision_point_outcome": {"type": "no_branches"}, "x": 1}`, true},
		{`{"decision_point_outcome": {"type": "create_steps", "step_names": []}}`, false},
		{`{"decision_point_outcome": {"type": "no_branches", "step_names": ["a"]}}`, false},
		{`{"decision_point_outcome": "a"}`, false},
		{`[1]`, false},
		{`{}`, false},
	} {
		if _, err := ParseOutcome([]byte(tc.in)); (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

// FuzzParseOutcome: a handler's result is outside input; parsing it never
// panics, and what it accepts is one of the two outcomes.
func FuzzParseOutcome(f *testing.F) {
	f.Add([]byte(`{"decision_point_outcome": {"type": "create_steps", "step_names": ["a"]}}`))
	f.Add([]byte(`{"decision_point_outcome": {"type": "no_branches"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOutcome(b)
		if err == nil && o.Type != "create_steps" && o.Type != "no_branches" {
			t.Fatalf("accepted type %q", o.Type)
		}
	})
}
