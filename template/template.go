package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tasker-go/tasker/taskertype"
)

// Built-in defaults, used when neither a step nor the template's defaults set
// a field.
const (
	DefaultRetryable   = true
	DefaultMaxAttempts = 3
	DefaultBackoff     = taskertype.BackoffExponential
	DefaultBase        = 1 * time.Second
	DefaultCap         = 5 * time.Minute
	DefaultJitter      = 0.1
	DefaultTimeout     = 30 * time.Second
)

// Limits a template must respect.
const (
	MaxSteps          = 1000             // steps in one template
	MaxAttemptsLimit  = 100              // the highest retry.max_attempts
	MaxTimeout        = 24 * time.Hour   // the longest step timeout
	MinTimeout        = time.Millisecond // the shortest step timeout
	MaxVersionLength  = 64               // characters in a version string
	maxListedInErrors = 20               // names listed in one message before "and N more"
)

// DefaultRetry returns the built-in retry policy.
func DefaultRetry() taskertype.RetryPolicy {
	return taskertype.RetryPolicy{
		Retryable:   DefaultRetryable,
		MaxAttempts: DefaultMaxAttempts,
		Backoff:     DefaultBackoff,
		Base:        DefaultBase,
		Cap:         DefaultCap,
		Jitter:      DefaultJitter,
	}
}

// Backoffs lists the valid backoff policies.
var Backoffs = []taskertype.Backoff{
	taskertype.BackoffExponential, taskertype.BackoffLinear,
	taskertype.BackoffFibonacci, taskertype.BackoffNone,
}

// Key identifies a template.
type Key struct{ Namespace, Name, Version string }

// String returns "namespace/name@version", or "namespace/name" when the
// version is empty.
func (k Key) String() string {
	if k.Version == "" {
		return k.Namespace + "/" + k.Name
	}
	return k.Namespace + "/" + k.Name + "@" + k.Version
}

// Template is a validated workflow definition. Treat it as read-only once
// built: registries and running tasks share it.
type Template struct {
	Name, Namespace, Version, Description string
	// ContextSchema is the JSON Schema of the task context as JSON; nil when
	// the template has none.
	ContextSchema json.RawMessage
	// Steps in file order.
	Steps []Step
	// Metadata is free-form documentation (author, tags, ...) as a JSON
	// object; nil for none.
	Metadata json.RawMessage
	// SystemDependencies names the systems the steps talk to; nil for none.
	SystemDependencies *SystemDependencies
	// DomainEvents are the template's domain event definitions.
	DomainEvents []DomainEvent
	// Lifecycle holds staleness thresholds; nil: the defaults.
	Lifecycle *Lifecycle
	// IdentityStrategy says how creating the same task twice is caught
	// (identity_strategy, in both dialects; docs/identity.md); "" when the
	// template declares none: the engine's default
	// (Config.DefaultIdentityStrategy; strict unless set).
	IdentityStrategy taskertype.IdentityStrategy

	// What follows is not part of the definition (Marshal leaves it out).

	// Source is the file path, or the source name given to Parse.
	Source string
	// Dialect is the dialect the document was written in.
	Dialect Dialect
	// Environment is the environment whose overrides (a tasker-core
	// template's environments section) were applied; "" when the document
	// had none for it. The steps hold the resolved values.
	Environment string
	// Warnings lists what the loader ignored: the keys of a tasker-core
	// template it does not know, overrides for steps that do not exist.
	Warnings []Problem

	schema *jsonschema.Schema // compiled ContextSchema; nil for none or for a hand-built template
	index  map[string]int     // step name → position; nil for a hand-built template
}

