// Package dynamic decides which steps of a template exist in a task: those
// created with the task, and those a decision step's outcome creates at run
// time with whatever else that makes reachable (docs/workflows.md). It is
// pure: it reads a template and the names of the steps a task has, and
// returns template positions; orchestration stores the steps.
package dynamic

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// Graph is a template's DAG, read for run-time step creation. Build one
// per template (New) and share it: it is immutable.
type Graph struct {
	t       *template.Template
	idx     map[string]int
	deps    [][]int // by position: the positions of the step's dependencies
	kids    [][]int
	regions [][]bool // by position of a decision: the steps it may create
	depth   []int    // by position: the decisions on the longest chain ending here, itself included
	dynamic bool
	initial []int
}

// New reads t, which must have passed template validation (names unique,
// dependencies known, no cycle).
func New(t *template.Template) *Graph {
	n := len(t.Steps)
	g := &Graph{t: t, idx: make(map[string]int, n), deps: make([][]int, n), kids: make([][]int, n),
		regions: make([][]bool, n), depth: make([]int, n)}
	for i := range t.Steps {
		g.idx[t.Steps[i].Name] = i
	}
	for i := range t.Steps {
		for _, d := range t.Steps[i].DependsOn {
			j := g.idx[d]
			g.deps[i] = append(g.deps[i], j)
			g.kids[j] = append(g.kids[j], i)
		}
		switch t.Steps[i].TypeOf() {
		case template.StepDecision, template.StepBatchable, template.StepBatchWorker, template.StepDeferredConvergence:
			g.dynamic = true
		}
	}
	for _, i := range g.topo() {
		for _, j := range g.deps[i] {
			g.depth[i] = max(g.depth[i], g.depth[j])
		}
		if g.typeOf(i) == template.StepDecision {
			g.depth[i]++
			g.regions[i] = g.region(i)
		}
	}
	g.initial = g.closure(nil, nil, func(int) bool { return false })
	return g
}

// Dynamic reports whether the template has a step that is not standard:
// for one without, every step exists from the start and nothing here
// applies.
func (g *Graph) Dynamic() bool { return g.dynamic }

// Initial returns the positions of the steps a task is created with, in
// template order: every step not downstream of a decision, and no
// batch_worker step (its copies are created by its batchable step).
func (g *Graph) Initial() []int { return slices.Clone(g.initial) }

// Index returns the position of the step called name, or -1.
func (g *Graph) Index(name string) int {
	if i, ok := g.idx[name]; ok {
		return i
	}
	return -1
}

// IsDecision reports whether the step at position i is a decision step.
func (g *Graph) IsDecision(i int) bool { return g.typeOf(i) == template.StepDecision }

// Depth returns how many decision steps lie on the longest chain of
// dependencies ending at position i, i included if it is one.
func (g *Graph) Depth(i int) int { return g.depth[i] }

func (g *Graph) typeOf(i int) template.StepType { return g.t.Steps[i].TypeOf() }

// topo returns the positions in an order where every step comes after its
// dependencies.
func (g *Graph) topo() []int {
	out := make([]int, 0, len(g.deps))
	seen := make([]bool, len(g.deps))
	var visit func(i int)
	visit = func(i int) {
		if seen[i] {
			return
		}
		seen[i] = true
		for _, j := range g.deps[i] {
			visit(j)
		}
		out = append(out, i)
	}
	for i := range g.deps {
		visit(i)
	}
	return out
}

// region returns the steps decision d may create: those reachable from it
// through its dependents without passing through another decision (that
// decision is included, its own branches are not), batch workers excluded.
func (g *Graph) region(d int) []bool {
	in := make([]bool, len(g.deps))
	var walk func(i int)
	walk = func(i int) {
		for _, k := range g.kids[i] {
			if in[k] || g.typeOf(k) == template.StepBatchWorker {
				continue
			}
			in[k] = true
			if g.typeOf(k) != template.StepDecision {
				walk(k)
			}
		}
	}
	walk(d)
	return in
}

