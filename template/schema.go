package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"github.com/tasker-go/tasker/taskertype"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaURL is the name the context schema is compiled under; each template
// gets its own compiler, so one name serves all.
const schemaURL = "tasker:///context_schema.json"

var printer = message.NewPrinter(language.English)

// noLoader refuses to load any $ref'd document: a template's schema must be
// self-contained, and parsing a template must not read files or the network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema %s is not available: context_schema must be self-contained", url)
}

// maxSchemaMessages bounds the schema errors listed in one message.
const maxSchemaMessages = 10

// compileSchema compiles a JSON schema. lineOf, when not nil, maps a JSON
// pointer into the schema to a line of the file.
func compileSchema(js []byte, lineOf func(ptr []string) int) (sch *jsonschema.Schema, prob *Problem) {
	const hint = "fix the schema; see https://json-schema.org/draft/2020-12 (the default draft)"
	defer func() {
		if r := recover(); r != nil {
			sch, prob = nil, &Problem{Field: "context_schema",
				Message: fmt.Sprintf("the schema could not be compiled: %v", r), Hint: hint}
		}
	}()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return nil, &Problem{Field: "context_schema", Message: "the schema is not valid JSON: " + err.Error(), Hint: hint}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, &Problem{Field: "context_schema", Message: "the schema is not usable: " + err.Error(), Hint: hint}
	}
	sch, err = c.Compile(schemaURL)
	if err != nil {
		p := &Problem{Field: "context_schema", Hint: hint}
		var sve *jsonschema.SchemaValidationError
		var ve *jsonschema.ValidationError
		if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
			lines, first := flatten(ve)
			p.Message = "the schema is not valid: " + strings.Join(lines, "; ")
			if lineOf != nil && first != nil {
				p.Line = lineOf(first)
			}
		} else {
			p.Message = "the schema does not compile: " + oneLine(strings.ReplaceAll(err.Error(), schemaURL, "context_schema"))
		}
		return nil, p
	}
	return sch, nil
}

// flatten lists the leaf errors of a validation error as "at /a/b: reason"
// lines, and returns the instance location of the first.
func flatten(ve *jsonschema.ValidationError) (lines []string, first []string) {
	seen := map[string]bool{}
	total := 0
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		if _, ok := e.ErrorKind.(*kind.Schema); ok {
			return
		}
		at := "/" + strings.Join(escapeTokens(e.InstanceLocation), "/")
		if len(e.InstanceLocation) == 0 {
			at = "(root)"
		}
		line := "at " + at + ": " + oneLine(e.ErrorKind.LocalizedString(printer))
		if seen[line] {
			return
		}
		seen[line] = true
		total++
		if len(lines) < maxSchemaMessages {
			lines = append(lines, line)
		}
		if first == nil {
			first = append([]string{}, e.InstanceLocation...)
		}
	}
	walk(ve)
	if total > len(lines) {
		lines = append(lines, fmt.Sprintf("and %d more", total-len(lines)))
	}
	if len(lines) == 0 {
		lines = []string{oneLine(ve.Error())}
	}
	return lines, first
}

func escapeTokens(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
	}
	return out
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// ValidateContext checks a task context: it must be a JSON object and, when
// the template has a context_schema, valid against it. The error matches
// taskertype.ErrInvalid and names each failing location and why.
func (t *Template) ValidateContext(ctx json.RawMessage) error {
	if len(bytes.TrimSpace(ctx)) == 0 {
		return fmt.Errorf("%w: context for %s is empty: want a JSON object, e.g. {}", taskertype.ErrInvalid, t.Key())
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(ctx))
	if err != nil {
		return fmt.Errorf("%w: context for %s is not valid JSON: %v", taskertype.ErrInvalid, t.Key(), err)
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("%w: context for %s is %s, want a JSON object, e.g. {\"value\": 3}",
			taskertype.ErrInvalid, t.Key(), jsonKind(v))
	}
	sch := t.schema
	if sch == nil && t.ContextSchema != nil {
		// A hand-built template: compile now.
		var prob *Problem
		if sch, prob = compileSchema(t.ContextSchema, nil); prob != nil {
			return fmt.Errorf("%w: template %s: context_schema: %s", taskertype.ErrInvalid, t.Key(), prob.Message)
		}
	}
	if sch == nil {
		return nil
	}
	if err := sch.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			lines, _ := flatten(ve)
			return fmt.Errorf("%w: context does not match the context_schema of %s: %s",
				taskertype.ErrInvalid, t.Key(), strings.Join(lines, "; "))
		}
		return fmt.Errorf("%w: context does not match the context_schema of %s: %s",
			taskertype.ErrInvalid, t.Key(), oneLine(err.Error()))
	}
	return nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

