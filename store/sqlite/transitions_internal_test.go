package sqlite

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzAppendJSONString checks that any valid UTF-8 string comes out as a
// JSON string that decodes to itself.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "enqueued_for_orchestration", `a"b\c`, "tab\there\n", "\x00\x1f\x7f", "é✓"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip("JSON strings are UTF-8")
		}
		b := appendJSONString([]byte("x"), s)
		var got string
		if err := json.Unmarshal(b[1:], &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: %v", s, b[1:], err)
		}
		if got != s {
			t.Fatalf("appendJSONString(%q) decodes to %q", s, got)
		}
	})
}
