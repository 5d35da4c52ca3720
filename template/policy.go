package template

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tasker-go/tasker/taskertype"
)

// policyFields holds retry and timeout settings of one level (step,
// template defaults or built-in); nil means not set at that level.
type policyFields struct {
	retryable   *bool
	maxAttempts *int
	backoff     *taskertype.Backoff
	base, cap   *time.Duration
	jitter      *float64
	timeout     *time.Duration
}

func fieldsFrom(r taskertype.RetryPolicy, timeout time.Duration) policyFields {
	return policyFields{
		retryable: &r.Retryable, maxAttempts: &r.MaxAttempts, backoff: &r.Backoff,
		base: &r.Base, cap: &r.Cap, jitter: &r.Jitter, timeout: &timeout,
	}
}

// over returns f with its unset fields taken from under.
func (f policyFields) over(under policyFields) policyFields {
	out := under
	if f.retryable != nil {
		out.retryable = f.retryable
	}
	if f.maxAttempts != nil {
		out.maxAttempts = f.maxAttempts
	}
	if f.backoff != nil {
		out.backoff = f.backoff
	}
	if f.base != nil {
		out.base = f.base
	}
	if f.cap != nil {
		out.cap = f.cap
	}
	if f.jitter != nil {
		out.jitter = f.jitter
	}
	if f.timeout != nil {
		out.timeout = f.timeout
	}
	return out
}

// policy returns the values; every field must be set.
func (f policyFields) policy() (taskertype.RetryPolicy, time.Duration) {
	return taskertype.RetryPolicy{
		Retryable: *f.retryable, MaxAttempts: *f.maxAttempts, Backoff: *f.backoff,
		Base: *f.base, Cap: *f.cap, Jitter: *f.jitter,
	}, *f.timeout
}

// has reports whether field ("retry.base", "timeout") is set.
func (f policyFields) has(field string) bool {
	switch field {
	case "retry.retryable":
		return f.retryable != nil
	case "retry.max_attempts":
		return f.maxAttempts != nil
	case "retry.backoff":
		return f.backoff != nil
	case "retry.base":
		return f.base != nil
	case "retry.cap":
		return f.cap != nil
	case "retry.jitter":
		return f.jitter != nil
	case "timeout":
		return f.timeout != nil
	}
	return false
}

// policyIssue is a broken rule of a retry policy or timeout; fields are the
// fields involved, the one most likely to be fixed first.
type policyIssue struct {
	fields    []string
	msg, hint string
}

func backoffNames() string {
	s := make([]string, len(Backoffs))
	for i, b := range Backoffs {
		s[i] = string(b)
	}
	return strings.Join(s, ", ")
}

func validBackoff(b taskertype.Backoff) bool {
	for _, v := range Backoffs {
		if b == v {
			return true
		}
	}
	return false
}

// vocab names the fields of a retry policy and timeout in one dialect, for
// problems: the model's fields are the tasker dialect's.
type vocab struct {
	base, cap, timeout, attemptsRange string
	ms                                bool // durations are written in milliseconds / seconds
}

var (
	taskerVocab = vocab{base: "base", cap: "cap", timeout: "timeout", attemptsRange: "1..100"}
	coreVocab   = vocab{base: "backoff_base_ms", cap: "max_backoff_ms", timeout: "timeout_seconds", attemptsRange: "0..100", ms: true}
)

// field returns the dialect's name of a model field ("retry.base").
func (v vocab) field(f string) string {
	switch f {
	case "retry.base":
		return "retry." + v.base
	case "retry.cap":
		return "retry." + v.cap
	case "timeout":
		return v.timeout
	}
	return f
}