// Step is one node of a template's DAG, with defaults applied.
type Step struct {
	Name, Handler, Description string
	// Type says how orchestration treats the step; "" is StepStandard
	// (Parse leaves a standard step's Type "": use TypeOf).
	Type StepType
	// Method is the handler's entry point (tasker-core's handler.method);
	// "" for the default one.
	Method string
	// Resolver is tasker-core's handler.resolver hint, kept as written: Go
	// handlers are found by their name only.
	Resolver string
	// Config is the step's configuration, a JSON object handed to the
	// handler (taskertype.StepInput.Config); tasker-core's
	// handler.initialization. nil for none.
	Config json.RawMessage
	// DependsOn names the steps that must finish before this one runs.
	DependsOn []string
	Retry     taskertype.RetryPolicy
	Timeout   time.Duration
	// SystemDependency names the system the step talks to; "" for none.
	SystemDependency string
	// ResultSchema is the JSON Schema of the handler's result, as JSON;
	// documentation for tools, not checked at run time. nil for none.
	ResultSchema json.RawMessage
	// PublishesEvents are the domain events the step publishes.
	PublishesEvents []EventDeclaration
	// Batch configures the workers of a batchable step; nil for none.
	Batch *BatchConfig
}

// Key returns the template's identity.
func (t *Template) Key() Key {
	return Key{Namespace: t.Namespace, Name: t.Name, Version: t.Version}
}

// StepIndex returns the position of the step called name, or -1.
func (t *Template) StepIndex(name string) int {
	if t.index != nil {
		if i, ok := t.index[name]; ok {
			return i
		}
		return -1
	}
	for i := range t.Steps {
		if t.Steps[i].Name == name {
			return i
		}
	}
	return -1
}

// Handlers returns the distinct handler names of the steps, sorted.
func (t *Template) Handlers() []string {
	hs := make([]string, 0, len(t.Steps))
	for i := range t.Steps {
		hs = append(hs, t.Steps[i].Handler)
	}
	slices.Sort(hs)
	return slices.Compact(hs)
}

// Validate checks a template built in code rather than parsed: identity,
// steps, the dependency graph, retry policies, timeouts and the context
// schema. Parse already does all of this; Validate returns nil for any
// template Parse returned.
func (t *Template) Validate() error {
	c := &checker{source: t.Source}
	c.checkTemplate(t, nil, nil)
	for i := range t.Steps {
		s := &t.Steps[i]
		for _, is := range checkPolicy(s.Retry, s.Timeout, taskerVocab) {
			c.add(Problem{Step: s.Name, Field: is.fields[0], Message: is.msg, Hint: is.hint})
		}
	}
	if t.ContextSchema != nil {
		if _, p := compileSchema(t.ContextSchema, nil); p != nil {
			c.add(*p)
		}
	}
	c.checkBuiltExtras(t)
	return c.err()
}

// Parse reads one template from YAML, in either dialect, with the zero
// Loader: the overrides of DefaultEnvironment, warnings kept on the
// template. source names the data in problems, usually a file path. On
// failure the error is a *ValidationError listing every problem found.
func Parse(source string, data []byte) (*Template, error) {
	return Loader{}.Parse(source, data)
}

// Parse reads one template from YAML, in either dialect (docs/templates.md
// says how the dialect is told). See the package function Parse.
func (o Loader) Parse(source string, data []byte) (*Template, error) {
	p := &parser{checker: checker{source: source}, opts: o}
	t := p.parse(data)
	if o.Strict && len(p.warnings) > 0 {
		for _, w := range p.warnings {
			w.Hint = strictHint(w.Hint)
			p.add(w)
		}
		p.warnings = nil
		t = nil
	}
	if err := p.err(); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			ve.Warnings = p.warnings
		}
		return nil, err
	}
	t.Source = source
	t.Warnings = p.warnings
	return t, nil
}

func strictHint(h string) string {
	const s = "--strict makes this an error"
	if h == "" {
		return s
	}
	return h + " (" + s + ")"
}

// parser turns YAML into a Template, collecting problems as it goes.
type parser struct {
	checker
	loc      *locator
	opts     Loader
	core     bool      // the document is in the tasker-core dialect
	why      string    // what made it tasker-core, for messages
	warnings []Problem // what a tasker-core document carries that is ignored
}

