package orchestration

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/dynamic"
	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// Default limits of run-time step creation (tasker-core's).
const (
	DefaultMaxCreatedSteps  = 100
	DefaultMaxDecisionDepth = 20
)

// taskSteps answers dynamic.Task from a task's steps.
type taskSteps map[string]*taskertype.Step

func (t taskSteps) Exists(name string) bool { return t[name] != nil }

func (t taskSteps) Finished(name string) bool {
	s := t[name]
	return s != nil && (s.State.SatisfiesDependency() || s.State == taskertype.StepCancelled)
}

// completeStep records a successful step's completion. When the step is a
// decision, its outcome is applied in the same transaction: the steps it
// chooses, and what they make reachable, are created (appended to *steps),
// or, if the outcome cannot be applied, the step fails for good with the
// reason (refuse_outcome).
func (o *Orchestrator) completeStep(ctx context.Context, tx store.Tx, rec *transition.Recorder, task *taskertype.Task,
	steps *[]*taskertype.Step, step *taskertype.Step, now time.Time,
) error {
	var tpl *template.Template
	if o.cfg.Templates != nil {
		t, err := o.cfg.Templates(ctx, task.Namespace, task.Name, task.Version)
		if err != nil {
			return fmt.Errorf("read the template of task %s to apply the outcome of step %q: %w", task.ID, step.Name, err)
		}
		tpl = t
	}
	i := -1
	if tpl != nil {
		i = tpl.StepIndex(step.Name)
	}
	if i >= 0 && tpl.Steps[i].TypeOf() == template.StepBatchable {
		return o.completeBatchable(ctx, tx, rec, task, tpl, steps, step, i, now)
	}
	if i < 0 || tpl.Steps[i].TypeOf() != template.StepDecision {
		return rec.Step(ctx, tx, step, taskertype.StepEventComplete, now, nil)
	}
	g := dynamic.New(tpl)
	create, reason := o.decide(g, i, *steps, step)
	if reason != "" {
		o.log.Warn("refusing a decision's outcome; the step fails", "task_id", task.ID, "step", step.Name, "reason", reason)
		return rec.Step(ctx, tx, step, taskertype.StepEventRefuseOutcome, now, func(s *taskertype.Step) {
			s.Failure = &taskertype.StepFailure{Kind: taskertype.FailureHandler, Message: reason, Attempt: s.Attempts}
		})
	}
	if err := rec.Step(ctx, tx, step, taskertype.StepEventComplete, now, nil); err != nil {
		return err
	}
	if len(create) == 0 {
		return nil
	}
	fresh, err := o.createSteps(ctx, tx, task, tpl, *steps, create, now)
	if err != nil {
		return err
	}
	*steps = append(*steps, fresh...)
	o.rememberAfterCommit(rec, task, *steps)
	o.log.Debug("a decision created steps", "task_id", task.ID, "step", step.Name, "created", len(fresh))
	return nil
}

// decide reads and checks a decision's outcome and returns the positions
// of the steps to create, or why the outcome is refused.
func (o *Orchestrator) decide(g *dynamic.Graph, i int, steps []*taskertype.Step, step *taskertype.Step) ([]int, string) {
	if depth, limit := g.Depth(i), o.cfg.MaxDecisionDepth; depth > limit {
		return nil, fmt.Sprintf("decision %q is nested %d decisions deep, more than the limit of %d (orchestration MaxDecisionDepth)", step.Name, depth, limit)
	}
	out, err := dynamic.ParseOutcome(step.Result)
	if err != nil {
		return nil, fmt.Sprintf("decision %q: %v", step.Name, err)
	}
	byName := make(taskSteps, len(steps))
	for _, s := range steps {
		byName[s.Name] = s
	}
	create, err := g.Decide(i, out, byName)
	if err != nil {
		return nil, err.Error()
	}
	initial := len(g.Initial())
	if made := len(steps) - initial + len(create); made > o.cfg.MaxCreatedSteps {
		return nil, fmt.Sprintf("decision %q would bring the steps created at run time in this task to %d, more than the limit of %d (orchestration MaxCreatedSteps)",
			step.Name, made, o.cfg.MaxCreatedSteps)
	}
	return create, ""
}

// createSteps stores the template steps at positions create in task, each
// depending on those of its declared dependencies that exist (stored
// before, or created with it), and returns them as stored.
func (o *Orchestrator) createSteps(ctx context.Context, tx store.Tx, task *taskertype.Task, tpl *template.Template,
	steps []*taskertype.Step, create []int, now time.Time,
) ([]*taskertype.Step, error) {
	ids := make(map[string]uuid.UUID, len(steps)+len(create))
	for _, s := range steps {
		ids[s.Name] = s.ID
	}
	for _, i := range create {
		ids[tpl.Steps[i].Name] = uuid.Must(uuid.NewV7())
	}
	fresh := make([]*taskertype.Step, len(create))
	for k, i := range create {
		ts := &tpl.Steps[i]
		var deps []uuid.UUID
		for _, d := range ts.DependsOn {
			if id, ok := ids[d]; ok {
				deps = append(deps, id)
			}
		}
		fresh[k] = &taskertype.Step{ID: ids[ts.Name], TaskID: task.ID, Name: ts.Name, Handler: ts.Handler, Position: i,
			DependsOn: deps, Retry: ts.Retry, Timeout: ts.Timeout}
	}
	if err := tx.StepCreate(ctx, &store.StepCreateParams{TaskID: task.ID, Steps: fresh, At: now, Processor: o.cfg.Processor}); err != nil {
		return nil, err
	}
	for _, s := range fresh {
		s.State, s.CreatedAt, s.UpdatedAt = taskertype.StepPending, now, now
	}
	return fresh, nil
}
