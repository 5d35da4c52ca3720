package tasker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/events"
	"github.com/tasker-go/tasker/internal/orchestration"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// CreateTaskParams names a template and gives the task's context.
type CreateTaskParams struct {
	Namespace string
	Name      string
	// Version of the template; empty means the latest registered.
	Version string
	// Context is the task's input: a JSON object as json.RawMessage or
	// []byte, or any value that encodes to a JSON object. Nil means {}.
	Context any

	// The task request's fields (tasker-core's TaskRequest;
	// docs/identity.md), stored with the task; all optional.

	// Priority: higher is more urgent (a 32-bit integer; default 0).
	// Workers claim the steps of higher-priority tasks first; waiting ages
	// a step, a point per Config.PriorityAging (docs/identity.md).
	Priority int
	// CorrelationID ties the task to a request across systems; uuid.Nil
	// makes one (a UUIDv7).
	CorrelationID uuid.UUID
	// ParentCorrelationID is the correlation id of the workflow that
	// started this one; uuid.Nil for none.
	ParentCorrelationID uuid.UUID
	// Initiator, SourceSystem and Reason say who asked, from where and
	// why (at most MaxRequestBytes each).
	Initiator, SourceSystem, Reason string
	// Tags categorize the task (at most MaxTags of MaxTagBytes each).
	Tags []string
	// IdempotencyKey, if set, is the task's identity, whatever the
	// template's identity strategy: a second create with the same key (and
	// template) fails with ErrDuplicateTask. Required when the template
	// declares identity_strategy: caller_provided.
	IdempotencyKey string
}

// CreateTask creates a task from a registered template and starts it. The
// context is validated against the template's schema, and, when this
// engine runs workers, every step's handler must be registered. On error
// nothing of the task is stored. A task with the same identity as a stored
// one (the template's identity strategy, or the idempotency key:
// docs/identity.md) is not created: the error matches ErrDuplicateTask
// and is a *DuplicateTaskError that carries the stored task's id. An engine that runs no orchestration
// (DisableOrchestration) may create tasks too: the orchestrators of other
// processes take them from there.
func (e *Engine) CreateTask(ctx context.Context, p CreateTaskParams) (*Task, error) {
	task, _, err := e.createTask(ctx, p)
	return task, err
}

// CreateTaskInfo is CreateTask that also answers the task's steps as its
// create transaction left them (created, the ready ones enqueued), without
// reading the store: the answer of a create, as the REST API gives it. A
// worker may have claimed, run or finished steps since (or, with an
// in-process worker, in the same transaction); Task reads what is stored
// now.
func (e *Engine) CreateTaskInfo(ctx context.Context, p CreateTaskParams) (*TaskInfo, error) {
	task, steps, err := e.createTask(ctx, p)
	if err != nil {
		return nil, err
	}
	if steps == nil {
		// Found stored after a commit whose answer was lost: read them.
		if steps, err = e.Steps(ctx, task.ID); err != nil {
			return nil, err
		}
	}
	return &TaskInfo{Task: task, Steps: steps}, nil
}

func (e *Engine) createTask(ctx context.Context, p CreateTaskParams) (*Task, []*Step, error) {
	tpl, err := e.tmpl.Get(ctx, p.Namespace, p.Name, p.Version)
	if err != nil {
		return nil, nil, fmt.Errorf("tasker: create task: %w", err)
	}
	raw, err := encodeContext(p.Context)
	if err != nil {
		return nil, nil, fmt.Errorf("tasker: create task from %s: %w", tpl.Key(), err)
	}
	if limit := e.cfg.MaxContextBytes; limit > 0 && len(raw) > limit {
		return nil, nil, fmt.Errorf("tasker: create task from %s: %w: the context is %d bytes of JSON, more than the limit of %d: pass a smaller context (large data belongs elsewhere, passed by reference), or raise the limit (Config.MaxContextBytes, or --max-context-bytes)",
			tpl.Key(), taskertype.ErrInvalid, len(raw), limit)
	}
	if err := tpl.ValidateContext(raw); err != nil {
		return nil, nil, fmt.Errorf("tasker: create task from %s: %w", tpl.Key(), err)
	}
	request, err := taskRequest(tpl, e.cfg.DefaultIdentityStrategy, &p, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("tasker: create task from %s: %w", tpl.Key(), err)
	}
	if err := e.checkHandlers(tpl); err != nil {
		return nil, nil, err
	}
	if e.admit != nil {
		if err := e.admit.Admit(ctx, tpl.Namespace); err != nil {
			return nil, nil, fmt.Errorf("tasker: create task from %s: %w", tpl.Key(), err)
		}
	}
	spec := &orchestration.TaskSpec{Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version, Context: raw, Positioned: true, Request: request}
	// Steps downstream of a decision are created when it decides
	// (docs/workflows.md): a task starts with the others.
	for _, i := range initialSteps(tpl) {
		s := &tpl.Steps[i]
		spec.Steps = append(spec.Steps, orchestration.StepSpec{
			Name: s.Name, Handler: s.Handler, DependsOn: s.DependsOn, Retry: s.Retry, Timeout: s.Timeout, Position: i,
		})
	}
	task, steps, err := e.orch.CreateTaskSteps(ctx, spec)
	if err != nil {
		return nil, nil, fmt.Errorf("tasker: %w", err)
	}
	return task, steps, nil
}

