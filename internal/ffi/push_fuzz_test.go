package ffi

import (
	"bytes"
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
		`[{"outcome": "success"}, {"result": 1}]`, `[{"outcome": "success"}, null, 2]`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, answer []byte, batch bool) {
		// hostCompletions' one pass decodes as element by element does.
		if got, err := hostCompletions(answer); err == nil {
			var raws []json.RawMessage
			if err := json.Unmarshal(answer, &raws); err != nil || len(raws) != len(got) {
				t.Fatalf("hostCompletions gave %d completions of an answer element by element refuses (%v)", len(got), err)
			}
			for i, r := range raws {
				var want gen.WorkerCompletion
				if json.Unmarshal(r, &want) != nil {
					want = gen.WorkerCompletion{}
				}
				a, _ := json.Marshal(got[i].c)
				b, _ := json.Marshal(want)
				if !bytes.Equal(a, b) {
					t.Fatalf("element %d: one pass %s, element by element %s", i, a, b)
				}
				if got[i].c.Outcome == "" && len(got[i].raw) == 0 {
					t.Fatalf("element %d is not a completion but is not kept to be quoted", i)
				}
			}
		}
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
