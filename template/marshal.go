package template

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/tasker-go/tasker/taskertype"
)

// Marshal returns t as a canonical JSON document: every field spelt out
// (no defaults section), keys in a fixed order, the context schema
// compacted. Parse reads it back as an equal template, and two templates
// that define the same workflow marshal to the same bytes, whatever the
// layout, comments or defaults of the documents they came from, so the
// digest of this document (Digest) identifies a definition.
func Marshal(t *Template) ([]byte, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: marshal template: nil template", taskertype.ErrInvalid)
	}
	d := canonical{
		Name: t.Name, Namespace: t.Namespace, Version: t.Version, Description: t.Description,
		Steps: make([]canonicalStep, len(t.Steps)),
	}
	if len(t.ContextSchema) > 0 {
		// Decoded and encoded again: keys sorted, no spaces, numbers as
		// written.
		dec := json.NewDecoder(bytes.NewReader(t.ContextSchema))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: marshal template %s: context schema: %v", taskertype.ErrInvalid, t.Key(), err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: marshal template %s: context schema: %v", taskertype.ErrInvalid, t.Key(), err)
		}
		d.ContextSchema = b
	}
	for i := range t.Steps {
		s := &t.Steps[i]
		d.Steps[i] = canonicalStep{
			Name: s.Name, Handler: s.Handler, Description: s.Description, DependsOn: slices.Clone(s.DependsOn),
			Retry: canonicalRetry{
				Retryable: s.Retry.Retryable, MaxAttempts: s.Retry.MaxAttempts, Backoff: string(s.Retry.Backoff),
				Base: s.Retry.Base.String(), Cap: s.Retry.Cap.String(), Jitter: s.Retry.Jitter,
			},
			Timeout: s.Timeout.String(),
		}
	}
	out, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("marshal template %s: %w", t.Key(), err)
	}
	return out, nil
}

// Digest returns the SHA-256 of t's canonical document (Marshal), in hex:
// equal digests, equal definitions.
func Digest(t *Template) (string, error) {
	doc, err := Marshal(t)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:]), nil
}

// CompareVersions orders two versions by semantic-version precedence, as
// Registry.Get picks the latest: negative when a ranks below b, zero when
// they rank equal, positive when above. A version that is not semver ranks
// below every one that is.
func CompareVersions(a, b string) int { return compareSemver(a, b) }

// The canonical document. Field order is the JSON key order.
type canonical struct {
	Name          string          `json:"name"`
	Namespace     string          `json:"namespace"`
	Version       string          `json:"version"`
	Description   string          `json:"description,omitempty"`
	ContextSchema json.RawMessage `json:"context_schema,omitempty"`
	Steps         []canonicalStep `json:"steps"`
}

type canonicalStep struct {
	Name        string         `json:"name"`
	Handler     string         `json:"handler"`
	Description string         `json:"description,omitempty"`
	DependsOn   []string       `json:"depends_on,omitempty"`
	Retry       canonicalRetry `json:"retry"`
	Timeout     string         `json:"timeout"`
}

type canonicalRetry struct {
	Retryable   bool    `json:"retryable"`
	MaxAttempts int     `json:"max_attempts"`
	Backoff     string  `json:"backoff"`
	Base        string  `json:"base"`
	Cap         string  `json:"cap"`
	Jitter      float64 `json:"jitter"`
}
