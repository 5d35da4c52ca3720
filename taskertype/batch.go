package taskertype

import (
	"encoding/json"
	"fmt"
	"time"
)

// The types of a batchable step's outcome, as tasker-core names them.
const (
	BatchNoBatches     = "no_batches"
	BatchCreateBatches = "create_batches"
)

// CursorConfig is the range of items one batch worker processes, in
// tasker-core's wire form: from StartCursor (included) to EndCursor
// (excluded). The cursors are any JSON values (numbers, strings, objects):
// the handlers that plan and process a batch agree on what they mean.
type CursorConfig struct {
	// BatchID is the worker's number, 1-based and zero-padded to 3 digits
	// ("001"): the worker step is named {worker_template}_{batch_id}.
	BatchID     string          `json:"batch_id"`
	StartCursor json.RawMessage `json:"start_cursor"`
	EndCursor   json.RawMessage `json:"end_cursor"`
	BatchSize   int             `json:"batch_size"`
}

// IntRange returns the cursors as integers, for the common case of a batch
// over row numbers or offsets; an error names the cursor that is not one.
func (c CursorConfig) IntRange() (start, end int64, err error) {
	if err := json.Unmarshal(c.StartCursor, &start); err != nil {
		return 0, 0, fmt.Errorf("batch %s: start_cursor %s is not an integer: %w", c.BatchID, c.StartCursor, err)
	}
	if err := json.Unmarshal(c.EndCursor, &end); err != nil {
		return 0, 0, fmt.Errorf("batch %s: end_cursor %s is not an integer: %w", c.BatchID, c.EndCursor, err)
	}
	return start, end, nil
}

// IntCursors returns the cursor configs of n items in batches of size
// items, numbered from 1: the plan of a batch over offsets 0..n-1.
func IntCursors(n, size int) []CursorConfig {
	if n <= 0 || size <= 0 {
		return nil
	}
	out := make([]CursorConfig, 0, (n+size-1)/size)
	for start := 0; start < n; start += size {
		end := min(start+size, n)
		out = append(out, CursorConfig{
			BatchID:     fmt.Sprintf("%03d", len(out)+1),
			StartCursor: json.RawMessage(fmt.Sprint(start)),
			EndCursor:   json.RawMessage(fmt.Sprint(end)),
			BatchSize:   end - start,
		})
	}
	return out
}

// BatchProcessingOutcome is what a batchable step's handler plans, in
// tasker-core's wire form. The handler returns it in its result under the
// key "batch_processing_outcome" (BatchResult builds such a result): the
// engine then creates one worker step per cursor config, copies of the
// batch_worker step WorkerTemplateName, in the transaction that completes
// the batchable step (docs/workflows.md).
type BatchProcessingOutcome struct {
	Type               string         `json:"type"`
	WorkerTemplateName string         `json:"worker_template_name,omitempty"`
	WorkerCount        int            `json:"worker_count,omitempty"`
	CursorConfigs      []CursorConfig `json:"cursor_configs,omitempty"`
	TotalItems         int64          `json:"total_items,omitempty"`
}

// NoBatches is the outcome that plans no batch: one no-op placeholder
// worker is created so that the convergence step still runs.
func NoBatches() BatchProcessingOutcome { return BatchProcessingOutcome{Type: BatchNoBatches} }

// CreateBatches is the outcome that creates one copy of the batch_worker
// step workerTemplate per cursor config.
func CreateBatches(workerTemplate string, total int64, cursors ...CursorConfig) BatchProcessingOutcome {
	return BatchProcessingOutcome{Type: BatchCreateBatches, WorkerTemplateName: workerTemplate,
		WorkerCount: len(cursors), CursorConfigs: cursors, TotalItems: total}
}

// BatchResult returns a batchable handler's result: the fields of data
// (nil for none) and the outcome under "batch_processing_outcome".
func BatchResult(o BatchProcessingOutcome, data map[string]any) map[string]any {
	r := make(map[string]any, len(data)+1)
	for k, v := range data {
		r[k] = v
	}
	r["batch_processing_outcome"] = o
	return r
}

// BatchMetadata is what a batch worker is told of its batch's template.
type BatchMetadata struct {
	CursorField     string `json:"cursor_field"`
	FailureStrategy string `json:"failure_strategy"`
}

// BatchInput is what a batch worker's handler receives in StepInput.Batch
// (tasker-core's BatchWorkerInputs, with the last checkpoint).
type BatchInput struct {
	// Cursor is the range this worker processes.
	Cursor   CursorConfig  `json:"cursor"`
	Metadata BatchMetadata `json:"batch_metadata"`
	// IsNoOp is true for the placeholder worker of a batchable step that
	// planned no batches: it has nothing to process.
	IsNoOp bool `json:"is_no_op"`
	// TemplateStep names the batch_worker step this worker is a copy of.
	TemplateStep string `json:"template_step_name"`
	// Checkpoint is the last checkpoint this worker yielded, in this or an
	// earlier attempt; nil if none: start from Cursor.StartCursor.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
}

// Checkpoint is a batch worker's progress. A handler yields one by
// returning it (a Checkpoint or *Checkpoint) as its result: the engine
// stores it on the step, fenced by the attempt ID, and runs the step again
// with it in BatchInput.Checkpoint; an attempt after a failure, a crash or
// a lost worker starts from it too. A yield does not count as an attempt.
type Checkpoint struct {
	// Cursor is where the next run starts (any JSON value).
	Cursor json.RawMessage `json:"cursor"`
	// ItemsProcessed counts the items processed so far, in all runs.
	ItemsProcessed int64 `json:"items_processed"`
	// AccumulatedResults is what the worker has gathered so far, carried
	// to the next run (any JSON value; nil for none).
	AccumulatedResults json.RawMessage `json:"accumulated_results,omitempty"`
	// At is when the engine stored it (set by the engine).
	At time.Time `json:"at"`
	// Yields counts the checkpoints stored for the step so far (set by the
	// engine).
	Yields int `json:"yields"`
}

// CheckpointKey is the key under which an unfinished batch worker's step
// result holds its last checkpoint (until the step's final result
// replaces it): {"checkpoint": Checkpoint}.
const CheckpointKey = "checkpoint"
