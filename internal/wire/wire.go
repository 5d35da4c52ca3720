// Package wire defines the bodies of the messages the engine sends through
// its queues. Bodies are small JSON objects: the store holds the data, a
// message only says which record to look at.
package wire

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/jsonenc"
	"github.com/tasker-go/tasker/queue"
)

// StepMessage asks a worker to run a step. It travels on queue.StepQueue(ns).
type StepMessage struct {
	TaskID uuid.UUID `json:"task_id"`
	StepID uuid.UUID `json:"step_id"`
	// Template and Version name the task's template, so that a worker finds
	// the step's configuration in its template cache without reading the
	// task. Empty in messages sent before they were added.
	Template string `json:"template,omitempty"`
	Version  string `json:"version,omitempty"`
}

// ResultMessage tells orchestration that a step reported. It travels on
// queue.ResultsQueue; the result itself is in the store.
type ResultMessage struct {
	TaskID uuid.UUID `json:"task_id"`
	StepID uuid.UUID `json:"step_id"`
}

// Task command kinds carried on queue.TasksQueue.
const (
	// KindRetryDue: a step of the task may run again.
	KindRetryDue = "retry_due"
)

// TaskMessage is a task-level command for orchestration.
type TaskMessage struct {
	Kind   string    `json:"kind"`
	TaskID uuid.UUID `json:"task_id"`
}

// Encode marshals a message body.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// The message types above always marshal.
		panic(fmt.Sprintf("wire: encode %T: %v", v, err))
	}
	return b
}

// DecodeStep parses a step or result message body.
func DecodeStep(body []byte) (taskID, stepID uuid.UUID, err error) {
	if m, ok := decodeStepFast(body); ok && m.TaskID != uuid.Nil && m.StepID != uuid.Nil {
		return m.TaskID, m.StepID, nil
	}
	var m StepMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return uuid.Nil, uuid.Nil, fmt.Errorf("malformed step message %q: %w", truncate(body), err)
	}
	if m.TaskID == uuid.Nil || m.StepID == uuid.Nil {
		return uuid.Nil, uuid.Nil, fmt.Errorf("malformed step message %q: task_id and step_id are required", truncate(body))
	}
	return m.TaskID, m.StepID, nil
}

// DecodeStepMessage parses a step message body, with the template it names
// when it does.
func DecodeStepMessage(body []byte) (StepMessage, error) {
	if m, ok := decodeStepFast(body); ok && m.TaskID != uuid.Nil && m.StepID != uuid.Nil {
		return m, nil
	}
	var m StepMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return m, fmt.Errorf("malformed step message %q: %w", truncate(body), err)
	}
	if m.TaskID == uuid.Nil || m.StepID == uuid.Nil {
		return m, fmt.Errorf("malformed step message %q: task_id and step_id are required", truncate(body))
	}
	return m, nil
}

// DecodeTask parses a task command body.
func DecodeTask(body []byte) (TaskMessage, error) {
	var m TaskMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return m, fmt.Errorf("malformed task message %q: %w", truncate(body), err)
	}
	if m.TaskID == uuid.Nil || m.Kind == "" {
		return m, fmt.Errorf("malformed task message %q: kind and task_id are required", truncate(body))
	}
	return m, nil
}

// TaskOf returns the task a message body names, for reading ahead: every
// body carries its task's id. A body it cannot read gives false; the
// message's own decoding reports why.
func TaskOf(body []byte) (uuid.UUID, bool) {
	if m, ok := decodeStepFast(body); ok && m.TaskID != uuid.Nil {
		return m.TaskID, true
	}
	var m struct {
		TaskID uuid.UUID `json:"task_id"`
	}
	if json.Unmarshal(body, &m) != nil || m.TaskID == uuid.Nil {
		return uuid.Nil, false
	}
	return m.TaskID, true
}

// Tasks returns the tasks that msgs name, skipping bodies TaskOf cannot read.
func Tasks(msgs []*queue.Message) []uuid.UUID {
	ids := make([]uuid.UUID, 0, len(msgs))
	for _, m := range msgs {
		if id, ok := TaskOf(m.Body); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// decodeStepFast reads a step or result message in the form Encode writes
// it, {"task_id":"…","step_id":"…"} with "template" and "version" after
// them when they are set, plain strings, no white space; ok is false for
// any other form, which json.Unmarshal then reads. What it accepts,
// json.Unmarshal reads the same (FuzzDecode): it saves the reflection and
// the allocations of a decoding per message, twice per step claimed.
func decodeStepFast(b []byte) (m StepMessage, ok bool) {
	var err error
	if b, ok = bytes.CutPrefix(b, []byte(`{"task_id":"`)); !ok || len(b) < 36 {
		return m, false
	}
	if m.TaskID, err = uuid.ParseBytes(b[:36]); err != nil {
		return m, false
	}
	if b, ok = bytes.CutPrefix(b[36:], []byte(`","step_id":"`)); !ok || len(b) < 37 || b[36] != '"' {
		return m, false
	}
	if m.StepID, err = uuid.ParseBytes(b[:36]); err != nil {
		return m, false
	}
	b = b[37:]
	if b, ok = optionalField(b, `,"template":`, &m.Template); !ok {
		return m, false
	}
	if b, ok = optionalField(b, `,"version":`, &m.Version); !ok {
		return m, false
	}
	return m, string(b) == "}"
}

// optionalField reads key and a plain string (jsonenc.PlainString) into
// to when b starts with key, and returns what follows; b as it is when it
// does not start with key.
func optionalField(b []byte, key string, to *string) ([]byte, bool) {
	if len(b) < len(key) || string(b[:len(key)]) != key {
		return b, true
	}
	s, end, ok := jsonenc.PlainString(b, len(key))
	if !ok {
		return b, false
	}
	*to = string(s)
	return b[end:], true
}
