package template

import (
	"errors"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/taskertype"
)

// header is the valid top of a template; tests append steps and more.
const header = "name: wf\nnamespace: demo\nversion: 1.0.0\n"

func mustParse(t *testing.T, src string) *Template {
	t.Helper()
	tp, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v\n--- input:\n%s", err, src)
	}
	return tp
}

// parseFail parses src, which must be invalid, and returns the problems.
func parseFail(t *testing.T, src string) *ValidationError {
	t.Helper()
	tp, err := Parse("test.yaml", []byte(src))
	if err == nil {
		t.Fatalf("Parse: no error, want one; got %d steps\n--- input:\n%s", len(tp.Steps), src)
	}
	if tp != nil {
		t.Errorf("Parse returned a template together with an error")
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Parse error is %T, want *ValidationError: %v", err, err)
	}
	if !errors.Is(err, taskertype.ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false")
	}
	if len(ve.Problems) == 0 {
		t.Fatalf("ValidationError without problems")
	}
	for _, p := range ve.Problems {
		if p.Source != "test.yaml" {
			t.Errorf("problem %q has source %q, want test.yaml", p, p.Source)
		}
		if p.Message == "" {
			t.Errorf("problem without message: %+v", p)
		}
	}
	return ve
}

// find returns the first problem whose rendering contains every one of subs.
func find(ve *ValidationError, subs ...string) (Problem, bool) {
	for _, p := range ve.Problems {
		s := p.String()
		ok := true
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				ok = false
				break
			}
		}
		if ok {
			return p, true
		}
	}
	return Problem{}, false
}

// steps renders a steps: list from "name:handler:dep1,dep2" specs.
func steps(specs ...string) string {
	var b strings.Builder
	b.WriteString("steps:\n")
	for _, s := range specs {
		parts := strings.SplitN(s, ":", 3)
		b.WriteString("  - name: " + parts[0] + "\n")
		if len(parts) > 1 && parts[1] != "" {
			b.WriteString("    handler: " + parts[1] + "\n")
		}
		if len(parts) > 2 && parts[2] != "" {
			b.WriteString("    depends_on: [" + parts[2] + "]\n")
		}
	}
	return b.String()
}