// warn records something ignored: a warning, or an error with Strict.
func (p *parser) warn(w Problem) {
	w.Source = p.source
	if len(p.warnings) >= maxProblems {
		return
	}
	p.warnings = append(p.warnings, w)
}

func (p *parser) parse(data []byte) *Template {
	doc, raw, decodeErrs, ok := p.decode(data)
	if !ok {
		return nil
	}
	p.loc = newLocator(doc)
	l := p.loc
	if p.core && l.root != nil {
		return p.parseCore()
	}
	if l.root == nil {
		if l.empty {
			p.add(Problem{Line: l.docLine, Message: "the document is empty",
				Hint: "a template needs at least name, namespace, version and steps"})
		} else {
			p.add(Problem{Line: l.docLine, Message: "the document is a " + kindName(l.doc) + ", not a mapping",
				Hint: "a template is a mapping with the keys name, namespace, version and steps"})
		}
		return nil
	}
	for _, e := range decodeErrs {
		p.translate(e)
	}
	if l.rootDupKeys {
		// yaml leaves a mapping with duplicate keys undecoded: everything
		// else would be a false alarm.
		return nil
	}
	if l.stepsNode != nil && !l.stepsBroken && len(raw.Steps) != l.keptSteps() {
		p.add(Problem{Line: l.stepsLine, Field: "steps",
			Message: "the step list could not be decoded", Hint: "fix the problems above first"})
		return nil
	}
	skip := map[string]bool{}
	t := &Template{}
	t.Name = p.str(raw.Name, -1, "", "name", skip)
	t.Namespace = p.str(raw.Namespace, -1, "", "namespace", skip)
	t.Version = p.str(raw.Version, -1, "", "version", skip)
	t.Description = p.str(raw.Description, -1, "", "description", skip)

	defaults := fieldsFrom(DefaultRetry(), DefaultTimeout)
	if raw.Defaults != nil {
		own := p.policyFields(raw.Defaults.Retry, raw.Defaults.Timeout, -1, "defaults.")
		defaults = own.over(defaults)
		p.reportPolicy(defaults, own, -1, "", "defaults.")
	}

	if l.stepsBroken {
		skip["steps"] = true
		p.add(Problem{Line: l.stepsLine, Field: "steps",
			Message: "steps is a " + kindName(l.stepsNode) + ", not a list",
			Hint:    "write steps as a list: each item starts with '- name: ...'"})
	}
	t.Steps = make([]Step, 0, len(l.steps))
	next := 0 // next decoded raw step
	for i, node := range l.steps {
		label := l.label(i)
		if l.brokenStep[i] {
			skip["graph"] = true
			if node.Kind != mappingKind { // duplicate keys come from the decoder
				p.add(Problem{Line: node.Line, Step: label, Field: "steps",
					Message: "step " + positionLabel(i) + " is " + article(kindName(node)) + ", not a mapping",
					Hint:    "each step is a mapping with at least name and handler"})
			}
			t.Steps = append(t.Steps, Step{})
			continue
		}
		rs := &raw.Steps[next]
		next++
		s := Step{}
		s.Name = p.str(rs.Name, i, label, "name", skip)
		s.Handler = p.str(rs.Handler, i, label, "handler", skip)
		s.Description = p.str(rs.Description, i, label, "description", skip)
		s.DependsOn = p.list(rs.DependsOn, i, label, skip, "depends_on")
		own := p.policyFields(rs.Retry, rs.Timeout, i, "")
		eff := own.over(defaults)
		p.reportPolicy(eff, own, i, label, "")
		s.Retry, s.Timeout = eff.policy()
		p.ownStep(&s, i, label)
		t.Steps = append(t.Steps, s)
	}
	p.checkTemplate(t, l, skip)
	if !skip["graph"] && !skip["steps"] && graphSound(t) {
		p.checkTypes(t, l)
	}
	top := map[string]entry{}
	for _, e := range entries(l.root) {
		top[e.key] = e
	}
	p.templateExtras(t, top)
	t.Dialect = DialectTasker

	if l.schemaNode != nil {
		t.ContextSchema, t.schema = p.schema(l.schemaNode, "context_schema")
	}
	if len(p.problems) > 0 {
		return nil
	}
	t.index = make(map[string]int, len(t.Steps))
	for i := range t.Steps {
		t.index[t.Steps[i].Name] = i
	}
	return t
}

