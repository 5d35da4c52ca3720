package orchestration

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/dynamic"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// DefaultMaxBatchWorkers bounds the workers one batchable step may create.
const DefaultMaxBatchWorkers = 1000

// completeBatchable records a batchable step's completion and applies its
// batch plan in the same transaction: its workers, and the steps that wait
// for them (the convergence steps), with what those make reachable, are
// created and appended to *steps; or, if the plan cannot be applied, the
// step fails for good with the reason (refuse_outcome).
func (o *Orchestrator) completeBatchable(ctx context.Context, tx store.Tx, rec *transition.Recorder, task *taskertype.Task,
	tpl *template.Template, steps *[]*taskertype.Step, step *taskertype.Step, i int, now time.Time,
) error {
	g := dynamic.New(tpl)
	byName := make(taskSteps, len(*steps))
	for _, s := range *steps {
		byName[s.Name] = s
	}
	var plan *dynamic.BatchPlan
	out, err := dynamic.ParseBatchOutcome(step.Result)
	if err == nil {
		plan, err = g.PlanBatch(i, out, o.cfg.MaxBatchWorkers, byName)
	}
	if err != nil {
		reason := fmt.Sprintf("batchable step %q: %v", step.Name, err)
		o.log.Warn("refusing a batch plan; the step fails", "task_id", task.ID, "step", step.Name, "reason", reason)
		return rec.Step(ctx, tx, step, taskertype.StepEventRefuseOutcome, now, func(s *taskertype.Step) {
			s.Failure = &taskertype.StepFailure{Kind: taskertype.FailureHandler, Message: reason, Attempt: s.Attempts}
		})
	}
	if err := rec.Step(ctx, tx, step, taskertype.StepEventComplete, now, nil); err != nil {
		return err
	}
	ids := make(map[string]uuid.UUID, len(*steps))
	for _, s := range *steps {
		ids[s.Name] = s.ID
	}
	before := len(*steps)
	fresh := make([]*taskertype.Step, 0, len(plan.Workers)+len(plan.Convergence))
	workerIDs := make([]uuid.UUID, len(plan.Workers))
	for k, w := range plan.Workers {
		ts := &tpl.Steps[w.Template]
		var deps []uuid.UUID
		for _, d := range ts.DependsOn {
			if id, ok := ids[d]; ok {
				deps = append(deps, id)
			}
		}
		workerIDs[k] = uuid.Must(uuid.NewV7())
		fresh = append(fresh, &taskertype.Step{ID: workerIDs[k], TaskID: task.ID, Name: w.Name, Handler: ts.Handler,
			Position: w.Template, DependsOn: deps, Retry: ts.Retry, Timeout: ts.Timeout})
	}
	for _, c := range plan.Convergence {
		ts := &tpl.Steps[c]
		var deps []uuid.UUID
		for _, d := range ts.DependsOn {
			switch j := tpl.StepIndex(d); {
			case j >= 0 && tpl.Steps[j].TypeOf() == template.StepBatchWorker && d == plan.Workers[0].Input.TemplateStep:
				deps = append(deps, workerIDs...)
			case j >= 0 && tpl.Steps[j].TypeOf() == template.StepBatchWorker:
				// The workers of another batch, finished before.
				for _, s := range (*steps)[:before] {
					if s.Position == j && isWorker(tpl, s) {
						deps = append(deps, s.ID)
					}
				}
			default:
				if id, ok := ids[d]; ok {
					deps = append(deps, id)
				}
			}
		}
		id := uuid.Must(uuid.NewV7())
		ids[ts.Name] = id
		fresh = append(fresh, &taskertype.Step{ID: id, TaskID: task.ID, Name: ts.Name, Handler: ts.Handler, Position: c,
			DependsOn: deps, Retry: ts.Retry, Timeout: ts.Timeout})
	}
	if err := tx.StepCreate(ctx, &store.StepCreateParams{TaskID: task.ID, Steps: fresh, At: now, Processor: o.cfg.Processor}); err != nil {
		return err
	}
	for _, s := range fresh {
		s.State, s.CreatedAt, s.UpdatedAt = taskertype.StepPending, now, now
		byName[s.Name] = s
	}
	*steps = append(*steps, fresh...)
	// What the convergence steps make reachable (their dependents).
	if more := g.Reachable(byName); len(more) > 0 {
		next, err := o.createSteps(ctx, tx, task, tpl, *steps, more, now)
		if err != nil {
			return err
		}
		*steps = append(*steps, next...)
	}
	o.rememberAfterCommit(rec, task, *steps)
	o.log.Debug("a batchable step created its workers", "task_id", task.ID, "step", step.Name,
		"workers", len(plan.Workers), "no_op", out.Type == taskertype.BatchNoBatches)
	return nil
}

