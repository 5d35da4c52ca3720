package ffi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/api/gen"
)

// tokens is v's JSON as a stream of tokens (numbers as written): what a
// reader of it sees, whatever the spacing and escapes.
func tokens(t *testing.T, b []byte) []any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out []any
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		out = append(out, tok)
	}
}

// sampleEvent is an event as a push worker gets one, every field set.
func sampleEvent() gen.WorkerEvent {
	raw := func(s string) *json.RawMessage { r := json.RawMessage(s); return &r }
	id := func() *uuid.UUID { u := uuid.New(); return &u }
	method := "call"
	return gen.WorkerEvent{
		Attempt: 2, AttemptId: id(), Batch: raw(`{"cursor": {"start": 0, "end": 10}}`), Checkpoint: raw(`null`),
		CorrelationId: id(), ParentCorrelationId: id(),
		DependencyResults: map[string]json.RawMessage{"b": json.RawMessage(`{"x":1}`), "a": json.RawMessage(`[1, 2.5e3, "é<>&"]`), "c": nil},
		DispatchedAt:      time.Date(2026, 12, 6, 18, 0, 0, 123456789, time.UTC),
		EventId:           uuid.New(), HandlerMethod: &method, HandlerName: "pkg.Handler", Initialization: raw(`{"k": "v"}`),
		MaxAttempts: 3, Namespace: "ns", StepName: "step \"one\"\n", StepUuid: uuid.New(),
		TaskContext: json.RawMessage(`{"value": 3}`), TaskUuid: uuid.New(),
	}
}

// TestSampleEventSetsEveryField: appendEvent writes gen.WorkerEvent's
// fields one by one, and the tests compare it with json.Marshal on
// sampleEvent; a field the generator adds that sampleEvent leaves zero
// would be dropped by appendEvent without a test failing.
func TestSampleEventSetsEveryField(t *testing.T) {
	e := sampleEvent()
	v := reflect.ValueOf(e)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("sampleEvent leaves gen.WorkerEvent.%s zero: set it, and write it in appendEvent", v.Type().Field(i).Name)
		}
	}
	// appendEvent itself, not appendEvents, whose fallback to
	// json.Marshal would write every field.
	got, ok := appendEvent(nil, &e)
	if !ok {
		t.Fatal("appendEvent refused sampleEvent")
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(got, &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != v.NumField() {
		t.Fatalf("appendEvent writes %d keys of gen.WorkerEvent's %d fields", len(keys), v.NumField())
	}
}

func TestAppendEventsAsMarshal(t *testing.T) {
	full := sampleEvent()
	bare := gen.WorkerEvent{EventId: uuid.New(), DispatchedAt: time.Unix(0, 0).In(time.FixedZone("x", 3600))}
	for _, events := range [][]gen.WorkerEvent{{}, {full}, {bare}, {full, bare}} {
		want, err := json.Marshal(events)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendEvents([]byte("x"), events)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, []byte("x")) {
			t.Fatalf("the buffer's head was overwritten: %s", got)
		}
		if a, b := tokens(t, got[1:]), tokens(t, want); !reflect.DeepEqual(a, b) {
			t.Fatalf("appendEvents:\n%s\njson.Marshal:\n%s", got[1:], want)
		}
	}
	// What json.Marshal refuses, appendEvents refuses, and leaves buf as
	// it was.
	bad := sampleEvent()
	bad.TaskContext = json.RawMessage(`{"a":`)
	if _, err := json.Marshal([]gen.WorkerEvent{bad}); err == nil {
		t.Fatal("json.Marshal took invalid raw JSON")
	}
	if got, err := appendEvents([]byte("x"), []gen.WorkerEvent{full, bad}); err == nil || string(got) != "x" {
		t.Fatalf("appendEvents of invalid raw JSON: %q, %v", got, err)
	}
	// An empty raw value that is not nil is refused too (nil is null).
	empty := sampleEvent()
	empty.TaskContext = json.RawMessage{}
	if _, err := appendEvents(nil, []gen.WorkerEvent{empty}); err == nil {
		t.Fatal("appendEvents took an empty raw value json.Marshal refuses")
	}
	// Times at the edges of what time.Time's MarshalJSON takes: the same
	// verdict, and, where taken, the same text.
	for _, off := range []int{24*3600 - 1, -(24*3600 - 1), 24 * 3600, -24 * 3600, 24*3600 + 60} {
		for _, year := range []int{0, 2026, 9999, 10000, -1} {
			ev := sampleEvent()
			ev.DispatchedAt = time.Date(year, 6, 1, 0, 0, 0, 5, time.FixedZone("x", off))
			want, werr := json.Marshal([]gen.WorkerEvent{ev})
			got, gerr := appendEvents(nil, []gen.WorkerEvent{ev})
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("%v: json.Marshal %v, appendEvents %v", ev.DispatchedAt, werr, gerr)
			}
			if werr == nil && !reflect.DeepEqual(tokens(t, got), tokens(t, want)) {
				t.Fatalf("%v: appendEvents %s, json.Marshal %s", ev.DispatchedAt, got, want)
			}
		}
	}
}

