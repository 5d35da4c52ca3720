package template

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/taskertype"
)

func TestValidateHandBuiltTemplates(t *testing.T) {
	good := func() *Template {
		return &Template{Name: "wf", Namespace: "demo", Version: "1.0.0", Steps: []Step{
			{Name: "a", Handler: "h", Retry: DefaultRetry(), Timeout: DefaultTimeout},
			{Name: "b", Handler: "h", DependsOn: []string{"a"}, Retry: DefaultRetry(), Timeout: DefaultTimeout},
		}}
	}
	t.Run("a well-formed template is valid", func(t *testing.T) {
		if err := good().Validate(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a zero retry policy and timeout are reported", func(t *testing.T) {
		tp := good()
		tp.Steps[0].Retry = taskertype.RetryPolicy{}
		tp.Steps[0].Timeout = 0
		err := tp.Validate()
		for _, w := range []string{"max_attempts 0", `unknown backoff ""`, "timeout 0s"} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Validate() = %v, want it to mention %q", err, w)
			}
		}
	})
	t.Run("a cycle is reported", func(t *testing.T) {
		tp := good()
		tp.Steps[0].DependsOn = []string{"b"}
		if err := tp.Validate(); err == nil || !strings.Contains(err.Error(), "cycle: a -> b -> a") {
			t.Errorf("Validate() = %v", err)
		}
	})
	t.Run("a bad context schema is reported", func(t *testing.T) {
		tp := good()
		tp.ContextSchema = []byte(`{"type": 5}`)
		if err := tp.Validate(); err == nil || !strings.Contains(err.Error(), "context_schema") {
			t.Errorf("Validate() = %v", err)
		}
	})
}

func TestParseBoundsItsWork(t *testing.T) {
	t.Run("problems beyond the limit are counted, not listed", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(header + "steps:\n")
		for i := range 150 {
			fmt.Fprintf(&b, "  - {name: s%d, handler: h, depends_on: [missing_%d]}\n", i, i)
		}
		ve := parseFail(t, b.String())
		if len(ve.Problems) != maxProblems+1 {
			t.Fatalf("%d problems, want %d", len(ve.Problems), maxProblems+1)
		}
		if last := ve.Problems[maxProblems]; last.Message != "50 more problems not listed" {
			t.Errorf("last problem = %q", last)
		}
	})
	t.Run("a mapping with too many keys is refused before decoding", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(header + steps("a:h") + "context_schema:\n")
		for i := range maxMappingKeys + 1 {
			fmt.Fprintf(&b, "  k%d: 1\n", i)
		}
		ve := parseFail(t, b.String())
		if _, ok := find(ve, "a mapping with 5001 keys, more than the limit of 5000"); !ok {
			t.Errorf("got:\n%v", ve)
		}
	})
	t.Run("a long cycle is abbreviated", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(header + "steps:\n")
		for i := range 100 {
			fmt.Fprintf(&b, "  - {name: s%d, handler: h, depends_on: [s%d]}\n", i, (i+1)%100)
		}
		ve := parseFail(t, b.String())
		if _, ok := find(ve, "cycle: s0 -> s1 -> ", "s29 -> ... (70 more) -> s0"); !ok {
			t.Errorf("got:\n%v", ve)
		}
	})
	t.Run("more than MaxFileSize bytes are refused", func(t *testing.T) {
		ve := parseFail(t, header+"description: "+strings.Repeat("x", MaxFileSize)+"\n"+steps("a:h"))
		if _, ok := find(ve, "more than the limit of"); !ok {
			t.Errorf("got:\n%v", ve)
		}
	})
}