// batchSettings returns the batch_config that governs the workers of the
// batch_worker step at position w of tpl: its own, or else that of the
// batchable step that names it.
func batchSettings(tpl *template.Template, w int) *template.BatchConfig {
	if b := tpl.Steps[w].Batch; b != nil {
		return b
	}
	for i := range tpl.Steps {
		if b := tpl.Steps[i].Batch; b != nil && tpl.Steps[i].TypeOf() == template.StepBatchable && b.WorkerTemplate == tpl.Steps[w].Name {
			return b
		}
	}
	return nil
}

// isWorker reports whether step is a batch worker of tpl: a step whose
// template position is a batch_worker step (only its copies exist).
func isWorker(tpl *template.Template, step *taskertype.Step) bool {
	return tpl != nil && step.Position >= 0 && step.Position < len(tpl.Steps) &&
		tpl.Steps[step.Position].TypeOf() == template.StepBatchWorker && step.Name != tpl.Steps[step.Position].Name
}

// continueFailed completes a batch worker's final failure under
// continue_on_failure: the step is complete, its failure kept, and its
// result says it failed, so the convergence step runs and sees it.
func (o *Orchestrator) continueFailed(ctx context.Context, tx store.Tx, rec *transition.Recorder, step *taskertype.Step, reason string, now time.Time) error {
	o.log.Info("batch worker failed for good; its batch continues (continue_on_failure)", "task_id", step.TaskID, "step", step.Name, "reason", reason)
	msg := ""
	if step.Failure != nil {
		msg = step.Failure.Message
	}
	result, err := json.Marshal(map[string]any{"batch_worker_failed": true, "error": msg, "attempts": step.Attempts})
	if err != nil {
		return err
	}
	return rec.Step(ctx, tx, step, taskertype.StepEventContinueFailed, now, func(s *taskertype.Step) {
		s.Result = result
	})
}

// batchWorkerFailed applies the batch's failure_strategy to a batch worker
// that failed for good, and reports whether it did (false: step is no batch
// worker, or its strategy is isolate, and fails as any step does: it is
// left in error for an operator while its batch's running workers finish).
//   - continue_on_failure: the worker completes with its failure recorded
//     (continueFailed), and the batch goes on.
//   - fail_fast: the worker fails, and its batch's workers that have not
//     started are cancelled, so the task fails as soon as those running end.
func (o *Orchestrator) batchWorkerFailed(ctx context.Context, tx store.Tx, rec *transition.Recorder, task *taskertype.Task,
	steps []*taskertype.Step, step *taskertype.Step, reason string, now time.Time,
) (bool, error) {
	if o.cfg.Templates == nil {
		return false, nil
	}
	tpl, err := o.cfg.Templates(ctx, task.Namespace, task.Name, task.Version)
	if err != nil {
		return false, fmt.Errorf("read the template of task %s to apply the failure strategy of step %q: %w", task.ID, step.Name, err)
	}
	if !isWorker(tpl, step) {
		return false, nil
	}
	strategy := template.FailureContinue
	if b := batchSettings(tpl, step.Position); b != nil && b.FailureStrategy != "" {
		strategy = b.FailureStrategy
	}
	switch strategy {
	case template.FailureContinue:
		return true, o.continueFailed(ctx, tx, rec, step, reason, now)
	case template.FailureFailFast:
		o.log.Info("batch worker failed for good; cancelling the workers of its batch that have not started (fail_fast)",
			"task_id", task.ID, "step", step.Name, "reason", reason)
		if err := rec.Step(ctx, tx, step, taskertype.StepEventFailPermanently, now, nil); err != nil {
			return true, err
		}
		for _, s := range steps {
			if s.ID == step.ID || s.Position != step.Position || !isWorker(tpl, s) {
				continue
			}
			if s.State == taskertype.StepPending || s.State == taskertype.StepWaitingForRetry {
				if err := rec.Step(ctx, tx, s, taskertype.StepEventCancel, now, nil); err != nil {
					return true, err
				}
			}
		}
		return true, nil
	}
	return false, nil
}

