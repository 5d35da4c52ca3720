package ffi

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/api"
	"github.com/tasker-go/tasker/internal/api/gen"
)

// FuzzHostCompletions feeds the host's answer (outside input: whatever a
// step function gives with tasker_step_result) to a push worker: each
// event gets exactly one completion, for itself, that the poll route takes.
func FuzzHostCompletions(f *testing.F) {
	for _, seed := range []string{
		`[{"outcome": "success", "result": {"a": 1}}]`,
		`[{"outcome": "failure", "error": {"message": "m", "retryable": false, "retry_after_seconds": 2}}]`,
		`[{"outcome": "checkpoint_yield", "checkpoint": {"cursor": 3, "items_processed": 2}}]`,
		`[{"outcome": "handed_back"}]`, `[]`, `[null]`, `[1]`, `{}`, `[{"outcome": "success"}, {"outcome": "success"}]`,
		`[{"outcome": "success", "event_id": "not a uuid"}]`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, answer []byte, batch bool) {
		// A call carries one event (pushLoop asks for one), of a batch
		// worker's step or not.
		events := []gen.WorkerEvent{{EventId: uuid.New()}}
		if batch {
			raw := json.RawMessage(`{}`)
			events[0].Batch = &raw
		}
		s := &served{call: func([]byte, int) ([]byte, error) { return answer, nil }}
		done := s.run(events, nil, 1<<20)
		if len(done) != len(events) {
			t.Fatalf("%d completions for %d events", len(done), len(events))
		}
		for i, c := range done {
			if c.EventId == nil || *c.EventId != events[i].EventId {
				t.Fatalf("completion %d is for %v, want %v", i, c.EventId, events[i].EventId)
			}
			if err := api.CheckCompletion(&c, events[i].Batch != nil); err != nil {
				t.Fatalf("completion %d would be refused: %v", i, err)
			}
		}
	})
}