func encodeContext(v any) (json.RawMessage, error) {
	var raw []byte
	switch v := v.(type) {
	case nil:
		return json.RawMessage("{}"), nil
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	case string:
		raw = []byte(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: the context cannot be encoded as JSON: %w", taskertype.ErrInvalid, err)
		}
		raw = b
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%w: the context is not valid JSON", taskertype.ErrInvalid)
	}
	return raw, nil
}

func (e *Engine) checkHandlers(tpl *template.Template) error {
	if e.cfg.DisableWorkers || e.cfg.PullUnregistered {
		// The workers are elsewhere, or pull workers serve the handlers no
		// Go handler has (a step nobody serves fails with no_handler).
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range tpl.Steps {
		if e.handlers[s.Handler] == nil {
			return fmt.Errorf("tasker: create task from %s: %w: step %q uses handler %q, which is not registered: register it with Engine.RegisterHandler before Start, or fix the template %s",
				tpl.Key(), taskertype.ErrInvalid, s.Name, s.Handler, tpl.Source)
		}
	}
	return nil
}

// WaitTask waits until the task reaches a terminal state, or ctx ends, and
// returns the task as stored.
func (e *Engine) WaitTask(ctx context.Context, id uuid.UUID) (*Task, error) {
	// Only the transitions into a terminal state: a busy task's other
	// transitions could fill the buffer and crowd the last one out.
	sub, err := e.bus.Subscribe(events.Filter{TaskID: id, Kinds: []string{events.KindTaskTransition}, To: terminalStates}, 4)
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	// The fallback poll covers tasks finished by another process.
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		t, err := e.store.TaskGet(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("tasker: wait for task: %w", err)
		}
		if t.State.Terminal() {
			return t, nil
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return t, fmt.Errorf("tasker: wait for task %s (state %s): %w", id, t.State, context.Cause(ctx))
			case <-sub.C():
				break wait
			case <-poll.C:
				break wait
			}
		}
	}
}

var terminalStates = func() []string {
	var s []string
	for _, st := range taskertype.TaskStates {
		if st.Terminal() {
			s = append(s, string(st))
		}
	}
	return s
}()

// TaskInfo is a task with its steps.
type TaskInfo struct {
	Task  *Task
	Steps []*Step
}

// Task returns a task and its steps as stored.
func (e *Engine) Task(ctx context.Context, id uuid.UUID) (*TaskInfo, error) {
	t, err := e.store.TaskGet(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tasker: %w", err)
	}
	steps, err := e.store.StepList(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tasker: %w", err)
	}
	return &TaskInfo{Task: t, Steps: steps}, nil
}

// StepAncestorResults returns the results of a step's completed ancestors
// (its dependencies, theirs, and so on) by step name, in one read of those
// steps only, whatever the task's size.
func (e *Engine) StepAncestorResults(ctx context.Context, taskID, stepID uuid.UUID) (map[string]json.RawMessage, error) {
	r, err := e.store.StepAncestorResults(ctx, taskID, stepID)
	if err != nil {
		return nil, fmt.Errorf("tasker: %w", err)
	}
	return r, nil
}

// TransitionsAfter returns a task's transitions (its own and its steps')
// whose ID is greater than after, in the order applied: pass the ID of the
// last one read to read only what came since.
func (e *Engine) TransitionsAfter(ctx context.Context, id uuid.UUID, after int64) ([]*Transition, error) {
	return e.store.TransitionList(ctx, &store.TransitionListParams{TaskID: id, After: after})
}

