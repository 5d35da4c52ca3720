package template

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file reads values from the YAML node tree, for the tasker-core
// dialect and for the keys both dialects share beyond the original format
// (step types, batch_config, publishes_events, ...).

// entry is one key of a mapping as written.
type entry struct {
	key  string
	line int        // the key's line
	val  *yaml.Node // the value, aliases resolved; nil for a null value
}

// null reports whether a node is absent or an explicit null.
func null(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// mapSpec says which keys a mapping may hold.
type mapSpec struct {
	where string   // "in a step", for hints
	known []string // the keys of this dialect
	// foreign maps a key of the other dialect to what to write instead:
	// it is an error, the file mixing the two.
	foreign map[string]string
	// free: keys not known are kept without a word (metadata in the
	// tasker dialect).
	free bool
	// kept: keys not known are kept, with a warning in a tasker-core
	// document (its metadata).
	kept bool
}

// at locates a field: the step (-1 for the template) and its label, and the
// dotted prefix of the keys read, e.g. "retry.".
type at struct {
	step   int
	label  string
	prefix string
}

func (a at) field(key string) string { return a.prefix + key }

func (a at) under(key string) at {
	return at{step: a.step, label: a.label, prefix: a.prefix + key + "."}
}

// entries returns the keys of mapping n without reporting anything; merge
// keys (<<) are expanded, a key written in n winning over a merged one.
func entries(n *yaml.Node) []entry {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out, merged []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k == nil {
			continue
		}
		v := resolve(n.Content[i+1])
		if k.ShortTag() == "!!merge" {
			srcs := []*yaml.Node{v}
			if v != nil && v.Kind == yaml.SequenceNode {
				srcs = v.Content
			}
			for _, src := range srcs {
				merged = append(merged, entries(src)...)
			}
			continue
		}
		if null(v) {
			v = nil
		}
		out = append(out, entry{key: k.Value, line: n.Content[i].Line, val: v})
	}
	for _, m := range merged {
		if !slices.ContainsFunc(out, func(e entry) bool { return e.key == m.key }) {
			out = append(out, m)
		}
	}
	return out
}

// fields reads mapping n (the value of the key at a.prefix): a value that
// is not a mapping, duplicate keys and keys of the other dialect are
// errors; unknown keys are warnings in a tasker-core document and errors in
// a tasker one. A null n is an empty mapping. ok is false when n is not a
// mapping.
func (p *parser) fields(n *yaml.Node, line int, a at, spec mapSpec) (map[string]entry, bool) {
	n = resolve(n)
	if null(n) {
		return map[string]entry{}, true
	}
	name := strings.TrimSuffix(a.prefix, ".")
	if n.Kind != yaml.MappingNode {
		p.add(Problem{Line: line, Step: a.label, Field: name,
			Message: "got " + article(kindName(n)) + ", want a mapping",
			Hint:    "write " + lastKey(name) + " as a mapping of " + strings.Join(spec.known, ", ")})
		return nil, false
	}
	out := make(map[string]entry, len(n.Content)/2)
	for _, e := range entries(n) {
		if first, dup := out[e.key]; dup {
			p.add(Problem{Line: e.line, Step: a.label, Field: a.field(e.key),
				Message: fmt.Sprintf("duplicate key %q (first at line %d)", e.key, first.line),
				Hint:    "a key may appear once per mapping; keep one of them"})
			continue
		}
		out[e.key] = e
		if slices.Contains(spec.known, e.key) {
			continue
		}
		if instead, ok := spec.foreign[e.key]; ok {
			p.add(Problem{Line: e.line, Step: a.label, Field: a.field(e.key),
				Message: p.mixed(e.key), Hint: instead})
			delete(out, e.key)
			continue
		}
		if spec.free {
			continue
		}
		if spec.kept {
			if p.core {
				p.warn(Problem{Line: e.line, Step: a.label, Field: a.field(e.key),
					Message: fmt.Sprintf("unknown key %q: tasker-core ignores it; it is kept as written", e.key),
					Hint:    "known keys " + spec.where + ": " + strings.Join(spec.known, ", ")})
			}
			continue
		}
		delete(out, e.key)
		hint := "known keys " + spec.where + ": " + strings.Join(spec.known, ", ")
		if s := suggest(e.key, spec.known); s != "" {
			hint = fmt.Sprintf("did you mean %q? ", s) + hint
		}
		pr := Problem{Line: e.line, Step: a.label, Field: a.field(e.key), Message: fmt.Sprintf("unknown key %q", e.key), Hint: hint}
		if p.core {
			pr.Message += " is ignored (tasker-core ignores keys it does not know)"
			p.warn(pr)
		} else {
			p.add(pr)
		}
	}
	return out, true
}

// mixed says that key belongs to the other dialect than the document's.
func (p *parser) mixed(key string) string {
	if p.core {
		return fmt.Sprintf("%q is a key of the tasker dialect, but this document is a tasker-core template (%s): a document may not mix the two", key, p.why)
	}
	return fmt.Sprintf("%q is a key of the tasker-core dialect, but this document is in the tasker dialect (no namespace_name, and every handler is a name): a document may not mix the two", key)
}

