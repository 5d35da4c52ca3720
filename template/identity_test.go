package template

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/taskertype"
)

// identity_strategy loads in both dialects and survives the canonical
// document; a template without it keeps the document it had.
func TestIdentityStrategyInBothDialects(t *testing.T) {
	steps := map[string]string{
		header:     "steps:\n  - {name: a, handler: h}\n",
		coreHeader: "steps:\n  - {name: a, handler: {callable: h}}\n",
	}
	for head, body := range steps {
		plain := mustParse(t, head+body)
		if plain.IdentityStrategy != "" {
			t.Errorf("no key: %q, want none declared", plain.IdentityStrategy)
		}
		// A template without the key keeps its canonical document.
		plainDoc, err := Marshal(plain)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(plainDoc, []byte("identity_strategy")) {
			t.Errorf("no key, yet the canonical document has one: %s", plainDoc)
		}
		for _, s := range taskertype.IdentityStrategies {
			tp := mustParse(t, head+"identity_strategy: "+string(s)+"\n"+body)
			if tp.IdentityStrategy != s {
				t.Errorf("%s: loaded as %q", s, tp.IdentityStrategy)
			}
			doc, err := Marshal(tp)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(doc), `"identity_strategy":"`+string(s)+`"`) {
				t.Errorf("%s: canonical document %s lacks it", s, doc)
			}
			back := mustParse(t, string(doc))
			if back.IdentityStrategy != s {
				t.Errorf("%s: the canonical document loads back as %q", s, back.IdentityStrategy)
			}
		}
		ve := parseFail(t, head+"identity_strategy: always-unique\n"+body)
		if _, ok := find(ve, `identity_strategy: unknown identity strategy "always-unique"`); !ok {
			t.Errorf("a misspelt strategy: %v", ve)
		}
		if !strings.Contains(ve.Error(), "always_unique") {
			t.Errorf("the error does not say what to write: %v", ve)
		}
	}
}
