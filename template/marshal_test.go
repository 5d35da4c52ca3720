package template

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/tasker-go/tasker/taskertype"
)

// definition is t without what Parse adds besides the definition.
func definition(t *Template) Template {
	c := *t
	c.Source, c.schema, c.index = "", nil, nil
	c.Dialect, c.Environment, c.Warnings = "", "", nil
	return c
}

func TestMarshalReadsBackAsAnEqualTemplate(t *testing.T) {
	src := header + `description: "<a> & b"
context_schema:
  type: object
  required: [value]
  properties: {value: {type: integer, maximum: 12345678901234567890}}
defaults:
  retry: {max_attempts: 5, backoff: linear, base: 250ms, cap: 1m30s, jitter: 0}
  timeout: 45s
steps:
  - name: a
    handler: h.a
  - name: b
    handler: h.b
    description: second
    depends_on: [a]
    retry: {retryable: false, jitter: 0.125}
    timeout: 1500us
`
	orig := mustParse(t, src)
	doc, err := Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("db", doc)
	if err != nil {
		t.Fatalf("Parse(Marshal(t)): %v\n%s", err, doc)
	}
	if got, want := definition(back), definition(orig); !reflect.DeepEqual(got, want) {
		t.Fatalf("read back:\n%+v\nwant\n%+v\ndocument: %s", got, want, doc)
	}
	again, err := Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, doc) {
		t.Fatalf("Marshal is not stable:\n%s\n%s", doc, again)
	}
}

func TestDigestIdentifiesTheDefinitionNotTheLayout(t *testing.T) {
	a := mustParse(t, header+"steps:\n  - name: a\n    handler: h.a\n")
	// Same definition: comments, flow style and defaults spelt out.
	b := mustParse(t, "# a comment\n"+header+"steps: [{name: a, handler: h.a, timeout: 30s, retry: {max_attempts: 3}}]\n")
	// Built in code.
	c := &Template{Namespace: "demo", Name: "wf", Version: "1.0.0",
		Steps: []Step{{Name: "a", Handler: "h.a", Retry: DefaultRetry(), Timeout: DefaultTimeout}}}
	d := mustParse(t, header+"steps:\n  - name: a\n    handler: h.a\n    timeout: 31s\n")
	da, _ := Digest(a)
	db, _ := Digest(b)
	dc, err := Digest(c)
	if err != nil {
		t.Fatal(err)
	}
	dd, _ := Digest(d)
	if da != db || da != dc {
		t.Fatalf("digests of one definition differ: %s %s %s", da, db, dc)
	}
	if da == dd {
		t.Fatalf("a changed timeout kept the digest %s", da)
	}
}

func TestMarshalOfAHandBuiltTemplateParses(t *testing.T) {
	c := &Template{Namespace: "demo", Name: "wf", Version: "2.0.0-rc.1", ContextSchema: []byte(`{ "type" : "object" }`),
		Steps: []Step{
			{Name: "a", Handler: "h.a", Retry: DefaultRetry(), Timeout: time.Minute},
			{Name: "b", Handler: "h.b", DependsOn: []string{"a"}, Timeout: time.Second,
				Retry: taskertype.RetryPolicy{MaxAttempts: 1, Backoff: taskertype.BackoffNone, Base: time.Millisecond, Cap: time.Millisecond}},
		}}
	doc, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("db", doc)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, doc)
	}
	want := definition(c)
	want.ContextSchema = []byte(`{"type":"object"}`)
	if got := definition(back); !reflect.DeepEqual(got, want) {
		t.Fatalf("read back:\n%+v\nwant\n%+v", got, want)
	}
}

func TestCompareVersions(t *testing.T) {
	if CompareVersions("1.10.0", "1.2.0") <= 0 || CompareVersions("1.0.0-rc.1", "1.0.0") >= 0 || CompareVersions("1.0.0", "1.0.0") != 0 {
		t.Fatal("CompareVersions does not follow semver precedence")
	}
}
