package template

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/tasker-go/tasker/taskertype"
	"go.yaml.in/yaml/v3"
)

// The tasker-core dialect: tasker-core's TaskTemplate, read from the node
// tree. Keys it does not know are warnings (tasker-core's parser ignores
// them); keys of the tasker dialect are errors (the file mixes the two).

var (
	coreTemplateKeys = []string{"name", "namespace_name", "version", "description", "metadata", "system_dependencies",
		"domain_events", "input_schema", "steps", "environments", "lifecycle", "identity_strategy"}
	coreStepKeys = []string{"name", "description", "handler", "type", "step_type", "dependencies", "depends_on",
		"retry", "timeout_seconds", "publishes_events", "batch_config", "system_dependency", "result_schema"}
	coreHandlerKeys  = []string{"callable", "method", "resolver", "initialization"}
	coreRetryKeys    = []string{"retryable", "max_attempts", "backoff", "backoff_base_ms", "max_backoff_ms"}
	coreEnvKeys      = []string{"steps"}
	coreOverrideKeys = []string{"name", "handler", "timeout_seconds", "retry"}

	coreTemplateForeign = map[string]string{
		"namespace":      "write namespace_name: instead",
		"context_schema": "write the schema under input_schema instead",
		"defaults":       "tasker-core has no defaults section: set retry and timeout_seconds on each step, or in an environments override named ALL",
	}
	coreStepForeign = map[string]string{
		"timeout":  "write timeout_seconds: 30 (whole seconds) instead",
		"config":   "write the step's configuration under handler.initialization instead",
		"method":   "write it inside the handler: handler: {callable: ..., method: ...}",
		"resolver": "write it inside the handler: handler: {callable: ..., resolver: ...}",
	}
	coreRetryForeign = map[string]string{
		"base":   "write backoff_base_ms: 1000 (milliseconds) instead",
		"cap":    "write max_backoff_ms: 30000 (milliseconds) instead",
		"jitter": "tasker-core's retry has no jitter: remove it (the default jitter, 0.1, applies)",
	}
)

// tasker-core's retry defaults (its RetryConfiguration::default) where they
// differ from the tasker dialect's: the longest delay is 30s.
const coreDefaultCap = 30 * time.Second

// maxMillis bounds a millisecond count before it becomes a duration.
const maxMillis = int(MaxTimeout/time.Millisecond) * 1000

// detect tells the dialect of a parsed document: tasker-core when the top
// level has namespace_name or a step's handler is a mapping.
func (p *parser) detect(doc *yaml.Node) bool {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return false
	}
	root := resolve(doc.Content[0])
	if root == nil || root.Kind != yaml.MappingNode {
		return false
	}
	for _, e := range entries(root) {
		if e.key == "namespace_name" {
			p.core, p.why = true, fmt.Sprintf("namespace_name at line %d", e.line)
			return true
		}
	}
	steps := lookup(root, "steps")
	if steps == nil || steps.Kind != yaml.SequenceNode {
		return false
	}
	for i, s := range steps.Content {
		if h := lookup(resolve(s), "handler"); h != nil && h.Kind == yaml.MappingNode {
			p.core, p.why = true, fmt.Sprintf("the handler of step %s at line %d is a mapping", positionLabel(i), h.Line)
			return true
		}
	}
	return false
}

// override is one entry of environments.<env>.steps.
type override struct {
	name    string
	timeout *entry // timeout_seconds
	retry   *entry
	init    *entry // handler.initialization
}

