// Package jsonenc writes and scans JSON by hand where encoding/json's
// reflection costs more than the work (the engine's hot paths: the packed
// transition log, a push worker's calls): strings and uuids appended as
// json.Marshal writes them, and a scanner that finds where a JSON value
// ends and whether it is valid, as encoding/json reads it.
package jsonenc

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/google/uuid"
)

// AppendUUID appends id in its canonical text form, as uuid.UUID.String
// gives it (unquoted).
func AppendUUID(b []byte, id uuid.UUID) []byte {
	const digits = "0123456789abcdef"
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, digits[c>>4], digits[c&0xf])
	}
	return b
}

// AppendQuotedUUID appends id as a JSON string.
func AppendQuotedUUID(b []byte, id uuid.UUID) []byte {
	b = append(b, '"')
	b = AppendUUID(b, id)
	return append(b, '"')
}

// AppendString appends s quoted: as it is when it is printable ASCII
// without a quote or a backslash, else as json.Marshal writes it.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// MaxDepth bounds SkipValue's nesting.
const MaxDepth = 512

// SkipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// SkipValue returns the index just after the JSON value at b[i:] and
// whether there is a valid one there, by RFC 8259 as encoding/json reads
// it (bytes of 0x80 and above in strings taken as they are). A value
// nested deeper than MaxDepth is reported as not valid: the caller's
// fallback (encoding/json, which has its own bound) decides it.
func SkipValue(b []byte, i int) (int, bool) { return skipValue(b, i, 0) }

func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return i, false
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = SkipSpace(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, true
		}
		for {
			var ok, closed bool
			if c == '{' {
				if i, ok = skipString(b, i); !ok {
					return i, false
				}
				if i, ok = AfterKey(b, i); !ok {
					return i, false
				}
			}
			if i, ok = skipValue(b, i, depth+1); !ok {
				return i, false
			}
			if i, closed, ok = AfterElement(b, i, closer); !ok || closed {
				return i, ok
			}
		}
	case c == '"':
		return skipString(b, i)
	case c == '-' || (c >= '0' && c <= '9'):
		return skipNumber(b, i)
	case c == 't':
		return SkipLiteral(b, i, "true")
	case c == 'f':
		return SkipLiteral(b, i, "false")
	case c == 'n':
		return SkipLiteral(b, i, "null")
	}
	return i, false
}

// AfterKey returns the index of the value after an object's key that
// ends at b[i:] (the colon and the spaces around it skipped), and whether
// the colon is there.
func AfterKey(b []byte, i int) (int, bool) {
	if i = SkipSpace(b, i); i >= len(b) || b[i] != ':' {
		return i, false
	}
	return SkipSpace(b, i+1), true
}

// AfterElement reads what follows an element of an array or object that
// ends at b[i:]: a comma (the index of the next element, closed false) or
// closer (the index after it, closed true), spaces skipped; ok is false
// for anything else.
func AfterElement(b []byte, i int, closer byte) (next int, closed, ok bool) {
	if i = SkipSpace(b, i); i >= len(b) {
		return i, false, false
	}
	switch b[i] {
	case ',':
		return SkipSpace(b, i+1), false, true
	case closer:
		return i + 1, true, true
	}
	return i, false, false
}

// SkipLiteral returns the index after lit at b[i:], if it is there.
func SkipLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			i++
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func skipNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		for ; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, false
		}
		for ; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	return i, true
}

// PlainString reads the string at b[i:] when its bytes are its value, as
// encoding/json would give it: no escape, no control character, valid
// UTF-8 (encoding/json replaces invalid bytes). It returns the value and
// the index after the closing quote.
func PlainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			if s := b[i+1 : j]; utf8.Valid(s) {
				return s, j + 1, true
			}
			return nil, j, false
		case c < 0x20 || c == '\\':
			return nil, j, false
		}
	}
	return nil, len(b), false
}