func lastKey(path string) string { return path[strings.LastIndex(path, ".")+1:] }

// scalarOf returns the scalar an entry holds; unset for a null.
func scalarOf(e entry) scalar {
	if e.val == nil {
		return scalar{}
	}
	var s scalar
	_ = s.UnmarshalYAML(e.val)
	return s
}

func (a at) where(e entry) where { return where{line: e.line, label: a.label, field: a.field(e.key)} }

// text reads a string value; "" and false when unset or not a single value.
func (p *parser) text(f map[string]entry, key string, a at) (string, bool) {
	e, ok := f[key]
	if !ok {
		return "", false
	}
	s := scalarOf(e)
	if !s.set || p.notScalar(s, a.where(e), "a string") {
		return "", false
	}
	return s.value, true
}

// whole reads a whole number.
func (p *parser) whole(f map[string]entry, key string, a at) (int, bool) {
	e, ok := f[key]
	if !ok {
		return 0, false
	}
	return p.intField(scalarOf(e), a.where(e))
}

// boolean reads true or false.
func (p *parser) boolean(f map[string]entry, key string, a at) (bool, bool) {
	e, ok := f[key]
	if !ok {
		return false, false
	}
	return p.boolField(scalarOf(e), a.where(e))
}

// oneOf reads a value that must be one of valid; "" when unset or invalid.
func oneOf[T ~string](p *parser, f map[string]entry, key string, a at, valid []T) (T, bool) {
	v, ok := p.text(f, key, a)
	if !ok {
		return "", false
	}
	if slices.Contains(valid, T(v)) {
		return T(v), true
	}
	names := make([]string, len(valid))
	for i, x := range valid {
		names[i] = string(x)
	}
	hint := "use one of " + strings.Join(names, ", ")
	if s := suggest(v, names); s != "" {
		hint = fmt.Sprintf("did you mean %q? ", s) + hint
	}
	p.add(Problem{Line: f[key].line, Step: a.label, Field: a.field(key),
		Message: fmt.Sprintf("unknown %s %q", strings.ReplaceAll(key, "_", " "), v), Hint: hint})
	return "", false
}

// texts reads a list of strings; nil and false when unset or broken.
func (p *parser) texts(f map[string]entry, key string, a at, example string) ([]string, bool) {
	e, ok := f[key]
	if !ok || e.val == nil {
		return nil, false
	}
	if e.val.Kind != yaml.SequenceNode {
		p.add(Problem{Line: e.line, Step: a.label, Field: a.field(key),
			Message: "got " + article(kindName(e.val)) + ", want a list", Hint: "write " + key + ": " + example})
		return nil, false
	}
	out := make([]string, 0, len(e.val.Content))
	good := true
	for _, it := range e.val.Content {
		it = resolve(it)
		if it == nil || it.Kind != yaml.ScalarNode || it.ShortTag() == "!!null" {
			p.add(Problem{Line: it.Line, Step: a.label, Field: a.field(key),
				Message: "got " + article(kindName(it)) + " in the list, want a string", Hint: "write " + key + ": " + example})
			good = false
			continue
		}
		out = append(out, it.Value)
	}
	return out, good
}

// jsonOf converts a value to canonical JSON (keys sorted, no spaces);
// object requires a mapping. nil and false when unset or broken.
func (p *parser) jsonOf(f map[string]entry, key string, a at, object bool) (json.RawMessage, bool) {
	e, ok := f[key]
	if !ok || e.val == nil {
		return nil, false
	}
	if object && e.val.Kind != yaml.MappingNode {
		p.add(Problem{Line: e.line, Step: a.label, Field: a.field(key),
			Message: "got " + article(kindName(e.val)) + ", want a mapping", Hint: "write " + key + " as a mapping of keys to values"})
		return nil, false
	}
	v, line, err := nodeToJSON(e.val)
	if err == nil {
		var b []byte
		if b, err = json.Marshal(v); err == nil {
			return b, true
		}
	}
	if line == 0 {
		line = e.line
	}
	p.add(Problem{Line: line, Step: a.label, Field: a.field(key), Message: "not JSON: " + err.Error(),
		Hint: "write JSON values only: strings, finite numbers, booleans, null, lists and mappings"})
	return nil, false
}

// schemaOf reads a JSON Schema and compiles it, to report a broken one.
func (p *parser) schemaOf(f map[string]entry, key string, a at) (json.RawMessage, bool) {
	js, ok := p.jsonOf(f, key, a, false)
	if !ok {
		return nil, false
	}
	node := f[key].val
	if _, prob := compileSchema(js, func(ptr []string) int { return p.loc.schemaLine(node, ptr) }); prob != nil {
		prob.Field, prob.Step = a.field(key), a.label
		if prob.Line == 0 {
			prob.Line = f[key].line
		}
		p.add(*prob)
		return nil, false
	}
	return js, true
}