// parseCore reads a tasker-core document.
func (p *parser) parseCore() *Template {
	l := p.loc
	p.checker.core = true
	top, _ := p.fields(l.root, l.docLine, at{step: -1},
		mapSpec{where: "at the top level", known: coreTemplateKeys, foreign: coreTemplateForeign})
	t := &Template{Dialect: DialectTaskerCore}
	skip := map[string]bool{}
	a := at{step: -1}
	text := func(key, field string) string {
		v, ok := p.text(top, key, a)
		if _, present := top[key]; present && !ok && top[key].val != nil {
			skip[skipKey(-1, field)] = true
		}
		return v
	}
	t.Name = text("name", "name")
	t.Namespace = text("namespace_name", "namespace")
	if lookup(l.root, "namespace") != nil && t.Namespace == "" {
		skip[skipKey(-1, "namespace")] = true // reported as a key of the other dialect
	}
	t.Version = text("version", "version")
	t.Description = text("description", "description")

	names := map[string]bool{}
	for _, n := range l.steps {
		if v := lookup(n, "name"); v != nil && v.Kind == yaml.ScalarNode {
			names[v.Value] = true
		}
	}
	var ovs []override
	if e, ok := top["environments"]; ok && e.val != nil {
		ovs = p.environments(e, names, t)
	}

	if l.stepsBroken {
		skip["steps"] = true
		p.add(Problem{Line: l.stepsLine, Field: "steps",
			Message: "steps is a " + kindName(l.stepsNode) + ", not a list",
			Hint:    "write steps as a list: each item starts with '- name: ...'"})
	}
	t.Steps = make([]Step, 0, len(l.steps))
	for i, node := range l.steps {
		label := l.label(i)
		if node == nil || node.Kind != yaml.MappingNode {
			skip["graph"] = true
			p.add(Problem{Line: nodeLine(node, l.stepsLine), Step: label, Field: "steps",
				Message: "step " + positionLabel(i) + " is " + article(kindName(node)) + ", not a mapping",
				Hint:    "each step is a mapping with at least name and handler: {callable: ...}"})
			t.Steps = append(t.Steps, Step{})
			continue
		}
		if l.brokenStep[i] {
			skip["graph"] = true // duplicate keys: fields reports them
		}
		t.Steps = append(t.Steps, p.coreStep(i, node, ovs, skip))
	}
	l.brokenStep = make([]bool, len(l.steps)) // reported above: check the rest of every step
	p.checkTemplate(t, l, skip)
	if !skip["graph"] && !skip["steps"] && graphSound(t) {
		p.checkTypes(t, l)
	}
	if e, ok := top["input_schema"]; ok && e.val != nil {
		t.ContextSchema, t.schema = p.schema(e.val, "input_schema")
	}
	p.templateExtras(t, top)
	if len(p.problems) > 0 {
		return nil
	}
	t.index = make(map[string]int, len(t.Steps))
	for i := range t.Steps {
		t.index[t.Steps[i].Name] = i
	}
	return t
}

func nodeLine(n *yaml.Node, fallback int) int {
	if n != nil {
		return n.Line
	}
	return fallback
}

// coreStep reads step i, applying the overrides of the environment.
func (p *parser) coreStep(i int, node *yaml.Node, ovs []override, skip map[string]bool) Step {
	label := p.loc.label(i)
	a := at{step: i, label: label}
	f, _ := p.fields(node, node.Line, a, mapSpec{where: "in a step", known: coreStepKeys, foreign: coreStepForeign})
	var s Step
	str := func(key string) string {
		v, ok := p.text(f, key, a)
		if e, present := f[key]; present && !ok && e.val != nil {
			skip[skipKey(i, key)] = true
		}
		return v
	}
	s.Name = str("name")
	s.Description = str("description")

	var init *entry
	if e, ok := f["handler"]; ok && e.val != nil {
		switch e.val.Kind {
		case yaml.ScalarNode:
			skip[skipKey(i, "handler")] = true
			p.add(Problem{Line: e.line, Step: label, Field: "handler",
				Message: fmt.Sprintf("handler is a name, the tasker dialect's form, but this document is a tasker-core template (%s): a document may not mix the two", p.why),
				Hint:    fmt.Sprintf("write handler: {callable: %s}", e.val.Value)})
		default:
			ah := a.under("handler")
			if hf, ok := p.fields(e.val, e.line, ah, mapSpec{where: "in handler", known: coreHandlerKeys}); ok {
				var present bool
				if s.Handler, present = p.text(hf, "callable", ah); !present {
					skip[skipKey(i, "handler")] = true
					// Absent or null (callable: with no value): no other
					// problem names it.
					if ce, written := hf["callable"]; !written || !scalarOf(ce).set {
						p.add(Problem{Line: e.line, Step: label, Field: "handler.callable", Message: "the handler has no callable",
							Hint: "name the handler: handler: {callable: payments.validate}; a Go handler is registered under that name"})
					}
				}
				s.Method, _ = p.text(hf, "method", ah)
				s.Resolver, _ = p.text(hf, "resolver", ah)
				if ie, ok := hf["initialization"]; ok {
					init = &ie
				}
			} else {
				skip[skipKey(i, "handler")] = true
			}
		}
	}

	depKey := "dependencies"
	if de, both := f["depends_on"]; both {
		if _, ok := f["dependencies"]; ok {
			p.add(Problem{Line: de.line, Step: label, Field: "depends_on",
				Message: "both dependencies and depends_on: they name the same list (depends_on is tasker-core's alias)",
				Hint:    "keep one of them"})
			skip[skipKey(i, "depends_on")] = true
		} else {
			depKey = "depends_on"
		}
	}
	if _, both := f["step_type"]; both {
		if te, ok := f["type"]; ok {
			p.add(Problem{Line: te.line, Step: label, Field: "type",
				Message: "both type and step_type: they are the same field (step_type is tasker-core's alias)",
				Hint:    "keep one of them"})
		}
	}
	if e, ok := f[depKey]; ok && !skip[skipKey(i, "depends_on")] {
		var dl list
		if e.val != nil {
			_ = dl.UnmarshalYAML(e.val)
			dl.line = e.line
		}
		s.DependsOn = p.list(dl, i, label, skip, depKey)
	}

	// The environment's overrides, in the order written: timeout_seconds
	// and retry replace the step's own (retry whole, as tasker-core does),
	// handler.initialization is merged key by key.
	timeoutE, retryE := entryPtr(f, "timeout_seconds"), entryPtr(f, "retry")
	inits := []*entry{init}
	for _, ov := range ovs {
		if ov.name != "ALL" && ov.name != s.Name {
			continue
		}
		if ov.timeout != nil {
			timeoutE = ov.timeout
		}
		if ov.retry != nil {
			retryE = ov.retry
		}
		if ov.init != nil {
			inits = append(inits, ov.init)
		}
	}
	config, timeoutMs := p.coreConfig(inits, a)
	s.Config = config
	s.Retry, s.Timeout = p.corePolicy(retryE, timeoutE, timeoutMs, a)
	p.stepExtras(&s, f, a)
	return s
}

