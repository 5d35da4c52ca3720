package contextflag

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, s := range []string{`{}`, `{"value": 3}`, ` {"a": [1, {"b": null}]} `} {
		if raw, err := Parse(s); err != nil || string(raw) != s {
			t.Errorf("Parse(%q) = %q, %v; want it back unchanged", s, raw, err)
		}
	}
	for _, s := range []string{``, `null`, `[]`, `"x"`, `3`, `{"a":`, `{value: 3}`} {
		if _, err := Parse(s); err == nil || !strings.Contains(err.Error(), "--context") {
			t.Errorf("Parse(%q) = %v; want an error naming --context", s, err)
		}
	}
}

func FuzzParseContext(f *testing.F) {
	for _, s := range []string{`{"value": 3}`, `{}`, `[]`, `null`, `{"a":`, `"x"`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, err := Parse(s)
		if err != nil {
			if !strings.Contains(err.Error(), "--context") {
				t.Fatalf("error %q does not name the flag", err)
			}
			return
		}
		var obj map[string]any
		if json.Unmarshal(raw, &obj) != nil || obj == nil {
			t.Fatalf("accepted %q, which is not a JSON object", s)
		}
	})
}
