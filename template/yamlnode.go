package template

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

type yamlNode = yaml.Node

const (
	mappingKind  = yaml.MappingNode
	sequenceKind = yaml.SequenceNode
	scalarKind   = yaml.ScalarNode
)

// The shapes the strict decoder fills. Leaves are scalar or list, which
// record what they were given instead of failing, so that one bad value does
// not hide the others.
type rawTemplate struct {
	Name          scalar       `yaml:"name"`
	Namespace     scalar       `yaml:"namespace"`
	Version       scalar       `yaml:"version"`
	Description   scalar       `yaml:"description"`
	ContextSchema yaml.Node    `yaml:"context_schema"` // read from the node tree
	Defaults      *rawDefaults `yaml:"defaults"`
	Steps         []rawStep    `yaml:"steps"`
	// Read from the node tree (templateExtras).
	Metadata           yaml.Node `yaml:"metadata"`
	SystemDependencies yaml.Node `yaml:"system_dependencies"`
	DomainEvents       yaml.Node `yaml:"domain_events"`
	Lifecycle          yaml.Node `yaml:"lifecycle"`
	IdentityStrategy   yaml.Node `yaml:"identity_strategy"`
}

type rawDefaults struct {
	Retry   *rawRetry `yaml:"retry"`
	Timeout scalar    `yaml:"timeout"`
}

type rawStep struct {
	Name        scalar    `yaml:"name"`
	Handler     scalar    `yaml:"handler"`
	Description scalar    `yaml:"description"`
	DependsOn   list      `yaml:"depends_on"`
	Retry       *rawRetry `yaml:"retry"`
	Timeout     scalar    `yaml:"timeout"`
	// Read from the node tree (stepExtras, ownStep).
	Type             yaml.Node `yaml:"type"`
	Method           yaml.Node `yaml:"method"`
	Resolver         yaml.Node `yaml:"resolver"`
	Config           yaml.Node `yaml:"config"`
	SystemDependency yaml.Node `yaml:"system_dependency"`
	ResultSchema     yaml.Node `yaml:"result_schema"`
	PublishesEvents  yaml.Node `yaml:"publishes_events"`
	BatchConfig      yaml.Node `yaml:"batch_config"`
}

type rawRetry struct {
	Retryable   scalar `yaml:"retryable"`
	MaxAttempts scalar `yaml:"max_attempts"`
	Backoff     scalar `yaml:"backoff"`
	Base        scalar `yaml:"base"`
	Cap         scalar `yaml:"cap"`
	Jitter      scalar `yaml:"jitter"`
}

var (
	templateKeys = []string{"name", "namespace", "version", "description", "context_schema", "defaults", "steps",
		"metadata", "system_dependencies", "domain_events", "lifecycle", "identity_strategy"}
	defaultsKeys = []string{"retry", "timeout"}
	stepKeys     = []string{"name", "handler", "description", "depends_on", "retry", "timeout",
		"type", "method", "resolver", "config", "system_dependency", "result_schema", "publishes_events", "batch_config"}
	retryKeys = []string{"retryable", "max_attempts", "backoff", "base", "cap", "jitter"}

	// coreKeys are tasker-core's names, met in a tasker document: what to
	// write instead.
	coreKeys = map[string]string{
		"namespace_name":  "write namespace: instead (or write the whole file in the tasker-core dialect)",
		"input_schema":    "write the schema under context_schema instead",
		"environments":    "the tasker dialect has no environments: write the values for this process, or use the tasker-core dialect",
		"dependencies":    "write depends_on: instead",
		"step_type":       "write type: instead",
		"timeout_seconds": "write timeout: 30s (a duration) instead",
		"initialization":  "write the step's configuration under config instead",
		"callable":        "write handler: <name> instead",
		"backoff_base_ms": "write base: 100ms (a duration) instead",
		"max_backoff_ms":  "write cap: 30s (a duration) instead",
	}
)

// scalar is one YAML value as written. A null leaves it unset.
type scalar struct {
	set   bool
	kind  yaml.Kind
	tag   string
	value string
	line  int
	node  *yaml.Node
}

func (s *scalar) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	*s = scalar{set: true, kind: n.Kind, tag: n.ShortTag(), value: n.Value, line: n.Line, node: n}
	return nil
}

// list is a YAML sequence of scalars as written.
type list struct {
	set   bool
	kind  yaml.Kind
	line  int
	node  *yaml.Node
	items []scalar
}