func entryPtr(f map[string]entry, key string) *entry {
	if e, ok := f[key]; ok && e.val != nil {
		return &e
	}
	return nil
}

// coreConfig merges handler.initialization mappings, later keys winning,
// into the step's configuration; timeoutMs is the entry of the timeout_ms
// key that won, if any.
func (p *parser) coreConfig(inits []*entry, a at) (json.RawMessage, *entry) {
	merged := map[string]any{}
	var timeoutMs *entry
	ai := a.under("handler")
	for _, e := range inits {
		if e == nil || e.val == nil {
			continue
		}
		js, ok := p.jsonOf(map[string]entry{"initialization": *e}, "initialization", ai, true)
		if !ok {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			continue
		}
		maps.Copy(merged, m)
		for _, ie := range entries(e.val) {
			if ie.key == "timeout_ms" {
				timeoutMs = &ie
			}
		}
	}
	if len(merged) == 0 {
		return nil, timeoutMs
	}
	js, err := json.Marshal(merged)
	if err != nil {
		return nil, timeoutMs
	}
	return js, timeoutMs
}

// corePolicy reads a retry mapping, timeout_seconds and
// initialization.timeout_ms into the step's policy, tasker-core's defaults
// filling what they leave out, and reports what is out of range.
func (p *parser) corePolicy(retryE, timeoutE, timeoutMs *entry, a at) (taskertype.RetryPolicy, time.Duration) {
	var own policyFields
	lines := map[string]int{}
	names := map[string]string{}
	set := func(field string, e entry, name string) { lines[field], names[field] = e.line, a.field(name) }
	if retryE != nil {
		ar := a.under("retry")
		if m, ok := p.fields(retryE.val, retryE.line, ar, mapSpec{where: "in retry", known: coreRetryKeys, foreign: coreRetryForeign}); ok {
			if v, ok := p.boolean(m, "retryable", ar); ok {
				own.retryable = &v
				set("retry.retryable", m["retryable"], "retry.retryable")
			}
			if v, ok := p.whole(m, "max_attempts", ar); ok {
				set("retry.max_attempts", m["max_attempts"], "retry.max_attempts")
				if v == 0 {
					v = 1 // tasker-core's boundary: the first attempt runs, none after it
				}
				own.maxAttempts = &v
			}
			if e, ok := m["backoff"]; ok {
				if v, ok := p.backoffField(scalarOf(e), ar.where(e)); ok {
					own.backoff = &v
					set("retry.backoff", e, "retry.backoff")
				}
			}
			if d, ok := p.millis(m, "backoff_base_ms", ar); ok {
				own.base = &d
				set("retry.base", m["backoff_base_ms"], "retry.backoff_base_ms")
			}
			if d, ok := p.millis(m, "max_backoff_ms", ar); ok {
				own.cap = &d
				set("retry.cap", m["max_backoff_ms"], "retry.max_backoff_ms")
			}
		}
	}
	if timeoutE != nil {
		if v, ok := p.intField(scalarOf(*timeoutE), where{timeoutE.line, a.label, a.field("timeout_seconds")}); ok {
			d := time.Duration(min(max(v, -1), int(MaxTimeout/time.Second)+1)) * time.Second
			own.timeout = &d
			set("timeout", *timeoutE, "timeout_seconds")
		}
	}
	if timeoutMs != nil {
		w := where{timeoutMs.line, a.label, a.field("handler.initialization.timeout_ms")}
		if v, ok := p.intField(scalarOf(*timeoutMs), w); ok {
			d := time.Duration(min(max(v, -1), maxMillis)) * time.Millisecond
			own.timeout = &d
			set("timeout", *timeoutMs, w.field)
		}
	}
	defaults := fieldsFrom(taskertype.RetryPolicy{
		Retryable: DefaultRetryable, MaxAttempts: DefaultMaxAttempts, Backoff: DefaultBackoff,
		Base: DefaultBase, Cap: coreDefaultCap, Jitter: DefaultJitter,
	}, DefaultTimeout)
	eff := own.over(defaults)
	if own.cap == nil && own.base != nil && *own.base > coreDefaultCap {
		eff.cap = own.base // no max_backoff_ms: the delays stay at the base
	}
	p.reportPolicyAt(eff, own, a.label, coreVocab, func(field string) (int, string) {
		return lines[field], names[field]
	})
	return eff.policy()
}