// checkPolicy checks the effective retry policy and timeout of a step.
func checkPolicy(r taskertype.RetryPolicy, timeout time.Duration, v vocab) []policyIssue {
	var out []policyIssue
	if r.MaxAttempts < 1 || r.MaxAttempts > MaxAttemptsLimit {
		hint := "max_attempts counts every attempt, the first included: 1 means no retry"
		if v.ms {
			hint = "max_attempts counts every attempt, the first included: 0 and 1 mean no retry"
		}
		out = append(out, policyIssue{[]string{"retry.max_attempts"},
			fmt.Sprintf("max_attempts %d is out of range %s", r.MaxAttempts, v.attemptsRange), hint})
	}
	if !validBackoff(r.Backoff) {
		out = append(out, policyIssue{[]string{"retry.backoff"},
			fmt.Sprintf("unknown backoff %q", r.Backoff),
			"use one of " + backoffNames()})
	}
	base, cp := "a positive duration such as 1s", "1s"
	if v.ms {
		base, cp = "a positive number of milliseconds such as 1000", "1000"
	}
	switch {
	case r.Base < 0:
		out = append(out, policyIssue{[]string{"retry.base"},
			fmt.Sprintf("%s %s is negative", v.base, r.Base), "write " + base})
	case r.Base == 0 && r.Backoff != taskertype.BackoffNone && validBackoff(r.Backoff):
		out = append(out, policyIssue{[]string{"retry.base", "retry.backoff"},
			fmt.Sprintf("%s is 0s but backoff is %s", v.base, r.Backoff),
			fmt.Sprintf("give a positive %s such as %s, or set backoff: none for retries without delay", v.base, cp)})
	}
	if r.Base >= 0 && r.Cap < r.Base {
		out = append(out, policyIssue{[]string{"retry.cap", "retry.base"},
			fmt.Sprintf("%s %s is below %s %s", v.cap, r.Cap, v.base, r.Base),
			fmt.Sprintf("%s bounds every delay: make it at least %s", v.cap, v.base)})
	}
	if math.IsNaN(r.Jitter) || r.Jitter < 0 || r.Jitter > 1 {
		out = append(out, policyIssue{[]string{"retry.jitter"},
			fmt.Sprintf("jitter %v is out of range 0..1", r.Jitter),
			"jitter is a fraction: 0.1 spreads each delay by ±10%"})
	}
	if timeout < MinTimeout || timeout > MaxTimeout {
		hint := "give a duration of at least 1ms and at most 24h, such as 30s"
		if v.ms {
			hint = "give timeout_seconds from 1 to 86400 (or handler.initialization.timeout_ms from 1 to 86400000)"
		}
		out = append(out, policyIssue{[]string{"timeout"},
			fmt.Sprintf("%s %s is out of range [%s, %s]", v.timeout, timeout, MinTimeout, MaxTimeout), hint})
	}
	if r.Base%time.Microsecond != 0 || r.Cap%time.Microsecond != 0 {
		out = append(out, policyIssue{[]string{"retry.base", "retry.cap"},
			fmt.Sprintf("%s %s or %s %s is finer than a microsecond", v.base, r.Base, v.cap, r.Cap),
			"delays are kept to the microsecond: write 500us rather than 500ns"})
	}
	return out
}

// policyFields reads the retry settings and timeout of one level: a step
// (step >= 0) or the template's defaults (prefix "defaults.").
func (p *parser) policyFields(r *rawRetry, timeout scalar, step int, prefix string) policyFields {
	var f policyFields
	label := p.loc.label(step)
	at := func(field string) where {
		return where{p.loc.line(step, strings.Split(prefix+field, ".")...), label, prefix + field}
	}
	if r != nil {
		if v, ok := p.boolField(r.Retryable, at("retry.retryable")); ok {
			f.retryable = &v
		}
		if v, ok := p.intField(r.MaxAttempts, at("retry.max_attempts")); ok {
			f.maxAttempts = &v
		}
		if v, ok := p.backoffField(r.Backoff, at("retry.backoff")); ok {
			f.backoff = &v
		}
		if v, ok := p.durationField(r.Base, at("retry.base")); ok {
			f.base = &v
		}
		if v, ok := p.durationField(r.Cap, at("retry.cap")); ok {
			f.cap = &v
		}
		if v, ok := p.floatField(r.Jitter, at("retry.jitter")); ok {
			f.jitter = &v
		}
	}
	if v, ok := p.durationField(timeout, at("timeout")); ok {
		f.timeout = &v
	}
	return f
}