// maxSchemaNodes bounds the values of a context schema once aliases are
// expanded.
const maxSchemaNodes = 100000

// nodeToJSON converts a YAML value to the JSON value it spells: mappings
// become objects (keys as written), scalars keep their YAML type except
// timestamps, which stay the text written. On failure it returns the line of
// the offending node.
func nodeToJSON(root *yaml.Node) (any, int, error) {
	budget := maxSchemaNodes
	var conv func(n *yaml.Node, depth int) (any, int, error)
	conv = func(n *yaml.Node, depth int) (any, int, error) {
		n = resolve(n)
		if n == nil {
			return nil, 0, nil
		}
		if budget--; budget < 0 {
			return nil, n.Line, fmt.Errorf("more than %d values once aliases are expanded", maxSchemaNodes)
		}
		if depth > 100 {
			return nil, n.Line, errors.New("nested more than 100 levels deep")
		}
		switch n.Kind {
		case yaml.MappingNode:
			obj := make(map[string]any, len(n.Content)/2)
			var merges []*yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := resolve(n.Content[i])
				if k == nil || k.Kind != yaml.ScalarNode {
					return nil, n.Content[i].Line, errors.New("a key is not a plain value")
				}
				if k.ShortTag() == "!!merge" {
					merges = append(merges, n.Content[i+1])
					continue
				}
				if _, dup := obj[k.Value]; dup {
					return nil, k.Line, fmt.Errorf("duplicate key %q", k.Value)
				}
				v, at, err := conv(n.Content[i+1], depth+1)
				if err != nil {
					return nil, at, err
				}
				obj[k.Value] = v
			}
			for _, m := range merges {
				v, at, err := conv(m, depth+1)
				if err != nil {
					return nil, at, err
				}
				sources := []any{v}
				if list, ok := v.([]any); ok {
					sources = list
				}
				for _, src := range sources {
					mo, ok := src.(map[string]any)
					if !ok {
						return nil, m.Line, errors.New("a merge key (<<) needs a mapping or a list of mappings")
					}
					for k, v := range mo {
						if _, set := obj[k]; !set {
							obj[k] = v
						}
					}
				}
			}
			return obj, 0, nil
		case yaml.SequenceNode:
			arr := make([]any, 0, len(n.Content))
			for _, it := range n.Content {
				v, at, err := conv(it, depth+1)
				if err != nil {
					return nil, at, err
				}
				arr = append(arr, v)
			}
			return arr, 0, nil
		case yaml.ScalarNode:
			switch n.ShortTag() {
			case "!!str", "!!timestamp", "!!binary":
				return n.Value, 0, nil
			case "!!null":
				return nil, 0, nil
			case "!!bool", "!!int", "!!float":
				var v any
				if err := n.Decode(&v); err != nil {
					return nil, n.Line, err
				}
				if f, ok := v.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
					return nil, n.Line, fmt.Errorf("%s is not a JSON number", n.Value)
				}
				return v, 0, nil
			}
			return nil, n.Line, fmt.Errorf("unsupported YAML tag %s", n.ShortTag())
		}
		return nil, n.Line, errors.New("unsupported YAML node")
	}
	return conv(root, 0)
}
