package dynamic

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// batchIDPattern is what a batch_id may be: it becomes part of a step name
// (template step names: lowercase letters, digits and _, at most 63).
var batchIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,31}$`)

// maxStepName is the longest step name (the template's rule).
const maxStepName = 63

// NoOpBatchID is the batch_id of the placeholder worker a no_batches
// outcome creates (tasker-core's: {worker_template}_000).
const NoOpBatchID = "000"

// Worker is one batch worker to create: a copy of the batch_worker step at
// template position Template, named Name, with its inputs.
type Worker struct {
	Name     string
	Template int
	Input    taskertype.BatchInput
}

// BatchPlan is what a batchable step's outcome creates: its workers, and
// the steps that depend on the batch_worker step (the convergence steps),
// by template position, each to depend on every worker.
type BatchPlan struct {
	Workers     []Worker
	Convergence []int
}

// ParseBatchOutcome reads the batch plan from a batchable step's result.
// Its errors say what is wrong with the result, for the step's failure.
func ParseBatchOutcome(result json.RawMessage) (*taskertype.BatchProcessingOutcome, error) {
	var r struct {
		Outcome *json.RawMessage `json:"batch_processing_outcome"`
	}
	if err := json.Unmarshal(result, &r); err != nil || r.Outcome == nil {
		return nil, fmt.Errorf(`the result has no "batch_processing_outcome": a batchable handler returns an object with "batch_processing_outcome": {"type": "create_batches", "worker_template_name": ..., "worker_count": N, "cursor_configs": [...]} or {"type": "no_batches"} (taskertype.CreateBatches, taskertype.NoBatches)`)
	}
	var o taskertype.BatchProcessingOutcome
	if err := json.Unmarshal(*r.Outcome, &o); err != nil {
		return nil, fmt.Errorf("batch_processing_outcome is not an object with a type, worker_template_name, worker_count and cursor_configs: %v", err)
	}
	switch o.Type {
	case taskertype.BatchNoBatches:
		if len(o.CursorConfigs) > 0 || o.WorkerCount > 0 {
			return nil, fmt.Errorf("batch_processing_outcome is no_batches but has %d cursor_configs and worker_count %d: use create_batches to create workers", len(o.CursorConfigs), o.WorkerCount)
		}
	case taskertype.BatchCreateBatches:
		if len(o.CursorConfigs) == 0 {
			return nil, fmt.Errorf("batch_processing_outcome is create_batches with no cursor_configs: give one per worker, or return no_batches")
		}
		if o.WorkerCount != 0 && o.WorkerCount != len(o.CursorConfigs) {
			return nil, fmt.Errorf("batch_processing_outcome has worker_count %d but %d cursor_configs: give one cursor config per worker", o.WorkerCount, len(o.CursorConfigs))
		}
	default:
		return nil, fmt.Errorf("batch_processing_outcome has type %q: want %q or %q", o.Type, taskertype.BatchCreateBatches, taskertype.BatchNoBatches)
	}
	return &o, nil
}

// PlanBatch checks the outcome o of batchable step b (a position) against
// the template's batch_config and maxWorkers, and returns the workers and
// convergence steps to create. task says which steps the task has, and
// which are finished.
func (g *Graph) PlanBatch(b int, o *taskertype.BatchProcessingOutcome, maxWorkers int, task Task) (*BatchPlan, error) {
	exists, finished := task.Exists, task.Finished
	bs := &g.t.Steps[b]
	cfg := bs.Batch
	wt := o.WorkerTemplateName
	if wt == "" && cfg != nil {
		wt = cfg.WorkerTemplate
	}
	// The batch_worker steps that depend on b: the workers' templates.
	var workerSteps []string
	for _, k := range g.kids[b] {
		if g.typeOf(k) == template.StepBatchWorker {
			workerSteps = append(workerSteps, g.t.Steps[k].Name)
		}
	}
	if wt == "" {
		if len(workerSteps) != 1 {
			return nil, fmt.Errorf("batchable step %q names no worker template (batch_config.worker_template, or worker_template_name in its outcome) and has %d batch_worker steps: name one of %s",
				bs.Name, len(workerSteps), strings.Join(workerSteps, ", "))
		}
		wt = workerSteps[0]
	}
	w, ok := g.idx[wt]
	if !ok || g.typeOf(w) != template.StepBatchWorker || !containsInt(g.deps[w], b) {
		return nil, fmt.Errorf("batchable step %q: worker template %q is not a batch_worker step that depends on it; its batch_worker steps: %s",
			bs.Name, wt, strings.Join(workerSteps, ", "))
	}
	ws := &g.t.Steps[w]
	if cfg == nil {
		cfg = ws.Batch
	}
	meta := taskertype.BatchMetadata{FailureStrategy: string(template.FailureContinue)}
	batchSize := 0
	if c := ws.Batch; c != nil {
		meta = taskertype.BatchMetadata{CursorField: c.CursorField, FailureStrategy: string(c.FailureStrategy)}
		batchSize = c.BatchSize
	}
	if cfg != nil {
		if meta.CursorField == "" {
			meta.CursorField = cfg.CursorField
		}
		if ws.Batch == nil {
			meta.FailureStrategy = string(cfg.FailureStrategy)
		}
		if batchSize == 0 || cfg.BatchSize < batchSize {
			batchSize = cfg.BatchSize
		}
	}
	if meta.FailureStrategy == "" {
		meta.FailureStrategy = string(template.FailureContinue)
	}
	p := &BatchPlan{}
	if o.Type == taskertype.BatchNoBatches {
		p.Workers = []Worker{{Name: wt + "_" + NoOpBatchID, Template: w, Input: taskertype.BatchInput{
			Cursor:   taskertype.CursorConfig{BatchID: NoOpBatchID, StartCursor: json.RawMessage("0"), EndCursor: json.RawMessage("0")},
			Metadata: meta, IsNoOp: true, TemplateStep: wt}}}
	} else {
		if n := len(o.CursorConfigs); n > maxWorkers {
			return nil, fmt.Errorf("batchable step %q planned %d workers, more than the limit of %d (orchestration MaxBatchWorkers): plan larger batches", bs.Name, n, maxWorkers)
		}
		seen := make(map[string]bool, len(o.CursorConfigs))
		for k, c := range o.CursorConfigs {
			if c.BatchID == "" {
				c.BatchID = fmt.Sprintf("%03d", k+1)
			}
			switch {
			case !batchIDPattern.MatchString(c.BatchID) || len(wt)+1+len(c.BatchID) > maxStepName:
				return nil, fmt.Errorf("batchable step %q: cursor_configs[%d] has batch_id %q: use lowercase letters, digits and _, starting with a letter or digit, short enough for the worker's name %s_{batch_id} to be at most %d characters (tasker-core numbers them 001, 002, ...)",
					bs.Name, k, c.BatchID, wt, maxStepName)
			case seen[c.BatchID]:
				return nil, fmt.Errorf("batchable step %q: batch_id %q appears twice in cursor_configs: give each batch its own", bs.Name, c.BatchID)
			case len(c.StartCursor) == 0 || len(c.EndCursor) == 0:
				return nil, fmt.Errorf("batchable step %q: cursor_configs[%d] (batch %s) has no start_cursor or end_cursor", bs.Name, k, c.BatchID)
			case c.BatchSize < 0 || batchSize > 0 && c.BatchSize > batchSize:
				return nil, fmt.Errorf("batchable step %q: batch %s has batch_size %d, more than the batch_config's batch_size %d (or negative): plan smaller batches", bs.Name, c.BatchID, c.BatchSize, batchSize)
			}
			seen[c.BatchID] = true
			p.Workers = append(p.Workers, Worker{Name: wt + "_" + c.BatchID, Template: w,
				Input: taskertype.BatchInput{Cursor: c, Metadata: meta, TemplateStep: wt}})
		}
	}
	for _, wk := range p.Workers {
		if exists(wk.Name) || g.Index(wk.Name) >= 0 {
			return nil, fmt.Errorf("batchable step %q: worker %q would have the name of a step that exists already: rename the step or the worker template", bs.Name, wk.Name)
		}
	}
	// A step that also waits for another batch_worker step is created by
	// the last of their batchable steps to finish, with all their workers.
kids:
	for _, k := range g.kids[w] {
		if exists(g.t.Steps[k].Name) {
			continue
		}
		for _, j := range g.deps[k] {
			if j == w || g.typeOf(j) != template.StepBatchWorker {
				continue
			}
			for _, jb := range g.deps[j] {
				if g.typeOf(jb) == template.StepBatchable && !finished(g.t.Steps[jb].Name) {
					continue kids
				}
			}
		}
		p.Convergence = append(p.Convergence, k)
	}
	return p, nil
}

// WorkerTemplate returns the position of the batch_worker step a step
// named name is a worker of ({worker_template}_{batch_id}), or -1.
func (g *Graph) WorkerTemplate(name string) int { return WorkerTemplate(g.t, name) }

// WorkerTemplate returns the position in t of the batch_worker step a step
// named name is a worker of ({worker_template}_{batch_id}), or -1. It
// builds no Graph: a worker asks it at every run.
func WorkerTemplate(t *template.Template, name string) int {
	for i := len(name) - 1; i > 0; i-- {
		if name[i] != '_' {
			continue
		}
		if j := t.StepIndex(name[:i]); j >= 0 && t.Steps[j].TypeOf() == template.StepBatchWorker && batchIDPattern.MatchString(name[i+1:]) {
			return j
		}
	}
	return -1
}

// Reachable returns the positions of the steps that may be created now
// that the task's steps are those task says exist: what a step created
// outside a decision (a batch's convergence step) makes reachable.
func (g *Graph) Reachable(task Task) []int {
	exists := func(i int) bool { return task.Exists(g.t.Steps[i].Name) }
	finished := func(i int) bool { return task.Finished(g.t.Steps[i].Name) }
	return g.closure(exists, nil, finished)
}

// DependsOnWorkers reports whether the step at position i depends on a
// batch_worker step: it is created with edges to that step's workers.
func (g *Graph) DependsOnWorkers(i int) bool {
	for _, j := range g.deps[i] {
		if g.typeOf(j) == template.StepBatchWorker {
			return true
		}
	}
	return false
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