// limitBatches returns the steps of enqueue to enqueue now: all of them,
// except that a batch's workers are held back (they stay pending, ready)
// while as many of that batch's workers as its batch_config's parallelism
// are in flight already.
func (o *Orchestrator) limitBatches(ctx context.Context, tx store.Tx, task *taskertype.Task, enqueue []*taskertype.Step) ([]*taskertype.Step, error) {
	if len(enqueue) == 0 || o.cfg.Templates == nil {
		return enqueue, nil
	}
	tpl, err := o.cfg.Templates(ctx, task.Namespace, task.Name, task.Version)
	if err != nil {
		return nil, fmt.Errorf("read the template of task %s to bound its batches' parallelism: %w", task.ID, err)
	}
	bound := map[int]int{} // by the batch_worker step's position: its parallelism (0: none)
	for _, s := range enqueue {
		if _, ok := bound[s.Position]; ok || !isWorker(tpl, s) {
			continue
		}
		n := 0
		if b := batchSettings(tpl, s.Position); b != nil {
			n = b.Parallelism
		}
		bound[s.Position] = n
	}
	if len(bound) == 0 {
		return enqueue, nil
	}
	all, err := tx.StepList(ctx, task.ID)
	if err != nil {
		return nil, err
	}
	active := make(map[int]int, len(bound))
	for _, s := range all {
		if _, ok := bound[s.Position]; ok && s.State.InFlight() {
			active[s.Position]++
		}
	}
	out := make([]*taskertype.Step, 0, len(enqueue))
	for _, s := range enqueue {
		n, ok := bound[s.Position]
		switch {
		case !ok || n == 0 || !isWorker(tpl, s):
			out = append(out, s)
		case active[s.Position] < n:
			active[s.Position]++
			out = append(out, s)
		}
	}
	return out, nil
}

// holdsCheckpoint reports whether a step's result is an unfinished batch
// worker's checkpoint ({"checkpoint": ...}, docs/workflows.md) rather than
// a handler's result.
func holdsCheckpoint(result json.RawMessage) bool {
	if len(result) == 0 || result[0] != '{' {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(result, &m) != nil || len(m) != 1 {
		return false
	}
	_, ok := m[taskertype.CheckpointKey]
	return ok
}

// isolatedWorkers returns which failed steps of a task are batch workers
// under failure_strategy: isolate (for makePlanIsolating), or nil when no
// step failed: the template is read only then.
func (o *Orchestrator) isolatedWorkers(ctx context.Context, task *taskertype.Task, steps []*taskertype.Step) (func(*taskertype.Step) bool, error) {
	if o.cfg.Templates == nil {
		return nil, nil
	}
	failed := false
	for _, s := range steps {
		failed = failed || s.State == taskertype.StepError
	}
	if !failed {
		return nil, nil
	}
	tpl, err := o.cfg.Templates(ctx, task.Namespace, task.Name, task.Version)
	if err != nil {
		return nil, fmt.Errorf("read the template of task %s to apply its batches' failure strategies: %w", task.ID, err)
	}
	return func(s *taskertype.Step) bool {
		if !isWorker(tpl, s) {
			return false
		}
		b := batchSettings(tpl, s.Position)
		return b != nil && b.FailureStrategy == template.FailureIsolate
	}, nil
}
