package template

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tasker-go/tasker/taskertype"
)

func TestParseReadsATemplate(t *testing.T) {
	src := `name: orders
namespace: shop
version: 2.1.3-beta.1
description: take an order
context_schema:
  type: object
  required: [order_id]
steps:
  - name: validate
    handler: shop.validate
    description: check the order
  - name: charge
    handler: shop:charge
    depends_on: [validate]
  - name: ship
    handler: shop.ship
    depends_on: [validate, charge]
`
	tp := mustParse(t, src)
	t.Run("the identity and description are read", func(t *testing.T) {
		want := Key{Namespace: "shop", Name: "orders", Version: "2.1.3-beta.1"}
		if tp.Key() != want || tp.Description != "take an order" || tp.Source != "test.yaml" {
			t.Errorf("got key %v, description %q, source %q", tp.Key(), tp.Description, tp.Source)
		}
		if got := tp.Key().String(); got != "shop/orders@2.1.3-beta.1" {
			t.Errorf("Key().String() = %q", got)
		}
	})
	t.Run("steps keep file order and their fields", func(t *testing.T) {
		var names []string
		for _, s := range tp.Steps {
			names = append(names, s.Name)
		}
		if !slices.Equal(names, []string{"validate", "charge", "ship"}) {
			t.Errorf("steps = %v", names)
		}
		if s := tp.Steps[2]; !slices.Equal(s.DependsOn, []string{"validate", "charge"}) || s.Handler != "shop.ship" {
			t.Errorf("ship = %+v", s)
		}
		if tp.Steps[0].Description != "check the order" {
			t.Errorf("description = %q", tp.Steps[0].Description)
		}
	})
	t.Run("the context schema is kept as JSON", func(t *testing.T) {
		var v map[string]any
		if err := json.Unmarshal(tp.ContextSchema, &v); err != nil {
			t.Fatal(err)
		}
		if v["type"] != "object" {
			t.Errorf("schema = %s", tp.ContextSchema)
		}
	})
	t.Run("StepIndex finds steps by name and -1 for others", func(t *testing.T) {
		for name, want := range map[string]int{"validate": 0, "charge": 1, "ship": 2, "nope": -1, "": -1} {
			if got := tp.StepIndex(name); got != want {
				t.Errorf("StepIndex(%q) = %d, want %d", name, got, want)
			}
		}
	})
	t.Run("Handlers lists distinct handlers sorted", func(t *testing.T) {
		want := []string{"shop.ship", "shop.validate", "shop:charge"}
		if got := tp.Handlers(); !slices.Equal(got, want) {
			t.Errorf("Handlers() = %v, want %v", got, want)
		}
	})
	t.Run("a parsed template passes Validate", func(t *testing.T) {
		if err := tp.Validate(); err != nil {
			t.Error(err)
		}
	})
}

func TestParseWithoutContextSchemaLeavesItNil(t *testing.T) {
	tp := mustParse(t, header+steps("a:h"))
	if tp.ContextSchema != nil {
		t.Errorf("ContextSchema = %s, want nil", tp.ContextSchema)
	}
	tp = mustParse(t, header+"context_schema: ~\n"+steps("a:h"))
	if tp.ContextSchema != nil {
		t.Errorf("null ContextSchema = %s, want nil", tp.ContextSchema)
	}
}

func TestParseAcceptsYAMLAnchors(t *testing.T) {
	src := header + `defaults:
  retry: &fast {backoff: none, base: 0s, cap: 0s}
steps:
  - name: a
    handler: h
    retry: *fast
  - &b
    name: b
    handler: h
    depends_on: [a]
`
	tp := mustParse(t, src)
	if tp.Steps[0].Retry.Backoff != taskertype.BackoffNone || tp.Steps[1].Name != "b" {
		t.Errorf("steps = %+v", tp.Steps)
	}
}