// Choices returns the names of the steps decision d may create, in
// template order.
func (g *Graph) Choices(d int) []string {
	var names []string
	for i, ok := range g.regions[d] {
		if ok {
			names = append(names, g.t.Steps[i].Name)
		}
	}
	return names
}

// Outcome is what a decision handler's result says, in tasker-core's wire
// form: the result is a JSON object whose "decision_point_outcome" is
// {"type": "create_steps", "step_names": [...]} or {"type": "no_branches"}.
type Outcome struct {
	Type      string   `json:"type"`
	StepNames []string `json:"step_names"`
}

// ParseOutcome reads the decision outcome from a decision step's result.
// Its errors say what is wrong with the result, for the step's failure.
func ParseOutcome(result json.RawMessage) (*Outcome, error) {
	var r struct {
		Outcome *json.RawMessage `json:"decision_point_outcome"`
	}
	if err := json.Unmarshal(result, &r); err != nil || r.Outcome == nil {
		return nil, fmt.Errorf(`the result has no "decision_point_outcome": a decision handler returns an object with "decision_point_outcome": {"type": "create_steps", "step_names": [...]} or {"type": "no_branches"} (taskertype.CreateSteps, taskertype.NoBranches)`)
	}
	var o Outcome
	if err := json.Unmarshal(*r.Outcome, &o); err != nil {
		return nil, fmt.Errorf("decision_point_outcome is not an object with a type and step_names: %v", err)
	}
	switch o.Type {
	case taskertype.DecisionNoBranches:
		if len(o.StepNames) > 0 {
			return nil, fmt.Errorf("decision_point_outcome is no_branches but names steps %v: use create_steps to create them", o.StepNames)
		}
	case taskertype.DecisionCreateSteps:
		if len(o.StepNames) == 0 {
			return nil, fmt.Errorf("decision_point_outcome is create_steps with no step_names: name the steps, or return no_branches")
		}
	default:
		return nil, fmt.Errorf("decision_point_outcome has type %q: want %q or %q", o.Type, taskertype.DecisionCreateSteps, taskertype.DecisionNoBranches)
	}
	return &o, nil
}

// Task is what Decide needs to know of a task's steps: which exist, and
// whether an existing one is finished (complete, resolved by hand or
// cancelled: it will create nothing more).
type Task interface {
	Exists(name string) bool
	Finished(name string) bool
}

// Decide validates the outcome of decision d (a position) and returns the
// positions of the steps to create, in template order: the steps chosen,
// and every step that this makes reachable: a step whose dependencies all
// exist (unless one of them is a decision that did not choose it), and a
// deferred_convergence step once each of its dependencies exists or can no
// longer be created, and at least one exists. Decision d counts as
// finished. A chosen step that exists already is not created again.
func (g *Graph) Decide(d int, o *Outcome, task Task) ([]int, error) {
	name := g.t.Steps[d].Name
	var chosen []int
	for _, s := range o.StepNames {
		i, ok := g.idx[s]
		switch {
		case !ok:
			return nil, fmt.Errorf("decision %q chose step %q, which is not a step of template %s; it may create: %s",
				name, s, g.t.Key(), strings.Join(g.Choices(d), ", "))
		case !g.regions[d][i]:
			return nil, fmt.Errorf("decision %q chose step %q, which the template does not declare downstream of it; it may create: %s",
				name, s, strings.Join(g.Choices(d), ", "))
		case task.Exists(s) || slices.Contains(chosen, i):
			continue
		}
		chosen = append(chosen, i)
	}
	exists := func(i int) bool { return task.Exists(g.t.Steps[i].Name) }
	finished := func(i int) bool { return i == d || task.Finished(g.t.Steps[i].Name) }
	// A chosen step is created with the dependencies that exist. One it
	// declares that does not exist but may still be created (another
	// decision may choose it) would be missed: the step would run before
	// it. Only a deferred_convergence step may wait for such branches.
	if len(chosen) > 0 {
		isChosen := func(i int) bool { return slices.Contains(chosen, i) }
		has := func(i int) bool { return isChosen(i) || exists(i) }
		open := func(i int) bool { return isChosen(i) || has(i) && !finished(i) }
		alive := g.alive(has, open)
		for _, i := range chosen {
			if g.typeOf(i) == template.StepDeferredConvergence {
				continue
			}
			for _, j := range g.deps[i] {
				if j != d && !has(j) && alive(j) {
					return nil, fmt.Errorf("decision %q chose step %q, which also depends on %q, a step that does not exist yet but may still be created (by another decision): %q would run without waiting for it; declare %q a deferred_convergence step, which waits for the branches that are created",
						name, g.t.Steps[i].Name, g.t.Steps[j].Name, g.t.Steps[i].Name, g.t.Steps[i].Name)
				}
			}
		}
	}
	if len(chosen) == 0 {
		// Nothing new, but a convergence step may have waited for this
		// decision to say no.
		return g.closure(exists, nil, finished), nil
	}
	return g.closure(exists, chosen, finished), nil
}