// millis reads a whole number of milliseconds.
func (p *parser) millis(m map[string]entry, key string, a at) (time.Duration, bool) {
	v, ok := p.whole(m, key, a)
	if !ok {
		return 0, false
	}
	if v > maxMillis {
		p.add(Problem{Line: m[key].line, Step: a.label, Field: a.field(key),
			Message: fmt.Sprintf("%s %d is more than %d (24 hours)", key, v, maxMillis), Hint: "give milliseconds, e.g. 1000 for a second"})
		return 0, false
	}
	return time.Duration(v) * time.Millisecond, true
}

// environments reads the environments section: every environment is
// checked, and the overrides of the selected one are returned. An override
// naming no step of the template is a warning: tasker-core ignores it.
func (p *parser) environments(e entry, steps map[string]bool, t *Template) []override {
	a := at{step: -1}
	envs, ok := p.fields(e.val, e.line, a.under("environments"), mapSpec{where: "in environments", free: true})
	if !ok {
		return nil
	}
	var selected []override
	for _, env := range entries(e.val) {
		if _, kept := envs[env.key]; !kept {
			continue // a duplicate
		}
		ae := at{step: -1, prefix: "environments." + env.key + "."}
		m, ok := p.fields(env.val, env.line, ae, mapSpec{where: "in an environment", known: coreEnvKeys})
		if !ok {
			continue
		}
		chosen := env.key == p.opts.environment()
		if chosen {
			t.Environment = env.key
		}
		se, ok := m["steps"]
		if !ok {
			continue
		}
		for j, n := range p.items(se, ae, "steps") {
			ao := at{step: -1, prefix: fmt.Sprintf("%ssteps[%d].", ae.prefix, j)}
			of, ok := p.fields(n, n.Line, ao, mapSpec{where: "in a step override", known: coreOverrideKeys})
			if !ok {
				continue
			}
			ov := override{timeout: entryPtr(of, "timeout_seconds"), retry: entryPtr(of, "retry")}
			ov.name, _ = p.text(of, "name", ao)
			apply := chosen
			switch {
			case ov.name == "":
				p.add(Problem{Line: n.Line, Field: ao.field("name"), Message: "the override names no step",
					Hint: "add name: <step name>, or name: ALL for every step"})
				continue
			case ov.name != "ALL" && !steps[ov.name]:
				p.warn(Problem{Line: of["name"].line, Field: ao.field("name"),
					Message: fmt.Sprintf("no step is named %q: the override is ignored (as tasker-core ignores it)", ov.name),
					Hint:    "fix the name, or remove the override"})
				apply = false // checked below, not applied
			}
			if he, ok := of["handler"]; ok && he.val != nil {
				if hf, ok := p.fields(he.val, he.line, ao.under("handler"), mapSpec{where: "in a handler override", known: []string{"initialization"}}); ok {
					ov.init = entryPtr(hf, "initialization")
				}
			}
			if apply {
				selected = append(selected, ov)
				continue
			}
			// Not applied here: check its values all the same.
			probe := &parser{checker: checker{source: p.source, core: true}, loc: p.loc, core: true, why: p.why, opts: p.opts}
			probe.coreConfig([]*entry{ov.init}, ao)
			probe.corePolicy(ov.retry, ov.timeout, nil, ao)
			for _, pr := range probe.problems {
				p.add(pr)
			}
			for _, w := range probe.warnings {
				p.warn(w)
			}
		}
	}
	return selected
}

// graphSound reports whether every dependency names a step, every name is
// unique and there is no cycle: what checkTypes relies on.
func graphSound(t *Template) bool {
	idx := make(map[string]int, len(t.Steps))
	for i := range t.Steps {
		if _, dup := idx[t.Steps[i].Name]; dup || t.Steps[i].Name == "" {
			return false
		}
		idx[t.Steps[i].Name] = i
	}
	edges := make([][]int, len(t.Steps))
	for i := range t.Steps {
		for _, d := range t.Steps[i].DependsOn {
			j, ok := idx[d]
			if !ok || j == i {
				return false
			}
			edges[i] = append(edges[i], j)
		}
	}
	return len(findCycles(edges)) == 0
}