func (l *list) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	*l = list{set: true, kind: n.Kind, line: n.Line, node: n}
	if n.Kind == yaml.SequenceNode {
		for _, it := range n.Content {
			var s scalar
			_ = s.UnmarshalYAML(it)
			l.items = append(l.items, s)
		}
	}
	return nil
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// kindName describes a node for messages: "mapping", "list", "number", ...
func kindName(n *yaml.Node) string {
	n = resolve(n)
	if n == nil {
		return "empty value"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "empty value"
		case "!!int", "!!float":
			return "number"
		case "!!bool":
			return "boolean"
		}
		return "string"
	}
	return "value"
}

var lineRE = regexp.MustCompile(`line (\d+)`)

// decode parses data twice: into a node tree, for structure and line
// numbers, and with the strict decoder, for values and unknown keys. ok is
// false when the YAML itself is malformed; the problem is then recorded.
func (p *parser) decode(data []byte) (doc *yaml.Node, raw *rawTemplate, decodeErrs []string, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			p.add(Problem{Message: fmt.Sprintf("the YAML parser failed: %v", r),
				Hint: "simplify the document; this is a bug in the YAML library"})
			doc, raw, decodeErrs, ok = nil, nil, nil, false
		}
	}()
	if len(data) > MaxFileSize {
		p.add(Problem{Message: fmt.Sprintf("%d bytes, more than the limit of %d", len(data), MaxFileSize),
			Hint: "a template should be far smaller; split it"})
		return nil, nil, nil, false
	}
	doc = &yaml.Node{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(Problem{Message: "the document is empty",
				Hint: "a template needs at least name, namespace, version and steps"})
		} else {
			p.syntax(err)
		}
		return nil, nil, nil, false
	}
	if line, n := largestMapping(doc); n > maxMappingKeys {
		p.add(Problem{Line: line, Message: fmt.Sprintf("a mapping with %d keys, more than the limit of %d", n, maxMappingKeys),
			Hint: "a template needs far fewer keys; check for generated or pasted content"})
		return nil, nil, nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.add(Problem{Line: extra.Line, Message: "the file holds more than one YAML document",
			Hint: "keep one template per file; remove the second '---' and what follows"})
		return nil, nil, nil, false
	} else if !errors.Is(err, io.EOF) {
		p.syntax(err)
		return nil, nil, nil, false
	}
	if p.detect(doc) {
		return doc, nil, nil, true // read from the node tree alone (parseCore)
	}
	raw = &rawTemplate{}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(raw); err != nil {
		var te *yaml.TypeError
		switch {
		case errors.As(err, &te):
			decodeErrs = te.Errors
		case errors.Is(err, io.EOF):
		default:
			p.syntax(err)
			return nil, nil, nil, false
		}
	}
	return doc, raw, decodeErrs, true
}

// maxMappingKeys bounds the keys of one mapping: the YAML library checks
// for duplicate keys in quadratic time.
const maxMappingKeys = 5000

// largestMapping returns the line and size of the mapping with the most keys,
// walking the tree without following aliases.
func largestMapping(doc *yaml.Node) (line, keys int) {
	stack := []*yaml.Node{doc}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Kind == yaml.MappingNode && len(n.Content)/2 > keys {
			line, keys = n.Line, len(n.Content)/2
		}
		stack = append(stack, n.Content...)
	}
	return line, keys
}

func (p *parser) syntax(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = strings.TrimSpace(strings.Replace(msg, m[0]+":", "", 1))
	}
	p.add(Problem{Line: line, Message: "malformed YAML: " + msg,
		Hint: "check indentation, colons and brackets around this line"})
}

var (
	unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)
	duplicateKeyRE = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
	cannotRE       = regexp.MustCompile("^line (\\d+): cannot unmarshal (\\S+)(?: `(.*)`)? into (\\S+)$")
)