func TestDefaultsAndPrecedence(t *testing.T) {
	builtin := DefaultRetry()
	tests := []struct {
		name        string
		src         string
		wantRetry   []taskertype.RetryPolicy
		wantTimeout []time.Duration
	}{
		{
			name:        "a step without settings gets the built-in defaults",
			src:         header + steps("a:h"),
			wantRetry:   []taskertype.RetryPolicy{builtin},
			wantTimeout: []time.Duration{DefaultTimeout},
		},
		{
			name: "template defaults override the built-in ones field by field",
			src:  header + "defaults:\n  retry: {max_attempts: 5, backoff: linear}\n  timeout: 1m\n" + steps("a:h"),
			wantRetry: []taskertype.RetryPolicy{{Retryable: true, MaxAttempts: 5, Backoff: taskertype.BackoffLinear,
				Base: DefaultBase, Cap: DefaultCap, Jitter: DefaultJitter}},
			wantTimeout: []time.Duration{time.Minute},
		},
		{
			name: "a step's own fields override the template defaults, the rest is inherited",
			src: header + `defaults:
  retry: {max_attempts: 5, backoff: linear, base: 2s, jitter: 0.5}
  timeout: 1m
steps:
  - name: a
    handler: h
    retry: {max_attempts: 1, retryable: false, cap: 10m}
    timeout: 45s
  - name: b
    handler: h
    depends_on: [a]
`,
			wantRetry: []taskertype.RetryPolicy{
				{Retryable: false, MaxAttempts: 1, Backoff: taskertype.BackoffLinear, Base: 2 * time.Second, Cap: 10 * time.Minute, Jitter: 0.5},
				{Retryable: true, MaxAttempts: 5, Backoff: taskertype.BackoffLinear, Base: 2 * time.Second, Cap: DefaultCap, Jitter: 0.5},
			},
			wantTimeout: []time.Duration{45 * time.Second, time.Minute},
		},
		{
			name: "backoff none allows a zero base",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {backoff: none, base: 0s, jitter: 0}\n",
			wantRetry: []taskertype.RetryPolicy{{Retryable: true, MaxAttempts: 3, Backoff: taskertype.BackoffNone,
				Base: 0, Cap: DefaultCap, Jitter: 0}},
			wantTimeout: []time.Duration{DefaultTimeout},
		},
		{
			name: "the limits themselves are accepted",
			src:  header + "steps:\n  - name: a\n    handler: h\n    retry: {max_attempts: 100, base: 1m, cap: 1m, jitter: 1}\n    timeout: 24h\n",
			wantRetry: []taskertype.RetryPolicy{{Retryable: true, MaxAttempts: 100, Backoff: DefaultBackoff,
				Base: time.Minute, Cap: time.Minute, Jitter: 1}},
			wantTimeout: []time.Duration{24 * time.Hour},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp := mustParse(t, tc.src)
			for i, s := range tp.Steps {
				if !reflect.DeepEqual(s.Retry, tc.wantRetry[i]) {
					t.Errorf("step %s retry = %+v, want %+v", s.Name, s.Retry, tc.wantRetry[i])
				}
				if s.Timeout != tc.wantTimeout[i] {
					t.Errorf("step %s timeout = %v, want %v", s.Name, s.Timeout, tc.wantTimeout[i])
				}
			}
		})
	}
}

func TestBuiltInDefaults(t *testing.T) {
	r := DefaultRetry()
	want := taskertype.RetryPolicy{Retryable: true, MaxAttempts: 3, Backoff: taskertype.BackoffExponential,
		Base: time.Second, Cap: 5 * time.Minute, Jitter: 0.1}
	if r != want || DefaultTimeout != 30*time.Second {
		t.Errorf("DefaultRetry() = %+v, DefaultTimeout = %v", r, DefaultTimeout)
	}
	if len(checkPolicy(r, DefaultTimeout, taskerVocab)) != 0 {
		t.Errorf("the built-in defaults break a rule: %v", checkPolicy(r, DefaultTimeout, taskerVocab))
	}
}

func TestKeyString(t *testing.T) {
	tests := []struct {
		name string
		k    Key
		want string
	}{
		{"a full key renders namespace/name@version", Key{"demo", "wf", "1.0.0"}, "demo/wf@1.0.0"},
		{"a key without version omits the @", Key{"demo", "wf", ""}, "demo/wf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.k.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHandBuiltTemplateHelpers(t *testing.T) {
	tp := &Template{Steps: []Step{{Name: "a", Handler: "y"}, {Name: "b", Handler: "x"}, {Name: "c", Handler: "y"}}}
	if tp.StepIndex("c") != 2 || tp.StepIndex("z") != -1 {
		t.Error("StepIndex without an index is wrong")
	}
	if got := tp.Handlers(); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("Handlers() = %v", got)
	}
}

func TestContextSchemaConversion(t *testing.T) {
	src := header + `context_schema:
  $defs:
    base: &base {type: object}
  <<: *base
  properties:
    day: {enum: [2024-01-01]}
    1: {type: integer, maximum: 0x10, multipleOf: 0.5}
` + steps("a:h")
	tp := mustParse(t, src)
	var got map[string]any
	if err := json.Unmarshal(tp.ContextSchema, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"$defs": map[string]any{"base": map[string]any{"type": "object"}},
		"type":  "object",
		"properties": map[string]any{
			"day": map[string]any{"enum": []any{"2024-01-01"}},
			"1":   map[string]any{"type": "integer", "maximum": 16.0, "multipleOf": 0.5},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("schema = %s", tp.ContextSchema)
	}
	if err := tp.ValidateContext(json.RawMessage(`{"day": "2024-01-01", "1": 8}`)); err != nil {
		t.Error(err)
	}
	if err := tp.ValidateContext(json.RawMessage(`{"1": 17}`)); err == nil {
		t.Error("maximum 0x10 not enforced")
	}
}