// closure returns the steps to create: chosen and what becomes reachable.
// exists (nil: none) says which steps the task has; finished, which of
// those will create nothing more.
func (g *Graph) closure(exists func(int) bool, chosen []int, finished func(int) bool) []int {
	n := len(g.deps)
	created := make([]bool, n)
	for _, i := range chosen {
		created[i] = true
	}
	has := func(i int) bool { return created[i] || exists != nil && exists(i) }
	open := func(i int) bool { return created[i] || has(i) && !finished(i) }
	for changed := true; changed; {
		changed = false
		alive := g.alive(has, open)
		for i := range n {
			if has(i) || g.typeOf(i) == template.StepBatchWorker {
				continue
			}
			ok := false
			if g.typeOf(i) == template.StepDeferredConvergence {
				some, settled := false, true
				for _, j := range g.deps[i] {
					switch {
					case has(j):
						some = true
					case alive(j):
						settled = false
					}
				}
				ok = some && settled
			} else {
				ok = true
				for _, j := range g.deps[i] {
					if !has(j) || g.typeOf(j) == template.StepDecision {
						ok = false
					}
				}
			}
			if ok {
				// What is alive changes with every step created:
				// look again from the start.
				created[i], changed = true, true
				break
			}
		}
	}
	var out []int
	for i, c := range created {
		if c {
			out = append(out, i)
		}
	}
	return out
}

// alive returns whether a step that does not exist may still be created:
// a decision that may choose it is open or may itself still be created, or
// its dependencies may all come to exist.
func (g *Graph) alive(has, open func(int) bool) func(int) bool {
	memo := make(map[int]bool)
	var alive func(i int) bool
	alive = func(i int) bool {
		if v, ok := memo[i]; ok {
			return v
		}
		memo[i] = false // the graph is acyclic; this only guards
		maybe := func(j int) bool { return open(j) || !has(j) && alive(j) }
		v := false
		for d, region := range g.regions {
			if region != nil && region[i] && maybe(d) {
				v = true
				break
			}
		}
		if !v {
			switch g.typeOf(i) {
			case template.StepDeferredConvergence:
				for _, j := range g.deps[i] {
					if !has(j) && alive(j) {
						v = true
					}
				}
			case template.StepBatchWorker:
				for _, j := range g.deps[i] {
					if g.typeOf(j) == template.StepBatchable && maybe(j) {
						v = true
					}
				}
			default:
				all, missing := true, false
				for _, j := range g.deps[i] {
					if g.typeOf(j) == template.StepDecision {
						all = false // only a decision's choice creates it: above
					}
					if !has(j) {
						missing = true
						all = all && alive(j)
					}
				}
				v = all && missing
			}
		}
		memo[i] = v
		return v
	}
	return alive
}