// translate turns one message of the strict decoder into a Problem.
func (p *parser) translate(e string) {
	l := p.loc
	if m := unknownFieldRE.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		key, typ := m[2], m[3]
		step := l.stepAt(line)
		var prefix string
		var known []string
		where := "here"
		switch {
		case strings.HasSuffix(typ, "rawDefaults"):
			prefix, known, where, step = "defaults.", defaultsKeys, "in defaults", -1
		case strings.HasSuffix(typ, "rawStep"):
			known, where = stepKeys, "in a step"
		case strings.HasSuffix(typ, "rawRetry"):
			prefix, known, where = "retry.", retryKeys, "in retry"
			if step < 0 {
				prefix = "defaults.retry."
			}
		default:
			known, where, step = templateKeys, "at the top level", -1
		}
		hint := "known keys " + where + ": " + strings.Join(known, ", ")
		if s := suggest(key, known); s != "" {
			hint = fmt.Sprintf("did you mean %q? ", s) + hint
		}
		msg := fmt.Sprintf("unknown key %q", key)
		if instead, ok := coreKeys[key]; ok {
			msg, hint = p.mixed(key), instead
		}
		p.add(Problem{Line: line, Step: l.label(step), Field: prefix + key, Message: msg, Hint: hint})
		return
	}
	if m := duplicateKeyRE.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		key, err := strconv.Unquote(m[2])
		if err != nil {
			key = m[2]
		}
		step := l.stepAt(line)
		p.add(Problem{Line: line, Step: l.label(step), Field: l.keyPath(step, key, line),
			Message: fmt.Sprintf("duplicate key %q (first at line %s)", key, m[3]),
			Hint:    "a key may appear once per mapping; keep one of them"})
		return
	}
	if m := cannotRE.FindStringSubmatch(e); m != nil {
		line, _ := strconv.Atoi(m[1])
		typ := m[4]
		got := "a " + strings.TrimPrefix(m[2], "!!")
		switch m[2] {
		case "!!map":
			got = "a mapping"
		case "!!seq":
			got = "a list"
		case "!!str":
			got = "the string"
		case "!!int", "!!float":
			got = "the number"
		case "!!bool":
			got = "the boolean"
		}
		if m[3] != "" {
			got += " " + strconv.Quote(m[3])
		}
		step := l.stepAt(line)
		switch {
		case strings.Contains(typ, "rawTemplate"), strings.Contains(typ, "rawStep"):
			return // the parser reports these from the node tree
		case strings.HasSuffix(typ, "rawDefaults"):
			p.add(Problem{Line: line, Field: "defaults", Message: "got " + got + ", want a mapping",
				Hint: "write defaults as a mapping with retry and/or timeout"})
		case strings.HasSuffix(typ, "rawRetry"):
			field := "retry"
			if step < 0 {
				field = "defaults.retry"
			}
			p.add(Problem{Line: line, Step: l.label(step), Field: field, Message: "got " + got + ", want a mapping",
				Hint: "write retry as a mapping of " + strings.Join(retryKeys, ", ")})
		default:
			p.add(Problem{Line: line, Step: l.label(step), Message: "got " + got + ", want " + typ,
				Hint: "check the value's type"})
		}
		return
	}
	line := 0
	if m := lineRE.FindStringSubmatch(e); m != nil {
		line, _ = strconv.Atoi(m[1])
	}
	p.add(Problem{Line: line, Message: e, Hint: "check the value's type"})
}

// locator finds where things are in the node tree, for line numbers, and
// what shape the document has.
type locator struct {
	doc         *yaml.Node // the document's content, aliases resolved
	docLine     int
	empty       bool
	root        *yaml.Node // the top-level mapping; nil when the document is not one
	rootDupKeys bool
	stepsNode   *yaml.Node // the value of steps, nil when absent or null
	stepsLine   int
	stepsEnd    int // the line of the next top-level key after steps
	stepsBroken bool
	steps       []*yaml.Node // step nodes, aliases resolved
	brokenStep  []bool       // the strict decoder dropped it: not a mapping, or duplicate keys
	schemaNode  *yaml.Node
}

func newLocator(doc *yaml.Node) *locator {
	l := &locator{stepsEnd: math.MaxInt}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		l.doc = resolve(doc.Content[0])
	}
	if l.doc == nil || (l.doc.Kind == yaml.ScalarNode && l.doc.ShortTag() == "!!null") {
		l.empty = true
		return l
	}
	l.docLine = l.doc.Line
	if l.doc.Kind != yaml.MappingNode {
		return l
	}
	l.root = l.doc
	l.rootDupKeys = hasDupKeys(l.root)
	for i := 0; i+1 < len(l.root.Content); i += 2 {
		k, v := l.root.Content[i], resolve(l.root.Content[i+1])
		switch k.Value {
		case "steps":
			l.stepsLine = k.Line
			if i+2 < len(l.root.Content) {
				l.stepsEnd = l.root.Content[i+2].Line
			}
			if v == nil || (v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null") {
				continue
			}
			l.stepsNode = v
			if v.Kind != yaml.SequenceNode {
				l.stepsBroken = true
				continue
			}
			for _, it := range v.Content {
				n := resolve(it)
				l.steps = append(l.steps, n)
				l.brokenStep = append(l.brokenStep, n == nil || n.Kind != yaml.MappingNode || hasDupKeys(n))
			}
		case "context_schema":
			if v != nil && !(v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null") {
				l.schemaNode = v
			}
		}
	}
	return l
}