// FuzzAppendEvents: a host reads what json.Marshal would have given it
// (the same tokens, in the same order), and an event json.Marshal refuses
// is refused.
func FuzzAppendEvents(f *testing.F) {
	f.Add("pkg.Handler", "ns", "step", []byte(`{"a": 1}`), []byte(`{"x": [1, "y"]}`), []byte(`null`), "dep", int64(0), int64(0), int32(0), 1)
	f.Add("é\u2028<&>", "\x00\x7f", `"\`, []byte(` [ ] `), []byte(``), []byte(`{"a":`), "", int64(-62135596800), int64(1), int32(-3600), 0)
	f.Add("h", "n", "s", []byte(`1e5`), []byte(`"\ud800"`), []byte("\"\xff\""), "\xff", int64(253402300800), int64(123456789), int32(3600), 2)
	f.Add("h", "n", "s", []byte(`{}`), []byte(`{}`), []byte(`{}`), "d", int64(1700000000), int64(0), int32(86400), 1)
	f.Fuzz(func(t *testing.T, handler, namespace, step string, taskCtx, result, init []byte, dep string, unix, nsec int64, zone int32, n int) {
		e := sampleEvent()
		e.HandlerName, e.Namespace, e.StepName = handler, namespace, step
		e.TaskContext = taskCtx
		e.DependencyResults = map[string]json.RawMessage{dep: result, dep + "2": json.RawMessage(`{}`)}
		raw := json.RawMessage(init)
		e.Initialization = &raw
		e.DispatchedAt = time.Unix(unix, nsec).In(time.FixedZone("z", int(zone)))
		events := make([]gen.WorkerEvent, n&3)
		for i := range events {
			events[i] = e
		}
		want, werr := json.Marshal(events)
		got, gerr := appendEvents(nil, events)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("json.Marshal: %v; appendEvents: %v", werr, gerr)
		}
		if werr != nil {
			return
		}
		if a, b := tokens(t, got), tokens(t, want); !reflect.DeepEqual(a, b) {
			t.Fatalf("appendEvents:\n%s\njson.Marshal:\n%s", got, want)
		}
	})
}

func TestFastCompletions(t *testing.T) {
	id := uuid.New()
	for _, tc := range []struct {
		in   string
		fast bool
	}{
		{`[]`, true},
		{` [ ] `, true},
		{`[{"event_id":"` + id.String() + `","outcome":"success","result":{"a": [1, 2]}}]`, true},
		{`[{"outcome":"success"},{"outcome":"success","result":null,"event_id":null}]`, true},
		{"[\n {\"outcome\" : \"success\" , \"result\" : \"x\" }\n]", true},
		{`[{"outcome":"failure","error":{"message":"m"}}]`, false}, // a key it does not read
		{`[{"Outcome":"success"}]`, false},                         // encoding/json folds case
		{`[{"outcome":"success","outcome":"failure"}]`, false},     // the last one wins there
		{`[{"outcome":""}]`, false},                                // not a completion
		{`[{"result":1}]`, false},                                  // no outcome
		{`[{"outcome":"succ\u0065ss"}]`, false},                    // an escape
		{`[{"outcome":"success","event_id":"nope"}]`, false},       // not a uuid
		{`[{"outcome":"success","result":{"a":}}]`, false},         // not JSON
		{`[{"outcome":"success"}] x`, false},                       // trailing bytes
		{`[{"outcome":"success"},]`, false},                        // a trailing comma
		{`{"outcome":"success"}`, false},                           // not an array
		{`[null]`, false},                                          // not an object
	} {
		got, ok := fastCompletions([]byte(tc.in))
		if ok != tc.fast {
			t.Fatalf("%s: fast %v, want %v", tc.in, ok, tc.fast)
		}
		if !ok {
			continue
		}
		var want []gen.WorkerCompletion
		if err := json.Unmarshal([]byte(tc.in), &want); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d completions, want %d", tc.in, len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i].c, want[i]) {
				t.Fatalf("%s: element %d is %+v, json.Unmarshal %+v", tc.in, i, got[i].c, want[i])
			}
		}
	}
}

// FuzzFastCompletions: an answer fastCompletions takes is one
// json.Unmarshal takes, read the same way, byte for byte.
func FuzzFastCompletions(f *testing.F) {
	for _, s := range []string{
		`[{"event_id":"0193a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b","outcome":"success","result":{"a":1}}]`,
		`[{"outcome":"success","result":[1,-0.5e-3,true,false,null,"\u00e9\n"]},{"outcome":"x"}]`,
		`[{"outcome":"success","result":"` + "\xff\xfe" + `"}]`, `[]`, ` [ {"outcome":"a"} ] `,
		`[{"outcome":"success","result":01}]`, `[{"outcome":"success","result":1.}]`, `[{"outcome":"success","result":"\x"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		got, ok := fastCompletions(answer)
		if !ok {
			return
		}
		var want []gen.WorkerCompletion
		if err := json.Unmarshal(answer, &want); err != nil {
			t.Fatalf("fastCompletions took %q, json.Unmarshal refuses it: %v", answer, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d completions, json.Unmarshal %d", answer, len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i].c, want[i]) {
				t.Fatalf("%q: element %d is %+v, json.Unmarshal %+v", answer, i, got[i].c, want[i])
			}
		}
	})
}

// BenchmarkPushJSON: a push call's JSON both ways (one event of a linear
// chain's step, one success), by encoding/json, by hand as push.go does
// (a fresh presized buffer), and by hand into a buffer kept between calls
// (measured, not taken: docs/concurrency.md).
func BenchmarkPushJSON(b *testing.B) {
	e := sampleEvent()
	e.AttemptId, e.Batch, e.Checkpoint, e.HandlerMethod, e.ParentCorrelationId = nil, nil, nil, nil, nil
	e.DependencyResults = map[string]json.RawMessage{"a": json.RawMessage(`{"step":"a","ok":true}`)}
	events := []gen.WorkerEvent{e}
	answer := []byte(`[{"event_id":"` + e.EventId.String() + `","outcome":"success","result":{"step":"b","ok":true}}]`)
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(events); err != nil {
				b.Fatal(err)
			}
			var cs []gen.WorkerCompletion
			if err := json.Unmarshal(answer, &cs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("by-hand", func(b *testing.B) { // as push.go's run does
		for b.Loop() {
			if _, err := appendEvents(make([]byte, 0, eventsBufSize), events); err != nil {
				b.Fatal(err)
			}
			if _, ok := fastCompletions(answer); !ok {
				b.Fatal("not fast")
			}
		}
	})
	b.Run("by-hand-kept-buffer", func(b *testing.B) { // the alternative measured and not taken
		var buf []byte
		for b.Loop() {
			raw, err := appendEvents(buf, events)
			if err != nil {
				b.Fatal(err)
			}
			buf = raw[:0]
			if _, ok := fastCompletions(answer); !ok {
				b.Fatal("not fast")
			}
		}
	})
}
