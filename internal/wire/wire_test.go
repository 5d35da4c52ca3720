package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestStepMessagesRoundTrip(t *testing.T) {
	m := StepMessage{TaskID: uuid.New(), StepID: uuid.New()}
	task, step, err := DecodeStep(Encode(m))
	if err != nil || task != m.TaskID || step != m.StepID {
		t.Fatalf("round trip: %v %v %v", task, step, err)
	}
}

func TestStepMessagesCarryTheirTemplate(t *testing.T) {
	m := StepMessage{TaskID: uuid.New(), StepID: uuid.New(), Template: "approval", Version: "1.2.0"}
	got, err := DecodeStepMessage(Encode(m))
	if err != nil || got != m {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	// A message from before the template was named decodes without it.
	old := []byte(`{"task_id":"` + m.TaskID.String() + `","step_id":"` + m.StepID.String() + `"}`)
	if got, err := DecodeStepMessage(old); err != nil || got.Template != "" || got.StepID != m.StepID {
		t.Fatalf("an old message: %+v %v", got, err)
	}
}

func TestMalformedBodiesAreRefusedWithTheBodyInTheMessage(t *testing.T) {
	for _, body := range []string{"", "{", `{"task_id":"x"}`, `{"task_id":"` + uuid.NewString() + `"}`, "[]"} {
		if _, _, err := DecodeStep([]byte(body)); err == nil {
			t.Errorf("DecodeStep(%q) accepted a malformed body", body)
		}
		if _, err := DecodeStepMessage([]byte(body)); err == nil {
			t.Errorf("DecodeStepMessage(%q) accepted a malformed body", body)
		}
		if _, err := DecodeTask([]byte(body)); err == nil {
			t.Errorf("DecodeTask(%q) accepted a malformed body", body)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(StepMessage{TaskID: uuid.New(), StepID: uuid.New()}))
	f.Add(Encode(TaskMessage{Kind: KindRetryDue, TaskID: uuid.New()}))
	f.Add([]byte(`{"kind":1}`))
	f.Add(Encode(StepMessage{TaskID: uuid.New(), StepID: uuid.New(), Template: "tpl", Version: "1.0.0"}))
	f.Add(Encode(StepMessage{TaskID: uuid.New(), StepID: uuid.New(), Version: "ü<&>"}))
	f.Add(Encode(ResultMessage{TaskID: uuid.New(), StepID: uuid.New()}))
	f.Add([]byte(`{"task_id":"` + uuid.NewString() + `","step_id":"` + uuid.NewString() + "\",\"template\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		// The fast path reads only what encoding/json reads the same.
		if fast, ok := decodeStepFast(body); ok {
			var m StepMessage
			if err := json.Unmarshal(body, &m); err != nil || m != fast {
				t.Fatalf("%q: the fast path read %+v, encoding/json %+v (%v)", body, fast, m, err)
			}
		}
		if task, step, err := DecodeStep(body); err == nil && (task == uuid.Nil || step == uuid.Nil) {
			t.Fatalf("accepted a step message without ids: %q", body)
		}
		if m, err := DecodeTask(body); err == nil && (m.TaskID == uuid.Nil || m.Kind == "") {
			t.Fatalf("accepted a task message without kind or id: %q", body)
		}
	})
}

// TestDecodeFastTakesEncoded: every body Encode writes for a step or
// result message, plain strings or not, decodes to the message, and the
// plain ones on the fast path.
func TestDecodeFastTakesEncoded(t *testing.T) {
	for _, m := range []StepMessage{
		{TaskID: uuid.New(), StepID: uuid.New()},
		{TaskID: uuid.New(), StepID: uuid.New(), Template: "order_fulfillment", Version: "1.2.3"},
		{TaskID: uuid.New(), StepID: uuid.New(), Template: "only"},
		{TaskID: uuid.New(), StepID: uuid.New(), Version: "0.1"},
		{TaskID: uuid.New(), StepID: uuid.New(), Template: `quo"te`, Version: "<&>"},
		{TaskID: uuid.New(), StepID: uuid.New(), Template: "ünï", Version: "tab\t"},
	} {
		body := Encode(m)
		got, err := DecodeStepMessage(body)
		if err != nil || got != m {
			t.Fatalf("%s: got %+v, %v", body, got, err)
		}
		plain := !strings.ContainsAny(m.Template+m.Version, "\"\\\t<>&")
		if fast, ok := decodeStepFast(body); ok != plain || (ok && fast != m) {
			t.Fatalf("%s: fast path %+v, %v; want it to take the plain ones", body, fast, ok)
		}
		if id, ok := TaskOf(body); !ok || id != m.TaskID {
			t.Fatalf("%s: TaskOf %s, %v", body, id, ok)
		}
	}
}
