package template

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tasker-go/tasker/taskertype"
)

var (
	namePattern    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	handlerPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:-]{0,499}$`)
)

// Problem is one thing wrong with a template.
type Problem struct {
	Source  string // the file, or the source name given to Parse
	Line    int    // 1-based line in the file, 0 if unknown
	Step    string // the step's name ("#3" for the third step when it has no valid name); "" for the template
	Field   string // e.g. "depends_on", "retry.max_attempts"
	Message string // what is wrong
	Hint    string // what to do
}

// String renders the problem on one line:
//
//	examples/x.yaml:12: step "b": depends_on: unknown step "zz" (known steps: a, b); hint: ...
func (p Problem) String() string {
	var b strings.Builder
	if p.Source != "" {
		b.WriteString(p.Source)
		if p.Line > 0 {
			b.WriteString(":" + strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		b.WriteString("line " + strconv.Itoa(p.Line) + ": ")
	}
	if p.Step != "" {
		b.WriteString("step " + strconv.Quote(p.Step) + ": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	if p.Hint != "" {
		b.WriteString("; hint: " + p.Hint)
	}
	return b.String()
}

// ValidationError lists every problem found in one or more templates. It
// matches taskertype.ErrInvalid with errors.Is.
type ValidationError struct {
	Problems []Problem
	// Warnings lists what the loader would have ignored (Template.Warnings)
	// in the documents that failed.
	Warnings []Problem
}

// Error returns a one-line summary followed by one problem per line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	n := len(e.Problems)
	noun := "problems"
	if n == 1 {
		noun = "problem"
	}
	var sources []string
	for _, p := range e.Problems {
		if !slices.Contains(sources, p.Source) {
			sources = append(sources, p.Source)
		}
	}
	switch {
	case len(sources) == 1 && sources[0] != "":
		fmt.Fprintf(&b, "%s: %d %s", sources[0], n, noun)
	case len(sources) > 1:
		fmt.Fprintf(&b, "%d %s in %d files", n, noun, len(sources))
	default:
		fmt.Fprintf(&b, "invalid template: %d %s", n, noun)
	}
	for _, p := range e.Problems {
		b.WriteString("\n")
		b.WriteString(p.String())
	}
	return b.String()
}

// Is makes errors.Is(err, taskertype.ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == taskertype.ErrInvalid }

// checker collects problems of one source.
type checker struct {
	source   string
	core     bool // the document is a tasker-core template: name its keys
	problems []Problem
	dropped  int // problems beyond maxProblems
}

// maxProblems bounds the problems kept for one source.
const maxProblems = 100

// full reports whether further problems would be dropped.
func (c *checker) full() bool { return len(c.problems) >= maxProblems }

func (c *checker) add(p Problem) {
	p.Source = c.source
	if len(c.problems) >= maxProblems {
		c.dropped++
		return
	}
	c.problems = append(c.problems, p)
}

// err returns the problems, ordered by line, as a *ValidationError, or nil.
func (c *checker) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	ps := slices.Clone(c.problems)
	slices.SortStableFunc(ps, func(a, b Problem) int { return a.Line - b.Line })
	if c.dropped > 0 {
		ps = append(ps, Problem{Source: c.source,
			Message: fmt.Sprintf("%d more problems not listed", c.dropped), Hint: "fix the ones above first"})
	}
	return &ValidationError{Problems: ps}
}

// stepLabel names step i in problems: its name when valid, else "#i+1".
func stepLabel(s *Step, i int) string {
	if namePattern.MatchString(s.Name) {
		return s.Name
	}
	return positionLabel(i)
}

// checkTemplate checks identity, steps and the dependency graph. l gives
// line numbers (nil: none); skip holds "step/field" keys already reported.
func (c *checker) checkTemplate(t *Template, l *locator, skip map[string]bool) {
	line := func(step int, path ...string) int { return l.line(step, path...) }
	if !skip[skipKey(-1, "name")] {
		c.checkName(t.Name, "name", "", line(-1, "name"),
			"name: my_workflow", "")
	}
	if !skip[skipKey(-1, "namespace")] {
		ns := "namespace"
		if c.core {
			ns = "namespace_name"
		}
		c.checkName(t.Namespace, ns, "", line(-1, "namespace"),
			ns+": demo", " (the namespace also names the queue worker_<namespace>)")
		if rest, ok := strings.CutSuffix(t.Namespace, DomainEventQueueSuffix); ok && badName(t.Namespace) == "" {
			// Its step queue, worker_<rest>_domain_events, would be the
			// durable domain-event queue of namespace worker_<rest>: the
			// two would take each other's messages.
			c.add(Problem{Line: line(-1, "namespace"), Field: ns,
				Message: fmt.Sprintf("invalid %s %q: it ends with %q", ns, t.Namespace, DomainEventQueueSuffix),
				Hint:    fmt.Sprintf("choose a namespace that does not: its queue worker_%s would also be the domain-event queue of namespace worker_%s", t.Namespace, rest)})
		}
	}
	if !skip[skipKey(-1, "version")] {
		c.checkVersion(t.Version, line(-1, "version"))
	}
	if !skip["steps"] {
		switch {
		case len(t.Steps) == 0:
			c.add(Problem{Line: line(-1, "steps"), Field: "steps", Message: "the template has no steps",
				Hint: "add a list of steps, each with name and handler"})
		case len(t.Steps) > MaxSteps:
			c.add(Problem{Line: line(-1, "steps"), Field: "steps",
				Message: fmt.Sprintf("%d steps, more than the limit of %d", len(t.Steps), MaxSteps),
				Hint:    "split the workflow into several templates"})
		}
	}

	first := map[string]int{} // step name → its first position
	var known []string        // step names in file order
	for i := range t.Steps {
		s := &t.Steps[i]
		label := stepLabel(s, i)
		if l != nil && i < len(l.brokenStep) && l.brokenStep[i] {
			continue
		}
		if !skip[skipKey(i, "name")] {
			if s.Name == "" {
				c.add(Problem{Line: line(i), Step: label, Field: "name", Message: "missing step name",
					Hint: "add name: my_step (" + nameRules + ")"})
			} else if why := badName(s.Name); why != "" {
				c.add(Problem{Line: line(i, "name"), Step: label, Field: "name",
					Message: fmt.Sprintf("invalid step name %q: %s", s.Name, why), Hint: "use " + nameRules})
			}
		}
		if s.Name != "" {
			if j, dup := first[s.Name]; dup {
				c.add(Problem{Line: line(i, "name"), Step: label, Field: "name",
					Message: fmt.Sprintf("duplicate step name %q: steps %s%s and %s%s", s.Name,
						positionLabel(j), atLine(line(j)), positionLabel(i), atLine(line(i))),
					Hint: "give every step its own name"})
			} else {
				first[s.Name] = i
				known = append(known, s.Name)
			}
		}
		if !skip[skipKey(i, "handler")] {
			switch {
			case s.Handler == "" && c.core:
				c.add(Problem{Line: line(i), Step: label, Field: "handler", Message: "missing handler",
					Hint: "name the handler that runs the step: handler: {callable: payments.validate}"})
			case s.Handler == "":
				c.add(Problem{Line: line(i), Step: label, Field: "handler", Message: "missing handler",
					Hint: "name the function that runs the step, e.g. handler: demo.square"})
			case !handlerPattern.MatchString(s.Handler):
				c.add(Problem{Line: line(i, "handler"), Step: label, Field: "handler",
					Message: fmt.Sprintf("invalid handler name %q", s.Handler),
					Hint:    "start with a letter; use letters, digits and _ . : - ; at most 500 characters"})
			}
		}
	}
	if skip["graph"] || skip["steps"] {
		return
	}

	edges := make([][]int, len(t.Steps))
	for i := range t.Steps {
		s := &t.Steps[i]
		label := stepLabel(s, i)
		seen := map[string]bool{}
		for j, d := range s.DependsOn {
			at := l.item(i, l.depsKey(i), j)
			switch idx, ok := first[d]; {
			case d == s.Name && d != "":
				c.add(Problem{Line: at, Step: label, Field: "depends_on",
					Message: fmt.Sprintf("step %q depends on itself", d),
					Hint:    "remove it from its own depends_on"})
			case seen[d]:
				c.add(Problem{Line: at, Step: label, Field: "depends_on",
					Message: fmt.Sprintf("%q is listed twice", d), Hint: "list each dependency once"})
			case !ok && c.full():
				c.dropped++ // skip the costly message
			case !ok:
				hint := fmt.Sprintf("fix the name, or add a step named %q", d)
				if sg := suggest(d, known); sg != "" {
					hint = fmt.Sprintf("did you mean %q?", sg)
				}
				c.add(Problem{Line: at, Step: label, Field: "depends_on",
					Message: fmt.Sprintf("unknown step %q (known steps: %s)", d, listNames(known)), Hint: hint})
			default:
				edges[i] = append(edges[i], idx)
			}
			seen[d] = true
		}
	}
	for _, cyc := range findCycles(edges) {
		names := make([]string, 0, len(cyc)+1)
		for _, i := range cyc {
			names = append(names, t.Steps[i].Name)
		}
		names = append(names, t.Steps[cyc[0]].Name)
		if len(names) > maxCycleShown+1 {
			names = append(names[:maxCycleShown:maxCycleShown],
				fmt.Sprintf("... (%d more)", len(names)-maxCycleShown-1), names[len(names)-1])
		}
		start := cyc[0]
		at := line(start, l.depsKey(start))
		if k := slices.Index(t.Steps[start].DependsOn, t.Steps[cyc[1%len(cyc)]].Name); k >= 0 {
			at = l.item(start, l.depsKey(start), k)
		}
		c.add(Problem{Line: at, Step: stepLabel(&t.Steps[start], start), Field: "depends_on",
			Message: "cycle: " + strings.Join(names, " -> "),
			Hint:    "each step depends on the next, so none of them can start; remove one of these dependencies"})
	}
}

// maxCycleShown bounds the steps of a cycle named in its message.
const maxCycleShown = 30

const nameRules = "lowercase letters, digits and _, starting with a letter, at most 63 characters"

func atLine(n int) string {
	if n <= 0 {
		return ""
	}
	return " (line " + strconv.Itoa(n) + ")"
}

// DomainEventQueueSuffix ends the name of a namespace's durable
// domain-event queue, {namespace}_domain_events (tasker-core's name). A
// namespace may not end with it: see checkTemplate.
const DomainEventQueueSuffix = "_domain_events"

// checkName checks a template name or namespace.
func (c *checker) checkName(v, field, step string, line int, example, extra string) {
	if v == "" {
		c.add(Problem{Line: line, Step: step, Field: field, Message: "missing " + field,
			Hint: "add " + example + " (" + nameRules + ")" + extra})
		return
	}
	if why := badName(v); why != "" {
		c.add(Problem{Line: line, Step: step, Field: field,
			Message: fmt.Sprintf("invalid %s %q: %s", field, v, why), Hint: "use " + nameRules + extra})
	}
}

// badName says why s does not match namePattern, or "" when it does.
func badName(s string) string {
	if namePattern.MatchString(s) {
		return ""
	}
	if len(s) > 63 {
		return fmt.Sprintf("%d characters, more than 63", len(s))
	}
	if c := s[0]; c < 'a' || c > 'z' {
		return fmt.Sprintf("starts with %q, not a lowercase letter", rune(c))
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return fmt.Sprintf("contains %q", r)
		}
	}
	return "does not match " + namePattern.String()
}

func (c *checker) checkVersion(v string, line int) {
	const hint = "use a semantic version MAJOR.MINOR.PATCH with an optional -prerelease, " +
		`e.g. 1.0.0 or 2.1.3-beta.1; quote it if YAML reads it as a number ("1.0")`
	switch {
	case v == "":
		c.add(Problem{Line: line, Field: "version", Message: "missing version", Hint: "add version: 1.0.0"})
	case len(v) > MaxVersionLength:
		c.add(Problem{Line: line, Field: "version",
			Message: fmt.Sprintf("version has %d characters, more than %d", len(v), MaxVersionLength), Hint: hint})
	case strings.Contains(v, "+"):
		c.add(Problem{Line: line, Field: "version",
			Message: fmt.Sprintf("version %q has build metadata (+...), which is not supported", v),
			Hint:    "drop the +... part; versions differing only in build metadata would be equal"})
	default:
		if _, ok := parseSemver(v); !ok {
			c.add(Problem{Line: line, Field: "version", Message: fmt.Sprintf("invalid version %q", v), Hint: hint})
		}
	}
}

// findCycles returns one cycle, as step positions in dependency order, per
// strongly connected component with more than one step. Self-loops are not
// in edges. The result is deterministic: components and paths are explored
// in file order.
func findCycles(edges [][]int) [][]int {
	n := len(edges)
	index := make([]int, n)
	low := make([]int, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	var comps [][]int
	next := 0
	// Iterative Tarjan: frames hold the node and the next edge to follow.
	type frame struct{ v, e int }
	for root := 0; root < n; root++ {
		if index[root] >= 0 {
			continue
		}
		frames := []frame{{root, 0}}
		index[root], low[root] = next, next
		next++
		stack = append(stack, root)
		onStack[root] = true
		for len(frames) > 0 {
			f := &frames[len(frames)-1]
			if f.e < len(edges[f.v]) {
				w := edges[f.v][f.e]
				f.e++
				if index[w] < 0 {
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					onStack[w] = true
					frames = append(frames, frame{w, 0})
				} else if onStack[w] {
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			frames = frames[:len(frames)-1]
			if len(frames) > 0 {
				u := frames[len(frames)-1].v
				low[u] = min(low[u], low[v])
			}
			if low[v] == index[v] {
				var comp []int
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp = append(comp, w)
					if w == v {
						break
					}
				}
				if len(comp) > 1 {
					comps = append(comps, comp)
				}
			}
		}
	}
	var cycles [][]int
	for _, comp := range comps {
		in := make(map[int]bool, len(comp))
		for _, v := range comp {
			in[v] = true
		}
		start := slices.Min(comp)
		// Breadth-first from start inside the component: the shortest way
		// back to start is the cycle.
		parent := map[int]int{start: -1}
		queue := []int{start}
		end := -1
	search:
		for len(queue) > 0 {
			v := queue[0]
			queue = queue[1:]
			for _, w := range edges[v] {
				if w == start {
					end = v
					break search
				}
				if _, seen := parent[w]; !seen && in[w] {
					parent[w] = v
					queue = append(queue, w)
				}
			}
		}
		if end < 0 {
			continue // cannot happen in a component of two or more steps
		}
		var cyc []int
		for v := end; v >= 0; v = parent[v] {
			cyc = append(cyc, v)
		}
		slices.Reverse(cyc)
		cycles = append(cycles, cyc)
	}
	slices.SortFunc(cycles, func(a, b []int) int { return a[0] - b[0] })
	return cycles
}

// listNames joins names for a message, eliding after maxListedInErrors.
func listNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	if len(names) <= maxListedInErrors {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:maxListedInErrors], ", ") +
		fmt.Sprintf(", and %d more", len(names)-maxListedInErrors)
}

// suggest returns the candidate closest to s by edit distance when it is
// close enough to be a likely typo, else "".
func suggest(s string, candidates []string) string {
	if len(s) > 64 {
		return ""
	}
	best, bestD := "", 0
	for _, c := range candidates {
		if len(c) > 64 || len(c)-len(s) > 3 || len(s)-len(c) > 3 {
			continue // too different to be a typo
		}
		d := editDistance(s, c)
		if best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || bestD == 0 || bestD > max(1, min(len(s), len(best))/3) {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