// ownStep reads the keys of step i that the strict decoder leaves to the
// node tree: type, method, resolver, config and stepExtras's.
func (p *parser) ownStep(s *Step, i int, label string) {
	f := map[string]entry{}
	for _, e := range entries(p.loc.steps[i]) {
		f[e.key] = e
	}
	a := at{step: i, label: label}
	s.Method, _ = p.text(f, "method", a)
	s.Resolver, _ = p.text(f, "resolver", a)
	if c, ok := p.jsonOf(f, "config", a, true); ok && string(c) != "{}" {
		s.Config = c
	}
	p.stepExtras(s, f, a)
}

// schema converts the context schema node (field: context_schema or
// input_schema) to JSON and compiles it.
func (p *parser) schema(n *yamlNode, field string) (json.RawMessage, *jsonschema.Schema) {
	line := p.loc.line(-1, field)
	v, at, err := nodeToJSON(n)
	if err != nil {
		if at == 0 {
			at = line
		}
		p.add(Problem{Line: at, Field: field, Message: "the schema is not JSON: " + err.Error(),
			Hint: "write the schema with JSON values only: strings, finite numbers, booleans, null, lists and mappings"})
		return nil, nil
	}
	js, err := json.Marshal(v)
	if err != nil {
		p.add(Problem{Line: line, Field: field, Message: "the schema is not JSON: " + err.Error(),
			Hint: "write the schema with JSON values only"})
		return nil, nil
	}
	sch, prob := compileSchema(js, func(ptr []string) int { return p.loc.schemaLine(n, ptr) })
	if prob != nil {
		if prob.Line == 0 {
			prob.Line = line
		}
		prob.Field = field
		p.add(*prob)
		return nil, nil
	}
	return js, sch
}

// str reads a scalar field into a string, reporting a non-scalar.
func (p *parser) str(s scalar, step int, label, field string, skip map[string]bool) string {
	if !s.set {
		return ""
	}
	if s.kind != scalarKind {
		p.add(Problem{Line: p.loc.line(step, field), Step: label, Field: field,
			Message: "got " + article(kindName(s.node)) + ", want a string",
			Hint:    "write " + field + " as a single value on the same line"})
		skip[skipKey(step, field)] = true
		return ""
	}
	return s.value
}

// list reads depends_on (field: the key as written).
func (p *parser) list(l list, step int, label string, skip map[string]bool, field string) []string {
	if !l.set {
		return nil
	}
	if l.kind != sequenceKind {
		p.add(Problem{Line: l.line, Step: label, Field: field,
			Message: "got " + article(kindName(l.node)) + ", want a list of step names",
			Hint:    "write " + field + ": [step_a, step_b]"})
		skip[skipKey(step, "depends_on")] = true
		return nil
	}
	out := make([]string, 0, len(l.items))
	for _, it := range l.items {
		if it.kind != scalarKind || it.tag == "!!null" {
			p.add(Problem{Line: it.line, Step: label, Field: field,
				Message: "got " + article(kindName(it.node)) + " in the list, want a step name",
				Hint:    "write " + field + ": [step_a, step_b]"})
			skip[skipKey(step, "depends_on")] = true
			continue
		}
		out = append(out, it.value)
	}
	return out
}

func skipKey(step int, field string) string { return fmt.Sprintf("%d/%s", step, field) }

// positionLabel names the i-th step (0-based) by its position: "#1".
func positionLabel(i int) string { return fmt.Sprintf("#%d", i+1) }

// article prefixes a noun with "a" or "an".
func article(s string) string {
	if s != "" && (s[0] == 'a' || s[0] == 'e' || s[0] == 'i' || s[0] == 'o' || s[0] == 'u') {
		return "an " + s
	}
	return "a " + s
}
