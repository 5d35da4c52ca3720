package tasker

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// Identity strategies (taskertype.IdentityStrategy; docs/identity.md).
type IdentityStrategy = taskertype.IdentityStrategy

const (
	IdentityStrict         = taskertype.IdentityStrict
	IdentityCallerProvided = taskertype.IdentityCallerProvided
	IdentityAlwaysUnique   = taskertype.IdentityAlwaysUnique
)

// ErrDuplicateTask matches the error of CreateTask when a task with the
// same identity exists; errors.As with a *DuplicateTaskError gives its id.
var ErrDuplicateTask = taskertype.ErrDuplicateTask

// DuplicateTaskError carries the id of the task a create duplicates.
type DuplicateTaskError = taskertype.DuplicateTaskError

// TaskRequest holds a task's request fields and identity, as stored.
type TaskRequest = taskertype.TaskRequest

// Bounds of the task request's fields.
const (
	MaxTags         = 64   // tags per task
	MaxTagBytes     = 255  // bytes per tag
	MaxRequestBytes = 1024 // bytes of initiator, source_system, reason and idempotency_key each
)

// identityVersion prefixes the hashed text: a change of the scheme gets a
// new one, so that old and new identities never meet.
const identityVersion = "tasker-identity-v1"

// IdentityHash returns a task's identity (hex SHA-256), as CreateTask
// computes it: from the idempotency key if one is given, whatever the
// strategy; otherwise, under the strict strategy, from the canonical form
// of the context. Both are combined with the namespace, template name and
// version. It is "" for always_unique without a key, and an error wrapping
// ErrInvalid for caller_provided without one, or for a context that is not
// JSON.
func IdentityHash(strategy IdentityStrategy, namespace, name, version string, context json.RawMessage, idempotencyKey string) (string, error) {
	var kind string
	var payload []byte
	switch {
	case idempotencyKey != "":
		kind, payload = "key", []byte(idempotencyKey)
	case strategy.Or() == IdentityStrict:
		c, err := canonicalJSON(context)
		if err != nil {
			return "", fmt.Errorf("%w: the context: %w", taskertype.ErrInvalid, err)
		}
		kind, payload = "context", c
	case strategy == IdentityCallerProvided:
		return "", fmt.Errorf("%w: template %s/%s@%s declares identity_strategy: caller_provided, so an idempotency key is required: give one (CreateTaskParams.IdempotencyKey, or --idempotency-key)",
			taskertype.ErrInvalid, namespace, name, version)
	case strategy == IdentityAlwaysUnique:
		return "", nil
	default:
		return "", fmt.Errorf("%w: unknown identity strategy %q: use strict, caller_provided or always_unique", taskertype.ErrInvalid, strategy)
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte(identityVersion), []byte(namespace), []byte(name), []byte(version), []byte(kind), payload} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part))) // length-prefixed: no two field lists spell the same bytes
		h.Write(n[:])
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// canonicalJSON spells a JSON value one way: object keys sorted, no
// insignificant space, numbers in their shortest form (1.0, 1e0 and 1 are
// the same number), strings escaped as encoding/json does. An empty input
// is {}.
func canonicalJSON(raw json.RawMessage) ([]byte, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return []byte("{}"), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := writeCanonical(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeCanonical(b *bytes.Buffer, v any) error {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			if err := writeCanonical(b, v[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCanonical(b, x); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case string:
		writeString(b, v)
	case json.Number:
		b.WriteString(canonicalNumber(v))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case nil:
		b.WriteString("null")
	default:
		return fmt.Errorf("unexpected JSON value %T", v)
	}
	return nil
}

func writeString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s) // a string always encodes
	b.Write(q)
}

// canonicalNumber: an integer that fits int64 in decimal digits, any other
// number as the shortest float64 spelling; a number float64 cannot hold
// (too large) stays as written.
func canonicalNumber(n json.Number) string {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return strconv.FormatInt(i, 10)
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		return string(n)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// taskRequest checks the request fields of p and computes the task's
// identity under the template's strategy, or defaultStrategy
// (Config.DefaultIdentityStrategy) when it declares none.
func taskRequest(tpl *template.Template, defaultStrategy IdentityStrategy, p *CreateTaskParams, context json.RawMessage) (taskertype.TaskRequest, error) {
	rq := taskertype.TaskRequest{
		Priority: p.Priority, CorrelationID: p.CorrelationID, ParentCorrelationID: p.ParentCorrelationID,
		Initiator: p.Initiator, SourceSystem: p.SourceSystem, Reason: p.Reason, IdempotencyKey: p.IdempotencyKey,
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{taskertype.ErrInvalid}, args...)...)
	}
	if p.Priority < math.MinInt32 || p.Priority > math.MaxInt32 {
		return rq, bad("priority %d is out of range %d..%d (a 32-bit integer, as in tasker-core): give a smaller one", p.Priority, math.MinInt32, math.MaxInt32)
	}
	for _, f := range []struct{ name, v string }{
		{"initiator", p.Initiator}, {"source_system", p.SourceSystem}, {"reason", p.Reason}, {"idempotency_key", p.IdempotencyKey},
	} {
		switch {
		case len(f.v) > MaxRequestBytes:
			return rq, bad("%s is %d bytes, more than the limit of %d: shorten it", f.name, len(f.v), MaxRequestBytes)
		case !utf8.ValidString(f.v):
			return rq, bad("%s is not valid UTF-8", f.name)
		case strings.ContainsRune(f.v, 0):
			return rq, bad("%s holds a NUL character, which the stores cannot keep: remove it", f.name)
		}
	}
	if p.IdempotencyKey != "" && strings.TrimSpace(p.IdempotencyKey) == "" {
		return rq, bad("the idempotency key is blank: give a key with other characters than spaces, or none")
	}
	if len(p.Tags) > MaxTags {
		return rq, bad("%d tags, more than the limit of %d: keep the ones used to find the task", len(p.Tags), MaxTags)
	}
	for i, t := range p.Tags {
		switch {
		case t == "":
			return rq, bad("tag %d is empty: remove it", i+1)
		case len(t) > MaxTagBytes:
			return rq, bad("tag %d is %d bytes, more than the limit of %d: shorten it", i+1, len(t), MaxTagBytes)
		case !utf8.ValidString(t) || strings.ContainsRune(t, 0):
			return rq, bad("tag %d is not valid UTF-8 text without NUL", i+1)
		}
	}
	rq.Tags = slices.Clone(p.Tags)
	if len(rq.Tags) == 0 {
		rq.Tags = nil
	}
	strategy := tpl.IdentityStrategy
	if strategy == "" {
		strategy = defaultStrategy
	}
	hash, err := IdentityHash(strategy, tpl.Namespace, tpl.Name, tpl.Version, context, p.IdempotencyKey)
	if err != nil {
		return rq, err
	}
	rq.IdentityHash = hash
	return rq, nil
}
