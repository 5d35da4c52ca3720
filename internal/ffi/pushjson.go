package ffi

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/api/gen"
	"github.com/tasker-go/tasker/internal/jsonenc"
)

// The JSON of a push call, both ways, without encoding/json's reflection
// on the common shapes: a push worker's events are encoded by appendEvents
// and the host's success completions decoded by fastCompletions, each
// falling back to encoding/json for anything else. What a host reads is
// what json.Marshal would have given it, keys in the same order, up to
// spacing and escapes (raw JSON is passed as it is, not compacted;
// FuzzAppendEvents), and what the engine reads of an answer is what
// json.Unmarshal reads (FuzzFastCompletions). appendEvent writes
// gen.WorkerEvent's fields one by one: TestSampleEventSetsEveryField fails
// when the type gains one it does not know.

// appendEvents appends the JSON array of events to buf. An event whose
// raw JSON is not valid fails the whole array, as with json.Marshal.
func appendEvents(buf []byte, events []gen.WorkerEvent) ([]byte, error) {
	start := len(buf)
	buf = append(buf, '[')
	for i := range events {
		if i > 0 {
			buf = append(buf, ',')
		}
		var ok bool
		if buf, ok = appendEvent(buf, &events[i]); !ok {
			// A value the fast path does not write (a time json.Marshal
			// refuses, raw JSON that is not JSON): encoding/json's
			// verdict, and its bytes.
			raw, err := json.Marshal(events)
			if err != nil {
				return buf[:start], err
			}
			return append(buf[:start], raw...), nil
		}
	}
	return append(buf, ']'), nil
}

