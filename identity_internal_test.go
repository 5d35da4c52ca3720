package tasker

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/tasker-go/tasker/taskertype"
)

func TestIdentityHash(t *testing.T) {
	ctx := json.RawMessage(`{"b": [1, 2.50, {"y": true, "x": null}], "a": "s\u00e9"}`)
	base, err := IdentityHash(IdentityStrict, "ns", "job", "1.0.0", ctx, "")
	if err != nil || len(base) != 64 {
		t.Fatalf("strict: %q, %v", base, err)
	}
	same := []json.RawMessage{
		json.RawMessage(`{"a":"sé","b":[1e0,2.5,{"x":null,"y":true}]}`),
		json.RawMessage(" {\n\"a\" : \"s\\u00e9\", \"b\": [1.0, 25e-1, {\"x\": null, \"y\": true}]} "),
	}
	for _, c := range same {
		if h, _ := IdentityHash(IdentityStrict, "ns", "job", "1.0.0", c, ""); h != base {
			t.Errorf("%s: another identity than the same value spelled otherwise", c)
		}
	}
	differ := map[string][]string{
		"namespace": {"ns2", "job", "1.0.0", ""},
		"name":      {"ns", "job2", "1.0.0", ""},
		"version":   {"ns", "job", "1.0.1", ""},
		"boundary":  {"nsj", "ob", "1.0.0", ""}, // the fields are length-prefixed
		"key":       {"ns", "job", "1.0.0", "k"},
	}
	for what, f := range differ {
		if h, _ := IdentityHash(IdentityStrict, f[0], f[1], f[2], ctx, f[3]); h == base || h == "" {
			t.Errorf("%s: the same identity", what)
		}
	}
	if h, _ := IdentityHash(IdentityStrict, "ns", "job", "1.0.0", json.RawMessage(`{"a":"sé","b":[1,2.5,{"x":null,"y":false}]}`), ""); h == base {
		t.Error("another context: the same identity")
	}
	// A key is the identity whatever the strategy and context.
	k1, _ := IdentityHash(IdentityAlwaysUnique, "ns", "job", "1.0.0", ctx, "k")
	k2, _ := IdentityHash(IdentityCallerProvided, "ns", "job", "1.0.0", json.RawMessage(`{}`), "k")
	k3, _ := IdentityHash(IdentityStrict, "ns", "job", "1.0.0", nil, "k")
	if k1 == "" || k1 != k2 || k2 != k3 {
		t.Errorf("keyed identities differ: %q %q %q", k1, k2, k3)
	}
	if h, err := IdentityHash(IdentityAlwaysUnique, "ns", "job", "1.0.0", ctx, ""); h != "" || err != nil {
		t.Errorf("always_unique without a key: %q, %v", h, err)
	}
	if _, err := IdentityHash(IdentityCallerProvided, "ns", "job", "1.0.0", ctx, ""); !errors.Is(err, taskertype.ErrInvalid) {
		t.Errorf("caller_provided without a key: %v, want ErrInvalid", err)
	}
	if _, err := IdentityHash("fuzzy", "ns", "job", "1.0.0", ctx, ""); !errors.Is(err, taskertype.ErrInvalid) {
		t.Errorf("an unknown strategy: %v, want ErrInvalid", err)
	}
	// Empty and {} are the same context (the stores keep {}).
	e1, _ := IdentityHash("", "ns", "job", "1", nil, "")
	e2, _ := IdentityHash(IdentityStrict, "ns", "job", "1", json.RawMessage(`{ }`), "")
	if e1 != e2 {
		t.Error("an empty context and {} differ")
	}
}

// The canonical form of any JSON is valid JSON of the same value, and its
// own canonical form.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"b":1,"a":[1.0,2e3,-0,"x\u0000"]}`, `[null,true,{"":{}}]`, `123456789012345678901234567890`, `1e400`, `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return
		}
		c, err := canonicalJSON(raw)
		if err != nil {
			return // a number encoding/json cannot hold
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form %q of %q is not JSON", c, raw)
		}
		again, err := canonicalJSON(c)
		if err != nil || string(again) != string(c) {
			t.Fatalf("not idempotent: %q → %q → %q (%v)", raw, c, again, err)
		}
	})
}

// BenchmarkIdentityHash: the strict identity of a small context, the cost
// CreateTask adds before its transaction.
func BenchmarkIdentityHash(b *testing.B) {
	ctx := json.RawMessage(`{"order_id": 12345, "customer": {"id": "c-1", "tier": "gold"}, "items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]}`)
	for b.Loop() {
		if _, err := IdentityHash(IdentityStrict, "payments", "charge_card", "1.0.0", ctx, ""); err != nil {
			b.Fatal(err)
		}
	}
}
