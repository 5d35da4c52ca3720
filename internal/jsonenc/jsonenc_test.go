package jsonenc

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// FuzzSkipValue: SkipValue finds a whole valid document exactly where
// json.Valid takes it (but deeper than MaxDepth, which it leaves to its
// caller's fallback).
func FuzzSkipValue(f *testing.F) {
	for _, s := range []string{`{}`, ` [1, -0.5e+3, "a\u00e9\n", true, false, null, {"k": []}] `, `01`, `1.`, `-`, `"\x"`,
		"\"\x01\"", "\"\xff\"", `{"a" 1}`, `[1,]`, `{"a":1,}`, `nul`, `"\ud800"`, `1e`, `[` + strings.Repeat("[", 600) + `]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end, ok := SkipValue(b, SkipSpace(b, 0))
		whole := ok && SkipSpace(b, end) == len(b)
		if valid := json.Valid(b); whole != valid {
			if valid && bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) > MaxDepth {
				return
			}
			t.Fatalf("%q: SkipValue takes it %v, json.Valid %v", b, whole, valid)
		}
		if ok && !json.Valid(b[SkipSpace(b, 0):end]) {
			t.Fatalf("%q: SkipValue ends a value at %d that is not one", b, end)
		}
	})
}

// FuzzAppendString: the string reads back as itself (valid UTF-8; invalid
// bytes become U+FFFD, as json.Marshal writes them).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "enqueued", `a"b\c`, "tab\there\n", "\x00\x1f\x7f", "é✓<>&", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendString([]byte("x"), s)
		want, _ := json.Marshal(s)
		var got, exp string
		if err := json.Unmarshal(b[1:], &got); err != nil {
			t.Fatalf("AppendString(%q) = %s: %v", s, b[1:], err)
		}
		_ = json.Unmarshal(want, &exp)
		if got != exp {
			t.Fatalf("AppendString(%q) reads %q, json.Marshal's %q", s, got, exp)
		}
	})
}

func TestAppendUUID(t *testing.T) {
	for range 100 {
		id := uuid.New()
		if got := string(AppendUUID(nil, id)); got != id.String() {
			t.Fatalf("AppendUUID = %s, want %s", got, id)
		}
	}
}

func TestPlainString(t *testing.T) {
	for in, want := range map[string]string{`"abc"`: "abc", `""`: "", `"a\"b"`: "!", "\"\xc3\xa9\"": "\u00e9", "\"\xff\"": "!", "\"a\x01\"": "!", `"a`: "!", `x`: "!"} {
		got, end, ok := PlainString([]byte(in), 0)
		if !ok {
			if want != "!" {
				t.Fatalf("PlainString(%s) refused", in)
			}
			continue
		}
		if string(got) != want || end != len(in) {
			t.Fatalf("PlainString(%s) = %q, %d", in, got, end)
		}
	}
}
