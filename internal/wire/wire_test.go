package wire

import (
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
	f.Fuzz(func(t *testing.T, body []byte) {
		if task, step, err := DecodeStep(body); err == nil && (task == uuid.Nil || step == uuid.Nil) {
			t.Fatalf("accepted a step message without ids: %q", body)
		}
		if m, err := DecodeTask(body); err == nil && (m.TaskID == uuid.Nil || m.Kind == "") {
			t.Fatalf("accepted a task message without kind or id: %q", body)
		}
	})
}