// Steps returns a task's steps as stored, in template order (none for a
// task that does not exist).
func (e *Engine) Steps(ctx context.Context, id uuid.UUID) ([]*Step, error) {
	steps, err := e.store.StepList(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tasker: %w", err)
	}
	return steps, nil
}

// Tasks lists tasks, newest first, optionally only those in some states.
func (e *Engine) Tasks(ctx context.Context, limit int, states ...TaskState) ([]*Task, error) {
	return e.store.TaskList(ctx, &store.TaskListParams{States: states, Limit: limit})
}

// TaskPageParams selects a page of tasks, newest first.
type TaskPageParams struct {
	States    []TaskState // empty: every state
	Namespace string      // "": every namespace
	Limit     int         // 1 or more
	Offset    int         // tasks skipped first
}

// TaskPage answers a page of tasks, newest first, and how many tasks the
// filter keeps in all.
func (e *Engine) TaskPage(ctx context.Context, p TaskPageParams) ([]*Task, int64, error) {
	lp := &store.TaskListParams{States: p.States, Namespace: p.Namespace, Limit: p.Limit, Offset: p.Offset}
	if p.Limit < 1 {
		return nil, 0, fmt.Errorf("tasker: task page: %w: limit %d: give 1 or more", taskertype.ErrInvalid, p.Limit)
	}
	total, err := e.store.TaskCount(ctx, lp)
	if err != nil {
		return nil, 0, fmt.Errorf("tasker: %w", err)
	}
	if int64(p.Offset) >= total {
		return nil, total, nil
	}
	ts, err := e.store.TaskList(ctx, lp)
	if err != nil {
		return nil, 0, fmt.Errorf("tasker: %w", err)
	}
	return ts, total, nil
}

// Transitions returns every stored state change of a task and its steps,
// in the order applied.
func (e *Engine) Transitions(ctx context.Context, id uuid.UUID) ([]*Transition, error) {
	return e.store.TransitionList(ctx, &store.TransitionListParams{TaskID: id})
}

// StepTransitions returns one step's transitions, oldest first.
func (e *Engine) StepTransitions(ctx context.Context, taskID, stepID uuid.UUID) ([]*Transition, error) {
	return e.store.TransitionList(ctx, &store.TransitionListParams{TaskID: taskID, StepID: stepID})
}

// CancelTask cancels an unfinished task and its unfinished steps.
func (e *Engine) CancelTask(ctx context.Context, id uuid.UUID) error {
	return e.orch.CancelTask(ctx, id)
}

// ResetTask runs a task that ended in error again from its failed steps.
func (e *Engine) ResetTask(ctx context.Context, id uuid.UUID) error { return e.orch.ResetTask(ctx, id) }

// ResolveTask marks a task blocked by failures, or in error, as resolved by
// hand.
func (e *Engine) ResolveTask(ctx context.Context, id uuid.UUID) error {
	return e.orch.ResolveTask(ctx, id)
}

// ResolveStep marks a step as resolved by hand; its dependents may run. A
// task blocked by failures or in error resumes once none of its steps is
// failed any more; so it does after CompleteStep and ResetStep.
func (e *Engine) ResolveStep(ctx context.Context, taskID uuid.UUID, step string) error {
	return e.orch.ResolveStep(ctx, taskID, step)
}

// CompleteStep marks a step as complete by hand with the given JSON result.
// The result is bounded like a handler's (Config.MaxResultBytes).
func (e *Engine) CompleteStep(ctx context.Context, taskID uuid.UUID, step string, result json.RawMessage) error {
	if limit := e.cfg.MaxResultBytes; limit > 0 && len(result) > limit {
		return fmt.Errorf("tasker: complete step %q: %w: the result is %d bytes of JSON, more than the limit of %d: store large data elsewhere and complete with a reference, or raise the limit (Config.MaxResultBytes, or --max-result-bytes)",
			step, taskertype.ErrInvalid, len(result), limit)
	}
	return e.orch.CompleteStep(ctx, taskID, step, result)
}

// ResetStep sends a failed step, or one waiting for a retry, back to
// pending with its attempts cleared.
func (e *Engine) ResetStep(ctx context.Context, taskID uuid.UUID, step string) error {
	return e.orch.ResetStep(ctx, taskID, step)
}
