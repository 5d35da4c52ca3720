package dynamic

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

const batchDoc = `name: b
namespace: test
version: 1.0.0
steps:
  - name: plan
    type: batchable
    handler: h
    batch_config: {batch_size: 10, parallelism: 2, cursor_field: row, worker_template: work, failure_strategy: isolate}
  - name: work
    type: batch_worker
    handler: h
    depends_on: [plan]
  - name: collect
    type: deferred_convergence
    handler: h
    depends_on: [work]
`

func batchGraph(t *testing.T) *Graph {
	t.Helper()
	tpl, err := template.Parse("b.yaml", []byte(batchDoc))
	if err != nil {
		t.Fatal(err)
	}
	return New(tpl)
}

func TestPlanBatch(t *testing.T) {
	g := batchGraph(t)
	none := noSteps{}
	p, err := g.PlanBatch(0, &taskertype.BatchProcessingOutcome{Type: taskertype.BatchCreateBatches, WorkerTemplateName: "work",
		CursorConfigs: taskertype.IntCursors(25, 10)}, 100, none)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Workers) != 3 || p.Workers[2].Name != "work_003" || string(p.Workers[2].Input.Cursor.EndCursor) != "25" ||
		p.Workers[0].Input.Metadata != (taskertype.BatchMetadata{CursorField: "row", FailureStrategy: "isolate"}) {
		t.Errorf("workers %+v", p.Workers)
	}
	if len(p.Convergence) != 1 || p.Convergence[0] != 2 {
		t.Errorf("convergence %v, want [2]", p.Convergence)
	}
	p, err = g.PlanBatch(0, &taskertype.BatchProcessingOutcome{Type: taskertype.BatchNoBatches}, 100, none)
	if err != nil || len(p.Workers) != 1 || p.Workers[0].Name != "work_000" || !p.Workers[0].Input.IsNoOp {
		t.Errorf("no batches: %+v, %v; want one no-op work_000", p, err)
	}
	for _, tc := range []struct {
		o    taskertype.BatchProcessingOutcome
		max  int
		want string
	}{
		{taskertype.CreateBatches("work", 50, taskertype.IntCursors(50, 10)...), 4, "more than the limit of 4"},
		{taskertype.CreateBatches("work", 50, taskertype.IntCursors(50, 25)...), 100, "more than the batch_config's batch_size 10"},
		{taskertype.CreateBatches("collect", 5, taskertype.IntCursors(5, 5)...), 100, "not a batch_worker step"},
		{taskertype.CreateBatches("work", 5, taskertype.CursorConfig{BatchID: "../x", StartCursor: json.RawMessage("0"), EndCursor: json.RawMessage("5")}), 100, "has batch_id"},
		{taskertype.CreateBatches("work", 5, taskertype.CursorConfig{BatchID: "a", StartCursor: json.RawMessage("0"), EndCursor: json.RawMessage("1")},
			taskertype.CursorConfig{BatchID: "a", StartCursor: json.RawMessage("1"), EndCursor: json.RawMessage("2")}), 100, "appears twice"},
	} {
		if _, err := g.PlanBatch(0, &tc.o, tc.max, none); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want it to say %q", tc.o, err, tc.want)
		}
	}
	if w := g.WorkerTemplate("work_007"); w != 1 {
		t.Errorf("WorkerTemplate(work_007) = %d, want 1", w)
	}
	if w := g.WorkerTemplate("collect"); w != -1 {
		t.Errorf("WorkerTemplate(collect) = %d, want -1", w)
	}
}

func TestParseBatchOutcome(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{}`, `has no "batch_processing_outcome"`},
		{`{"batch_processing_outcome": {"type": "create_batches"}}`, "no cursor_configs"},
		{`{"batch_processing_outcome": {"type": "create_batches", "worker_count": 2, "cursor_configs": [{"batch_id": "001", "start_cursor": 0, "end_cursor": 1}]}}`, "worker_count 2 but 1 cursor_configs"},
		{`{"batch_processing_outcome": {"type": "no_batches", "worker_count": 1}}`, "no_batches but"},
		{`{"batch_processing_outcome": {"type": "x"}}`, `has type "x"`},
		{`{"batch_processing_outcome": 7}`, "is not an object"},
	} {
		if _, err := ParseBatchOutcome(json.RawMessage(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to say %q", tc.in, err, tc.want)
		}
	}
	o, err := ParseBatchOutcome(json.RawMessage(`{"batch_processing_outcome": {"type": "create_batches", "worker_template_name": "w", "worker_count": 1, "cursor_configs": [{"batch_id": "001", "start_cursor": "a", "end_cursor": "m", "batch_size": 3}], "total_items": 3}, "other": 1}`))
	if err != nil || o.CursorConfigs[0].BatchID != "001" || string(o.CursorConfigs[0].StartCursor) != `"a"` || o.TotalItems != 3 {
		t.Errorf("got %+v, %v", o, err)
	}
}

// FuzzBatchPlan: whatever a batchable handler returns, reading and
// planning it returns a plan within the bounds or an error; never a panic.
func FuzzBatchPlan(f *testing.F) {
	f.Add([]byte(`{"batch_processing_outcome": {"type": "no_batches"}}`))
	f.Add([]byte(`{"batch_processing_outcome": {"type": "create_batches", "worker_template_name": "work", "cursor_configs": [{"batch_id": "001", "start_cursor": 0, "end_cursor": 5, "batch_size": 5}]}}`))
	f.Add([]byte(`{"batch_processing_outcome": {"type": "create_batches", "cursor_configs": [{"start_cursor": 0, "end_cursor": 5}]}}`))
	tpl, err := template.Parse("b.yaml", []byte(batchDoc))
	if err != nil {
		f.Fatal(err)
	}
	g := New(tpl)
	f.Fuzz(func(t *testing.T, result []byte) {
		o, err := ParseBatchOutcome(result)
		if err != nil {
			return
		}
		p, err := g.PlanBatch(0, o, 8, noSteps{})
		if err != nil {
			return
		}
		if len(p.Workers) == 0 || len(p.Workers) > 8 {
			t.Fatalf("%d workers from %s", len(p.Workers), result)
		}
		seen := map[string]bool{}
		for _, w := range p.Workers {
			if seen[w.Name] || !strings.HasPrefix(w.Name, "work_") || g.WorkerTemplate(w.Name) != 1 {
				t.Fatalf("worker %q from %s", w.Name, result)
			}
			seen[w.Name] = true
		}
	})
}

type noSteps struct{}

func (noSteps) Exists(string) bool   { return false }
func (noSteps) Finished(string) bool { return false }
