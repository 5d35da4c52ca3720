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
	var bad error
	compact := func(what string, raw json.RawMessage) json.RawMessage {
		out, err := compactJSON(raw)
		if err != nil && bad == nil {
			bad = fmt.Errorf("%w: marshal template %s: %s: %v", taskertype.ErrInvalid, t.Key(), what, err)
		}
		return out
	}
	d.ContextSchema = compact("context schema", t.ContextSchema)
	d.Metadata = compact("metadata", t.Metadata)
	if sd := t.SystemDependencies; sd != nil {
		d.SystemDependencies = &canonicalSysDeps{Primary: sd.Primary, Secondary: slices.Clone(sd.Secondary)}
	}
	for _, de := range t.DomainEvents {
		d.DomainEvents = append(d.DomainEvents, canonicalDomainEvent{Name: de.Name, Description: de.Description,
			Schema: compact("domain event "+de.Name, de.Schema)})
	}
	d.IdentityStrategy = string(t.IdentityStrategy)
	if lc := t.Lifecycle; lc != nil {
		d.Lifecycle = &canonicalLifecycle{
			MaxDurationMinutes: lc.MaxDurationMinutes, MaxWaitingForDependenciesMinutes: lc.MaxWaitingForDependenciesMinutes,
			MaxWaitingForRetryMinutes: lc.MaxWaitingForRetryMinutes, MaxStepsInProcessMinutes: lc.MaxStepsInProcessMinutes,
			StalenessAction: string(cmpOr(lc.StalenessAction, StalenessDLQ)), AutoFailOnTimeout: lc.AutoFailOnTimeout, AutoDLQOnTimeout: lc.AutoDLQOnTimeout,
		}
	}
	for i := range t.Steps {
		s := &t.Steps[i]
		cs := canonicalStep{
			Name: s.Name, Handler: s.Handler, Description: s.Description, DependsOn: slices.Clone(s.DependsOn),
			Retry: canonicalRetry{
				Retryable: s.Retry.Retryable, MaxAttempts: s.Retry.MaxAttempts, Backoff: string(s.Retry.Backoff),
				Base: s.Retry.Base.String(), Cap: s.Retry.Cap.String(), Jitter: s.Retry.Jitter,
			},
			Timeout:          s.Timeout.String(),
			Method:           s.Method,
			Resolver:         s.Resolver,
			Config:           compact("config of step "+s.Name, s.Config),
			SystemDependency: s.SystemDependency,
			ResultSchema:     compact("result schema of step "+s.Name, s.ResultSchema),
		}
		if ty := s.TypeOf(); ty != StepStandard {
			cs.Type = string(ty)
		}
		for _, ev := range s.PublishesEvents {
			cs.PublishesEvents = append(cs.PublishesEvents, canonicalEvent{
				Name: ev.Name, Description: ev.Description, Condition: string(cmpOr(ev.Condition, EventOnSuccess)),
				Schema: compact("schema of event "+ev.Name, ev.Schema), DeliveryMode: string(cmpOr(ev.DeliveryMode, DeliveryDurable)),
				Publisher: ev.Publisher,
			})
		}
		if b := s.Batch; b != nil {
			cs.BatchConfig = &canonicalBatch{BatchSize: b.BatchSize, Parallelism: b.Parallelism, CursorField: b.CursorField,
				WorkerTemplate: b.WorkerTemplate, FailureStrategy: string(cmpOr(b.FailureStrategy, FailureContinue))}
		}
		d.Steps[i] = cs
	}
	if bad != nil {
		return nil, bad
	}
	out, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("marshal template %s: %w", t.Key(), err)
	}
	return out, nil
}

// compactJSON decodes and encodes raw again: keys sorted, no spaces,
// numbers as written. nil stays nil.
func compactJSON(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
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
	// Later additions, left out when unset so that the documents (and
	// digests) of templates without them stay as they were.
	Metadata           json.RawMessage        `json:"metadata,omitempty"`
	SystemDependencies *canonicalSysDeps      `json:"system_dependencies,omitempty"`
	DomainEvents       []canonicalDomainEvent `json:"domain_events,omitempty"`
	Lifecycle          *canonicalLifecycle    `json:"lifecycle,omitempty"`
	// IdentityStrategy: "" when the template declares none.
	IdentityStrategy string `json:"identity_strategy,omitempty"`
}

type canonicalSysDeps struct {
	Primary   string   `json:"primary"`
	Secondary []string `json:"secondary,omitempty"`
}

type canonicalDomainEvent struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
}

type canonicalLifecycle struct {
	MaxDurationMinutes               int    `json:"max_duration_minutes,omitempty"`
	MaxWaitingForDependenciesMinutes int    `json:"max_waiting_for_dependencies_minutes,omitempty"`
	MaxWaitingForRetryMinutes        int    `json:"max_waiting_for_retry_minutes,omitempty"`
	MaxStepsInProcessMinutes         int    `json:"max_steps_in_process_minutes,omitempty"`
	StalenessAction                  string `json:"staleness_action"`
	AutoFailOnTimeout                *bool  `json:"auto_fail_on_timeout,omitempty"`
	AutoDLQOnTimeout                 *bool  `json:"auto_dlq_on_timeout,omitempty"`
}

type canonicalEvent struct {
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	Condition    string          `json:"condition"`
	Schema       json.RawMessage `json:"schema,omitempty"`
	DeliveryMode string          `json:"delivery_mode"`
	Publisher    string          `json:"publisher,omitempty"`
}

type canonicalBatch struct {
	BatchSize       int    `json:"batch_size"`
	Parallelism     int    `json:"parallelism"`
	CursorField     string `json:"cursor_field"`
	WorkerTemplate  string `json:"worker_template"`
	FailureStrategy string `json:"failure_strategy"`
}

type canonicalStep struct {
	Name        string         `json:"name"`
	Handler     string         `json:"handler"`
	Description string         `json:"description,omitempty"`
	DependsOn   []string       `json:"depends_on,omitempty"`
	Retry       canonicalRetry `json:"retry"`
	Timeout     string         `json:"timeout"`
	// Later additions, left out when unset.
	Type             string           `json:"type,omitempty"`
	Method           string           `json:"method,omitempty"`
	Resolver         string           `json:"resolver,omitempty"`
	Config           json.RawMessage  `json:"config,omitempty"`
	SystemDependency string           `json:"system_dependency,omitempty"`
	ResultSchema     json.RawMessage  `json:"result_schema,omitempty"`
	PublishesEvents  []canonicalEvent `json:"publishes_events,omitempty"`
	BatchConfig      *canonicalBatch  `json:"batch_config,omitempty"`
}

type canonicalRetry struct {
	Retryable   bool    `json:"retryable"`
	MaxAttempts int     `json:"max_attempts"`
	Backoff     string  `json:"backoff"`
	Base        string  `json:"base"`
	Cap         string  `json:"cap"`
	Jitter      float64 `json:"jitter"`
}
