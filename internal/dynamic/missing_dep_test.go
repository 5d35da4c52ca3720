package dynamic

import (
	"strings"
	"testing"

	"github.com/tasker-go/tasker/template"
)

// A chosen standard step whose other declared dependency lies in another
// decision's region, still open: creating it now would drop that
// dependency and run it too early, so the outcome is refused with the fix
// named. Once the other decision chose nothing (it is finished and y can no
// longer be created), the same choice is accepted.
func TestAChosenStepDoesNotRunBeforeADependencyThatMayStillBeCreated(t *testing.T) {
	const src = `name: two
namespace: test
version: 1.0.0
steps:
  - {name: start, handler: h}
  - {name: d1, type: decision, handler: h, depends_on: [start]}
  - {name: d2, type: decision, handler: h, depends_on: [start]}
  - {name: y, handler: h, depends_on: [d2]}
  - {name: x, handler: h, depends_on: [d1, y]}
`
	tpl, err := template.Parse("two.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	g := New(tpl)
	o := &Outcome{Type: "create_steps", StepNames: []string{"x"}}
	_, err = g.Decide(g.Index("d1"), o, fakeTask{exists: set("start", "d1", "d2"), finished: set("start", "d1")})
	if err == nil || !strings.Contains(err.Error(), `depends on "y"`) || !strings.Contains(err.Error(), "deferred_convergence") {
		t.Fatalf("d1 choosing x while d2 may still create y: %v; want a refusal naming y and the fix", err)
	}
	create, err := g.Decide(g.Index("d1"), o, fakeTask{exists: set("start", "d1", "d2"), finished: set("start", "d1", "d2")})
	if err != nil || len(create) != 1 || tpl.Steps[create[0]].Name != "x" {
		t.Fatalf("d1 choosing x once d2 chose nothing: %v, %v; want x created", create, err)
	}
}