// appendEvent appends one event's object, in the order of gen.WorkerEvent's
// fields, or reports false.
func appendEvent(b []byte, e *gen.WorkerEvent) ([]byte, bool) {
	ok := true
	b = append(b, `{"attempt":`...)
	b = strconv.AppendInt(b, int64(e.Attempt), 10)
	if e.AttemptId != nil {
		b = appendUUIDField(b, `,"attempt_id":`, *e.AttemptId)
	}
	b, ok = appendRawField(b, ok, `,"batch":`, e.Batch)
	b, ok = appendRawField(b, ok, `,"checkpoint":`, e.Checkpoint)
	if e.CorrelationId != nil {
		b = appendUUIDField(b, `,"correlation_id":`, *e.CorrelationId)
	}
	b = append(b, `,"dependency_results":`...)
	if e.DependencyResults == nil {
		b = append(b, "null"...)
	} else {
		// Sorted by key, as json.Marshal sorts a map's: a Python handler
		// iterates the dict in this order.
		keys := make([]string, 0, len(e.DependencyResults))
		for k := range e.DependencyResults {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.AppendString(b, k)
			b = append(b, ':')
			b, ok = appendRaw(b, ok, e.DependencyResults[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"dispatched_at":`...)
	b, ok = appendTime(b, ok, e.DispatchedAt)
	b = appendUUIDField(b, `,"event_id":`, e.EventId)
	if e.HandlerMethod != nil {
		b = append(b, `,"handler_method":`...)
		b = jsonenc.AppendString(b, *e.HandlerMethod)
	}
	b = append(b, `,"handler_name":`...)
	b = jsonenc.AppendString(b, e.HandlerName)
	b, ok = appendRawField(b, ok, `,"initialization":`, e.Initialization)
	b = append(b, `,"max_attempts":`...)
	b = strconv.AppendInt(b, int64(e.MaxAttempts), 10)
	b = append(b, `,"namespace":`...)
	b = jsonenc.AppendString(b, e.Namespace)
	if e.ParentCorrelationId != nil {
		b = appendUUIDField(b, `,"parent_correlation_id":`, *e.ParentCorrelationId)
	}
	b = append(b, `,"step_name":`...)
	b = jsonenc.AppendString(b, e.StepName)
	b = appendUUIDField(b, `,"step_uuid":`, e.StepUuid)
	b = append(b, `,"task_context":`...)
	b, ok = appendRaw(b, ok, e.TaskContext)
	b = appendUUIDField(b, `,"task_uuid":`, e.TaskUuid)
	return append(b, '}'), ok
}

func appendUUIDField(b []byte, key string, id uuid.UUID) []byte {
	return jsonenc.AppendQuotedUUID(append(b, key...), id)
}

// appendRawField appends an omitempty raw field: nothing when p is nil.
func appendRawField(b []byte, ok bool, key string, p *json.RawMessage) ([]byte, bool) {
	if p == nil {
		return b, ok
	}
	b = append(b, key...)
	return appendRaw(b, ok, *p)
}

// appendRaw appends raw JSON as it is (null when nil, as json.Marshal
// writes a nil RawMessage); ok turns false when it is not valid JSON (an
// empty one that is not nil included, as json.Marshal refuses it).
func appendRaw(b []byte, ok bool, raw json.RawMessage) ([]byte, bool) {
	if raw == nil {
		return append(b, "null"...), ok
	}
	if end, valid := jsonenc.SkipValue(raw, jsonenc.SkipSpace(raw, 0)); !valid || jsonenc.SkipSpace(raw, end) != len(raw) {
		return b, false
	}
	return append(b, raw...), ok
}

// appendTime appends t as time.Time's MarshalJSON does, or reports false
// where that refuses it (a year outside 0–9999, a zone offset of 24 hours
// or more), leaving the verdict to encoding/json.
func appendTime(b []byte, ok bool, t time.Time) ([]byte, bool) {
	_, off := t.Zone()
	if y := t.Year(); y < 0 || y > 9999 || off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), ok
}

// fastCompletions decodes the host's answer when it is an array of
// objects with only the keys event_id (a uuid or null), outcome (a
// non-empty string) and result (any value), each at most once: what a
// host's successes are. Else it reports false, and encoding/json decides.
// The results are slices of out, which the caller owns.
func fastCompletions(out []byte) ([]hostCompletion, bool) {
	i := jsonenc.SkipSpace(out, 0)
	if i >= len(out) || out[i] != '[' {
		return nil, false
	}
	var got []hostCompletion
	i = jsonenc.SkipSpace(out, i+1)
	if i < len(out) && out[i] == ']' {
		return []hostCompletion{}, jsonenc.SkipSpace(out, i+1) == len(out)
	}
	for {
		var (
			c  gen.WorkerCompletion
			ok bool
		)
		if c, i, ok = fastCompletion(out, i); !ok {
			return nil, false
		}
		got = append(got, hostCompletion{c: c})
		var closed bool
		if i, closed, ok = jsonenc.AfterElement(out, i, ']'); !ok {
			return nil, false
		}
		if closed {
			return got, jsonenc.SkipSpace(out, i) == len(out)
		}
	}
}

// fastCompletion reads one completion object at out[i:] (see
// fastCompletions).
func fastCompletion(out []byte, i int) (c gen.WorkerCompletion, end int, ok bool) {
	if i >= len(out) || out[i] != '{' {
		return c, i, false
	}
	var seenID, seenOutcome, seenResult bool
	i = jsonenc.SkipSpace(out, i+1)
	if i < len(out) && out[i] == '}' {
		return c, i, false // no outcome
	}
	for {
		var key []byte
		if key, i, ok = jsonenc.PlainString(out, i); !ok {
			return c, i, false
		}
		if i, ok = jsonenc.AfterKey(out, i); !ok {
			return c, i, false
		}
		switch string(key) {
		case "event_id":
			if seenID {
				return c, i, false
			}
			seenID = true
			if i, ok = jsonenc.SkipLiteral(out, i, "null"); ok {
				break
			}
			var s []byte
			if s, i, ok = jsonenc.PlainString(out, i); !ok {
				return c, i, false
			}
			id, err := uuid.ParseBytes(s)
			if err != nil {
				return c, i, false
			}
			c.EventId = &id
		case "outcome":
			if seenOutcome {
				return c, i, false
			}
			seenOutcome = true
			var s []byte
			if s, i, ok = jsonenc.PlainString(out, i); !ok || len(s) == 0 {
				return c, i, false
			}
			c.Outcome = gen.WorkerCompletionOutcome(s)
		case "result":
			if seenResult {
				return c, i, false
			}
			seenResult = true
			start := i
			if i, ok = jsonenc.SkipValue(out, i); !ok {
				return c, i, false
			}
			if string(out[start:i]) != "null" {
				raw := json.RawMessage(out[start:i:i])
				c.Result = &raw
			}
		default:
			return c, i, false
		}
		var closed bool
		if i, closed, ok = jsonenc.AfterElement(out, i, '}'); !ok {
			return c, i, false
		}
		if closed {
			return c, i, seenOutcome
		}
	}
}
