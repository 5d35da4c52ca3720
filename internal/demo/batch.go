package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tasker-go/tasker/taskertype"
)

// batchPlanConfig configures demo.batch_plan (examples/batch.yaml).
type batchPlanConfig struct {
	// BatchSize is how many items each worker gets.
	BatchSize int `json:"batch_size"`
	// WorkerTemplate names the batch_worker step.
	WorkerTemplate string `json:"worker_template_name"`
}

// batchPlan is a batchable handler: it splits the items 0..items-1 (the
// context's "items") into batches of its configuration's batch_size, or
// plans no batches when there are no items.
func batchPlan(_ context.Context, in *taskertype.StepInput) (any, error) {
	var cfg batchPlanConfig
	if err := in.DecodeConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.BatchSize <= 0 || cfg.WorkerTemplate == "" {
		return nil, taskertype.Permanent(errors.New(`demo.batch_plan needs a configuration: config: {batch_size: 100, worker_template_name: process_batch}`))
	}
	var c struct {
		Items *int `json:"items"`
	}
	if err := in.DecodeContext(&c); err != nil {
		return nil, err
	}
	if c.Items == nil || *c.Items < 0 {
		return nil, taskertype.Permanent(errors.New(`demo.batch_plan needs the number of items in the context: {"items": 1000}`))
	}
	if *c.Items == 0 {
		return taskertype.BatchResult(taskertype.NoBatches(), map[string]any{"reason": "empty_dataset"}), nil
	}
	cursors := taskertype.IntCursors(*c.Items, cfg.BatchSize)
	return taskertype.BatchResult(taskertype.CreateBatches(cfg.WorkerTemplate, int64(*c.Items), cursors...),
		map[string]any{"worker_count": len(cursors), "total_items": *c.Items}), nil
}

// batchSumConfig configures demo.batch_sum.
type batchSumConfig struct {
	// CheckpointEvery, when positive, yields a checkpoint after that many
	// items.
	CheckpointEvery int64 `json:"checkpoint_every"`
	// SleepMS, when positive, makes each run take that long (for tests
	// that kill a worker mid-batch).
	SleepMS int64 `json:"sleep_ms"`
}

// batchSum is a batch worker: it sums the item numbers of its cursor range
// (each item i is worth i), resuming from its last checkpoint, and yields
// a checkpoint every checkpoint_every items.
func batchSum(ctx context.Context, in *taskertype.StepInput) (any, error) {
	b := in.Batch
	if b == nil {
		return nil, taskertype.Permanent(fmt.Errorf("demo.batch_sum runs as a batch worker (type: batch_worker), and step %q is none", in.StepName))
	}
	if b.IsNoOp {
		return map[string]any{"items_processed": 0, "sum": 0, "no_op": true}, nil
	}
	var cfg batchSumConfig
	if err := in.DecodeConfig(&cfg); err != nil {
		return nil, err
	}
	start, end, err := b.Cursor.IntRange()
	if err != nil {
		return nil, taskertype.Permanent(err)
	}
	next, sum := start, int64(0)
	if cp := b.Checkpoint; cp != nil {
		if err := json.Unmarshal(cp.Cursor, &next); err != nil {
			return nil, taskertype.Permanent(fmt.Errorf("checkpoint cursor %s is not an item number: %w", cp.Cursor, err))
		}
		if err := json.Unmarshal(cp.AccumulatedResults, &sum); err != nil {
			return nil, taskertype.Permanent(fmt.Errorf("checkpoint results %s are not a sum: %w", cp.AccumulatedResults, err))
		}
	}
	if cfg.SleepMS > 0 {
		t := time.NewTimer(time.Duration(cfg.SleepMS) * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	stop := end
	if cfg.CheckpointEvery > 0 {
		stop = min(end, next+cfg.CheckpointEvery)
	}
	for ; next < stop; next++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sum += next
	}
	if next < end {
		acc, _ := json.Marshal(sum)
		return taskertype.Checkpoint{Cursor: json.RawMessage(fmt.Sprint(next)), ItemsProcessed: next - start, AccumulatedResults: acc}, nil
	}
	return map[string]any{"items_processed": end - start, "sum": sum, "last_cursor": end}, nil
}

// batchTotal is a convergence handler: it adds up the results of the
// batch workers it depends on ("items_processed" and "sum").
func batchTotal(_ context.Context, in *taskertype.StepInput) (any, error) {
	var items, sum int64
	workers := 0
	for name, r := range in.Results {
		var w struct {
			Items *int64 `json:"items_processed"`
			Sum   int64  `json:"sum"`
		}
		if err := json.Unmarshal(r, &w); err != nil || w.Items == nil {
			continue // not a worker's result
		}
		if strings.Contains(name, "_") {
			workers++
		}
		items += *w.Items
		sum += w.Sum
	}
	return map[string]any{"workers": workers, "items_processed": items, "sum": sum}, nil
}
