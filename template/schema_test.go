package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/taskertype"
)

func TestValidateContext(t *testing.T) {
	withSchema := mustParse(t, header+`context_schema:
  type: object
  required: [value]
  properties:
    value: {type: integer, minimum: -1000000, maximum: 1000000}
    tags: {type: array, items: {type: string}}
  additionalProperties: false
`+steps("a:h"))
	noSchema := mustParse(t, header+steps("a:h"))
	handBuilt := &Template{Name: "wf", Namespace: "demo", Version: "1.0.0",
		ContextSchema: json.RawMessage(`{"required": ["value"]}`)}

	tests := []struct {
		name string
		tp   *Template
		ctx  string
		want []string // substrings of the error; nil: valid
	}{
		{"a context matching the schema is valid", withSchema, `{"value": 3}`, nil},
		{"a large integer within bounds is valid", withSchema, `{"value": 1000000}`, nil},
		{"a wrong type names the location and both types", withSchema, `{"value": "3"}`,
			[]string{"at /value: got string, want integer"}},
		{"a missing required property is named", withSchema, `{}`,
			[]string{"at (root): missing property 'value'"}},
		{"a value out of range is reported", withSchema, `{"value": 1000001}`,
			[]string{"at /value: maximum"}},
		{"every failing location is listed", withSchema, `{"value": 1.5, "tags": [1], "x": true}`,
			[]string{"at /value: got number, want integer", "at /tags/0: got number, want string", "additional properties 'x' not allowed"}},
		{"an array is not an object", withSchema, `[1, 2]`, []string{"is an array, want a JSON object"}},
		{"without a schema any object is valid", noSchema, `{"anything": [1, 2]}`, nil},
		{"without a schema a string is still refused", noSchema, `"hello"`, []string{"is a string, want a JSON object"}},
		{"without a schema null is refused", noSchema, `null`, []string{"is null, want a JSON object"}},
		{"an empty context is refused", noSchema, ``, []string{"context for demo/wf@1.0.0 is empty"}},
		{"malformed JSON is refused", noSchema, `{"value": `, []string{"not valid JSON"}},
		{"trailing data after the object is refused", noSchema, `{} {}`, []string{"not valid JSON"}},
		{"a hand-built template compiles its schema on demand", handBuilt, `{}`, []string{"missing property 'value'"}},
		{"a hand-built template accepts a matching context", handBuilt, `{"value": 1}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.tp.ValidateContext(json.RawMessage(tc.ctx))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("ValidateContext(%s) = %v, want nil", tc.ctx, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateContext(%s) = nil, want an error", tc.ctx)
			}
			if !errors.Is(err, taskertype.ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateContextIsSafeForConcurrentUse(t *testing.T) {
	tp := mustParse(t, header+"context_schema: {type: object, required: [value], properties: {value: {type: integer}}}\n"+steps("a:h"))
	done := make(chan error)
	for i := range 8 {
		go func() {
			var err error
			for j := range 50 {
				ctx := fmt.Sprintf(`{"value": %d}`, i*j)
				if j%2 == 1 {
					ctx = `{"value": "x"}`
				}
				if got := tp.ValidateContext(json.RawMessage(ctx)); (got == nil) != (j%2 == 0) {
					err = fmt.Errorf("ValidateContext(%s) = %v", ctx, got)
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
