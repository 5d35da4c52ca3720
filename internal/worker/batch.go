package worker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tasker-go/tasker/internal/dynamic"
	"github.com/tasker-go/tasker/taskertype"
)

// batchInput builds a batch worker's StepInput.Batch: its cursor range
// from the batch plan in its batchable step's result (a dependency's, in
// in.Results), its batch's settings, and the last checkpoint the step
// stored (step.Result holds it until the final result replaces it).
func batchInput(st *BatchSettings, in *taskertype.StepInput, step *taskertype.Step) (*taskertype.BatchInput, error) {
	id, ok := strings.CutPrefix(in.StepName, st.TemplateStep+"_")
	if !ok {
		return nil, fmt.Errorf("step name %q does not start with its worker template %q", in.StepName, st.TemplateStep+"_")
	}
	result, ok := in.Results[st.Batchable]
	if !ok {
		return nil, fmt.Errorf("the result of batchable step %q is not among the step's dependencies", st.Batchable)
	}
	out, err := dynamic.ParseBatchOutcome(result)
	if err != nil {
		return nil, fmt.Errorf("batchable step %q: %w", st.Batchable, err)
	}
	b := &taskertype.BatchInput{Metadata: st.Metadata, TemplateStep: st.TemplateStep}
	if out.Type == taskertype.BatchNoBatches {
		b.IsNoOp = true
		b.Cursor = taskertype.CursorConfig{BatchID: id, StartCursor: json.RawMessage("0"), EndCursor: json.RawMessage("0")}
	} else {
		found := false
		for k, c := range out.CursorConfigs {
			if c.BatchID == "" {
				c.BatchID = fmt.Sprintf("%03d", k+1)
			}
			if c.BatchID == id {
				b.Cursor, found = c, true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("batchable step %q planned no batch %q", st.Batchable, id)
		}
	}
	cp, err := storedCheckpoint(step.Result)
	if err != nil {
		return nil, err
	}
	b.Checkpoint = cp
	return b, nil
}

// storedCheckpoint reads the checkpoint an unfinished batch worker's
// result holds ({"checkpoint": ...}); nil if none.
func storedCheckpoint(result json.RawMessage) (*taskertype.Checkpoint, error) {
	if len(result) == 0 || string(result) == "null" {
		return nil, nil
	}
	var r struct {
		Checkpoint *taskertype.Checkpoint `json:"checkpoint"`
	}
	if err := json.Unmarshal(result, &r); err != nil {
		return nil, fmt.Errorf("the stored checkpoint is not valid: %w", err)
	}
	return r.Checkpoint, nil
}

// checkpointResult returns what an unfinished batch worker's result holds
// after it yields cp at now: {"checkpoint": cp}, counting the yields.
func checkpointResult(prev json.RawMessage, cp *taskertype.Checkpoint, now time.Time) (json.RawMessage, error) {
	last, err := storedCheckpoint(prev)
	if err != nil {
		last = nil // a worker's last checkpoint replaces a result it cannot read
	}
	c := *cp
	c.At = now.UTC()
	c.Yields = 1
	if last != nil {
		c.Yields = last.Yields + 1
	}
	b, err := json.Marshal(map[string]any{taskertype.CheckpointKey: c})
	if err != nil {
		return nil, fmt.Errorf("encode the checkpoint: %w", err)
	}
	return b, nil
}

// isCheckpoint reports whether a handler's result is a checkpoint yield.
func isCheckpoint(v any) bool {
	switch v := v.(type) {
	case taskertype.Checkpoint:
		return true
	case *taskertype.Checkpoint:
		return v != nil
	}
	return false
}

// yield turns a handler's checkpoint into the attempt's outcome: stored and
// run again, for a batch worker; a permanent failure for any other step.
func (w *Worker) yield(step *taskertype.Step, in *taskertype.StepInput, v any) *outcome {
	var cp taskertype.Checkpoint
	switch v := v.(type) {
	case taskertype.Checkpoint:
		cp = v
	case *taskertype.Checkpoint:
		cp = *v
	}
	fail := func(msg string) *outcome {
		return &outcome{failure: &taskertype.StepFailure{Kind: taskertype.FailureHandler, Attempt: step.Attempts, Message: msg}}
	}
	switch {
	case in.Batch == nil:
		return fail(fmt.Sprintf("handler %q returned a checkpoint, but step %q is not a batch worker: only the workers a batchable step creates may yield one", step.Handler, step.Name))
	case len(cp.Cursor) == 0 || !json.Valid(cp.Cursor):
		return fail("the checkpoint has no cursor (or one that is not JSON): set Checkpoint.Cursor to where the next run starts")
	case len(cp.AccumulatedResults) > 0 && !json.Valid(cp.AccumulatedResults):
		return fail("the checkpoint's accumulated_results are not valid JSON")
	case cp.ItemsProcessed < 0:
		return fail(fmt.Sprintf("the checkpoint's items_processed is %d: it counts the items processed so far, never negative", cp.ItemsProcessed))
	}
	if limit := w.cfg.MaxResultBytes; limit > 0 && len(cp.Cursor)+len(cp.AccumulatedResults) > limit {
		return fail(fmt.Sprintf("the checkpoint is %d bytes of JSON, more than the limit of %d (Config.MaxResultBytes): accumulate less", len(cp.Cursor)+len(cp.AccumulatedResults), limit))
	}
	w.checkpoints.Add(1)
	return &outcome{released: true, checkpoint: &cp}
}

// wireCheckpoint returns the checkpoint a batch worker's JSON result
// yields in tasker-core's form, {"type": "checkpoint_yield", "cursor": ...,
// "items_processed": n, "accumulated_results": ...}, or nil when the result
// is none (or the step is no batch worker: its result is its result).
func wireCheckpoint(in *taskertype.StepInput, result json.RawMessage) *taskertype.Checkpoint {
	if in.Batch == nil || !bytes.Contains(result, []byte(`"checkpoint_yield"`)) {
		return nil
	}
	var r struct {
		Type string `json:"type"`
		taskertype.Checkpoint
	}
	if json.Unmarshal(result, &r) != nil || r.Type != "checkpoint_yield" {
		return nil
	}
	r.Checkpoint.At, r.Checkpoint.Yields = time.Time{}, 0
	return &r.Checkpoint
}