// hasDupKeys mirrors the YAML library's check, after which it leaves the
// mapping undecoded.
func hasDupKeys(n *yaml.Node) bool {
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		id := fmt.Sprintf("%d/%s", k.Kind, k.Value)
		if seen[id] {
			return true
		}
		seen[id] = true
	}
	return false
}

// keptSteps counts the steps the strict decoder keeps.
func (l *locator) keptSteps() int {
	n := 0
	for _, b := range l.brokenStep {
		if !b {
			n++
		}
	}
	return n
}

// stepAt returns the index of the step whose text holds line, or -1.
func (l *locator) stepAt(line int) int {
	if line >= l.stepsEnd {
		return -1
	}
	at := -1
	for i, s := range l.steps {
		if s.Line <= line && s.Line >= l.stepsLine {
			at = i
		}
	}
	return at
}

// label names step i for problems: its name when that is valid, else its
// position ("#3"); "" for i < 0.
func (l *locator) label(i int) string {
	if i < 0 {
		return ""
	}
	if i < len(l.steps) {
		if v := lookup(l.steps[i], "name"); v != nil && v.Kind == yaml.ScalarNode && namePattern.MatchString(v.Value) {
			return v.Value
		}
	}
	return positionLabel(i)
}

// lookup returns the value of key in mapping n, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return resolve(n.Content[i+1])
		}
	}
	return nil
}

// line returns the line of the deepest key of path found under step i (the
// template when i < 0), or of the step itself; 0 when unknown.
func (l *locator) line(i int, path ...string) int {
	if l == nil {
		return 0
	}
	n := l.root
	if i >= 0 {
		if i >= len(l.steps) {
			return 0
		}
		n = l.steps[i]
	}
	if n == nil {
		return 0
	}
	best := n.Line
	for _, key := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			break
		}
		var next *yaml.Node
		for _, k := range []string{key, aliases[key]} {
			for j := 0; k != "" && next == nil && j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == k {
					best = n.Content[j].Line
					next = resolve(n.Content[j+1])
				}
			}
			if next != nil {
				break
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return best
}

// depsKey returns the key step i lists its dependencies under:
// dependencies (tasker-core) or depends_on.
func (l *locator) depsKey(i int) string {
	if l != nil && i >= 0 && i < len(l.steps) && lookup(l.steps[i], "dependencies") != nil {
		return "dependencies"
	}
	return "depends_on"
}

// aliases are the tasker-core names of keys, tried when the tasker name is
// not in the document.
var aliases = map[string]string{
	"namespace": "namespace_name", "context_schema": "input_schema", "timeout": "timeout_seconds", "type": "step_type",
}

// item returns the line of the j-th entry of the list under field of step i.
func (l *locator) item(i int, field string, j int) int {
	if l == nil || i < 0 || i >= len(l.steps) {
		return 0
	}
	v := lookup(l.steps[i], field)
	if v == nil || v.Kind != yaml.SequenceNode || j >= len(v.Content) {
		return l.line(i, field)
	}
	return v.Content[j].Line
}

// schemaLine follows a JSON pointer's tokens into the context_schema node.
func (l *locator) schemaLine(n *yaml.Node, ptr []string) int {
	best := n.Line
	for _, tok := range ptr {
		n = resolve(n)
		if n == nil {
			break
		}
		switch n.Kind {
		case yaml.MappingNode:
			v := lookup(n, tok)
			if v == nil {
				return best
			}
			n = v
		case yaml.SequenceNode:
			k, err := strconv.Atoi(tok)
			if err != nil || k < 0 || k >= len(n.Content) {
				return best
			}
			n = n.Content[k]
		default:
			return best
		}
		best = n.Line
	}
	return best
}

// keyPath returns the dotted path, from step i (the template when i < 0),
// of the key called key on line, e.g. "retry.max_attempts"; key itself when
// it is not found.
func (l *locator) keyPath(i int, key string, line int) string {
	n := l.root
	if i >= 0 && i < len(l.steps) {
		n = l.steps[i]
	}
	var path []string
	var walk func(n *yaml.Node, depth int) bool
	walk = func(n *yaml.Node, depth int) bool {
		if n == nil || n.Kind != yaml.MappingNode || depth > 3 {
			return false
		}
		for j := 0; j+1 < len(n.Content); j += 2 {
			k := n.Content[j]
			if k.Value == key && k.Line == line {
				path = append(path, key)
				return true
			}
			if i < 0 && depth == 0 && k.Value == "steps" {
				continue
			}
			path = append(path, k.Value)
			if walk(n.Content[j+1], depth+1) {
				return true
			}
			path = path[:len(path)-1]
		}
		return false
	}
	if walk(n, 0) {
		return strings.Join(path, ".")
	}
	return key
}