// reportPolicy reports the issues of an effective policy that involve a
// field set at this level, so that a bad default is reported once, at the
// defaults, and not again for every step.
func (p *parser) reportPolicy(eff, own policyFields, step int, label, prefix string) {
	p.reportPolicyAt(eff, own, label, taskerVocab, func(field string) (int, string) {
		return p.loc.line(step, strings.Split(prefix+field, ".")...), prefix + field
	})
}

// reportPolicyAt is reportPolicy for any dialect: at gives the line and the
// name, as written, of a model field ("retry.base") set at this level.
func (p *parser) reportPolicyAt(eff, own policyFields, label string, v vocab, at func(field string) (int, string)) {
	r, timeout := eff.policy()
	for _, is := range checkPolicy(r, timeout, v) {
		for _, field := range is.fields {
			if own.has(field) {
				line, name := at(field)
				p.add(Problem{Line: line, Step: label, Field: name, Message: is.msg, Hint: is.hint})
				break
			}
		}
	}
}

// where locates a field in problems.
type where struct {
	line         int
	label, field string
}

// notScalar reports a mapping or list where a value belongs.
func (p *parser) notScalar(s scalar, w where, want string) bool {
	if s.kind == scalarKind {
		return false
	}
	p.add(Problem{Line: w.line, Step: w.label, Field: w.field,
		Message: "got " + article(kindName(s.node)) + ", want " + want,
		Hint:    "write " + w.field[strings.LastIndex(w.field, ".")+1:] + " as a single value"})
	return true
}

func (p *parser) boolField(s scalar, w where) (bool, bool) {
	if !s.set || p.notScalar(s, w, "true or false") {
		return false, false
	}
	var v bool
	if s.tag != "!!bool" || s.node.Decode(&v) != nil {
		p.add(Problem{Line: w.line, Step: w.label, Field: w.field,
			Message: fmt.Sprintf("%q is not a boolean", s.value), Hint: "write true or false"})
		return false, false
	}
	return v, true
}

func (p *parser) intField(s scalar, w where) (int, bool) {
	if !s.set || p.notScalar(s, w, "a whole number") {
		return 0, false
	}
	var v int
	if s.tag != "!!int" || s.node.Decode(&v) != nil {
		p.add(Problem{Line: w.line, Step: w.label, Field: w.field,
			Message: fmt.Sprintf("%q is not a whole number", s.value), Hint: "write a whole number such as 3"})
		return 0, false
	}
	return v, true
}

func (p *parser) floatField(s scalar, w where) (float64, bool) {
	if !s.set || p.notScalar(s, w, "a number") {
		return 0, false
	}
	var v float64
	if (s.tag != "!!int" && s.tag != "!!float") || s.node.Decode(&v) != nil {
		p.add(Problem{Line: w.line, Step: w.label, Field: w.field,
			Message: fmt.Sprintf("%q is not a number", s.value), Hint: "write a fraction between 0 and 1, such as 0.1"})
		return 0, false
	}
	return v, true
}

func (p *parser) backoffField(s scalar, w where) (taskertype.Backoff, bool) {
	if !s.set || p.notScalar(s, w, "one of "+backoffNames()) {
		return "", false
	}
	// An unknown name is reported by checkPolicy, once per level.
	return taskertype.Backoff(s.value), true
}

func (p *parser) durationField(s scalar, w where) (time.Duration, bool) {
	if !s.set || p.notScalar(s, w, "a duration such as 2s") {
		return 0, false
	}
	if s.tag == "!!int" || s.tag == "!!float" {
		p.add(Problem{Line: w.line, Step: w.label, Field: w.field,
			Message: fmt.Sprintf("%s is a bare number, not a duration", s.value),
			Hint:    "write 500ms or 2s: a number with a unit (ns, us, ms, s, m, h)"})
		return 0, false
	}
	d, err := time.ParseDuration(s.value)
	if err != nil {
		hint := "write a Go duration such as 500ms, 2s or 1m30s"
		if _, nerr := strconv.ParseFloat(s.value, 64); nerr == nil {
			hint = "write 500ms or 2s: a number with a unit (ns, us, ms, s, m, h)"
		}
		p.add(Problem{Line: w.line, Step: w.label, Field: w.field,
			Message: fmt.Sprintf("%q is not a duration", s.value), Hint: hint})
		return 0, false
	}
	return d, true
}
