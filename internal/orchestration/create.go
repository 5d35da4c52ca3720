package orchestration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/transition"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// TaskSpec describes a task to create: a validated template's steps and a
// context that already passed the template's schema.
type TaskSpec struct {
	Namespace, Name, Version string
	Context                  json.RawMessage
	Steps                    []StepSpec
	// Positioned: each step's position is its StepSpec.Position (its place
	// in the template, when some steps of the template are created later);
	// otherwise its index in Steps.
	Positioned bool
	// Request holds the task request's fields and the task's identity,
	// checked by the caller; a zero CorrelationID is made here.
	Request taskertype.TaskRequest
}

// StepSpec describes one step of a TaskSpec.
type StepSpec struct {
	Name      string
	Handler   string
	DependsOn []string // names of other steps of the spec
	Retry     taskertype.RetryPolicy
	Timeout   time.Duration
	// Position is the step's place in its template (TaskSpec.Positioned).
	Position int
}

// CreateTask stores a task with its steps and edges, starts it and enqueues
// its first steps, all in one transaction: on any error nothing of the task
// remains. Tasks created at the same time share a transaction (group commit);
// one that fails there is then created on its own, so that it fails alone.
func (o *Orchestrator) CreateTask(ctx context.Context, spec *TaskSpec) (*taskertype.Task, error) {
	task, _, err := o.CreateTaskSteps(ctx, spec)
	return task, err
}

// CreateTaskSteps is CreateTask that also returns the task's steps as its
// create transaction left them: created, and the ready ones enqueued (not
// a claim of a local worker in the same transaction, which loads steps of
// its own). The steps are nil when the task was found stored after a
// commit whose answer was lost: read them then.
func (o *Orchestrator) CreateTaskSteps(ctx context.Context, spec *TaskSpec) (*taskertype.Task, []*taskertype.Step, error) {
	if err := o.ensureStepQueue(ctx, spec.Namespace); err != nil {
		return nil, nil, err
	}
	task, steps, err := buildTask(spec)
	if err != nil {
		return nil, nil, err
	}
	req := &createReq{ctx: ctx, task: task, steps: steps}
	o.creates.Do(req)
	if req.err != nil {
		return nil, nil, fmt.Errorf("create task %s/%s@%s: %w", spec.Namespace, spec.Name, spec.Version, req.err)
	}
	return req.task, req.created, nil
}

// createReq is one task to create in a group.
type createReq struct {
	ctx   context.Context
	task  *taskertype.Task // set to the created task on success
	steps []*taskertype.Step
	// created is the task's steps as the transaction that created it left
	// them; nil when the task was found stored after a lost commit.
	created []*taskertype.Step
	err     error
}

// maxCreateBatch bounds the tasks created in one transaction.
const maxCreateBatch = 32

// createBatch creates a group of tasks in one transaction, and claims their
// first steps for the local worker in it. The transaction takes in the
// creations that arrived while it waited to begin (more, the group's
// Committer.More): on SQLite it waits for the single writer. A transaction
// begun for more than one task runs under a budget of its own; one begun
// for one task runs under its caller's context, so that a caller who gives
// up does not wait for the writer, and keeps it when it takes in others: if
// that caller gives up during the transaction (on PostgreSQL, whose
// statements honour the context), the transaction fails and the others are
// created one by one, at the cost of their transactions, not of their
// tasks. If it fails, a lone task's error is answered as createOne answers
// it, and each task of a larger group is created in a transaction of its
// own, so that it fails alone.
func (o *Orchestrator) createBatch(reqs []*createReq, more func() []*createReq) {
	live := addLive(reqs[:0:0], reqs)
	if len(live) == 0 {
		return
	}
	ctx := live[0].ctx
	if len(live) > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(live[0].ctx), 30*time.Second)
		defer cancel()
	}
	err := o.createTx(ctx, &live, more)
	if err == nil {
		return
	}
	if len(live) == 1 {
		live[0].err = o.settleOne(live[0], err)
		return
	}
	for _, r := range live {
		r.err = o.createOne(r)
	}
}

// addLive appends to live the requests whose callers still wait, and
// settles the others with their context's error.
func addLive(live, reqs []*createReq) []*createReq {
	for _, r := range reqs {
		if r.err = r.ctx.Err(); r.err == nil {
			live = append(live, r)
		}
	}
	return live
}

// createOne creates a task in a transaction of its own; see settleOne.
func (o *Orchestrator) createOne(r *createReq) error {
	reqs := []*createReq{r}
	return o.settleOne(r, o.createTx(r.ctx, &reqs, nil))
}

// settleOne answers the outcome err of a transaction that created r alone.
// A commit whose answer was lost (the connection failed after the COMMIT
// was sent, so the store cannot tell whether it happened) may have
// committed: this transaction's, or before it the group's, which makes
// this one fail with store.ErrTaskExists. The ids are the engine's, fresh
// for each task, so finding the task stored with the same content means a
// commit happened, and the task is created. Reporting an error there would
// make a client that retries run the work twice. So every failure but
// invalid input is checked with one lookup of the id before it is
// answered; a task not stored (or a lookup that fails too) leaves the
// error as it was.
//
// A task whose identity hash is taken (store.ErrIdentityTaken) is a
// duplicate: the task holding the hash is looked up, and the error is a
// *taskertype.DuplicateTaskError carrying its id, unless it is this very
// task (an earlier commit of it whose answer was lost), which is then
// created.
func (o *Orchestrator) settleOne(r *createReq, err error) error {
	if errors.Is(err, store.ErrIdentityTaken) {
		return o.duplicate(r, err)
	}
	exists := errors.Is(err, store.ErrTaskExists)
	if err == nil || !exists && errors.Is(err, taskertype.ErrInvalid) {
		return err
	}
	got, gerr := o.store.TaskGet(r.ctx, r.task.ID)
	if gerr != nil {
		if exists {
			return errors.Join(err, gerr)
		}
		return err
	}
	if !sameTask(got, r.task) {
		return fmt.Errorf("%w: the stored task %s differs: %s/%s@%s", err, got.ID, got.Namespace, got.Name, got.Version)
	}
	o.log.Info("a task created by a commit whose answer was lost is stored: it is created", "task_id", got.ID, "error", err)
	*r.task = *got
	return nil
}

// duplicate answers a create refused by the unique identity hash: the
// stored task with the hash is the duplicate's original, or this task
// itself when an earlier commit of it was answered by a lost connection.
func (o *Orchestrator) duplicate(r *createReq, err error) error {
	hash := r.task.Request.IdentityHash
	found, lerr := o.store.TaskList(r.ctx, &store.TaskListParams{IdentityHash: hash})
	if lerr != nil {
		return errors.Join(err, fmt.Errorf("look up the task with identity %s: %w", hash, lerr))
	}
	if len(found) == 0 {
		// Gone since (a store that deletes tasks): a retry may succeed.
		return fmt.Errorf("%w (the task that had the identity is no longer stored: try again)", err)
	}
	got := found[0]
	if got.ID == r.task.ID && sameTask(got, r.task) {
		o.log.Info("a task created by a commit whose answer was lost is stored: it is created", "task_id", got.ID, "error", err)
		*r.task = *got
		return nil
	}
	return &taskertype.DuplicateTaskError{ExistingID: got.ID, IdentityHash: hash, ByKey: r.task.Request.IdempotencyKey != ""}
}

// sameTask reports whether a stored task is the one a request creates: same
// id, namespace, name, version and context.
func sameTask(stored, want *taskertype.Task) bool {
	if stored.ID != want.ID || stored.Namespace != want.Namespace || stored.Name != want.Name || stored.Version != want.Version {
		return false
	}
	a, b := []byte(stored.Context), []byte(want.Context)
	if bytes.Equal(a, b) {
		return true
	}
	// A store may keep the context in another spelling (an empty context
	// is stored as {}): compare the values.
	var va, vb any
	if len(a) == 0 {
		a = []byte("{}")
	}
	if len(b) == 0 {
		b = []byte("{}")
	}
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}

// createTx creates tasks in one transaction. When a worker runs in this
// process, the transaction also claims and starts the first steps; if
// those claims fail (a message queued before that the worker cannot
// start), the tasks are created again in a transaction that claims
// nothing, and the claim loops take their steps. If more is set, the
// transaction first adds to *reqs the live requests it returns.
func (o *Orchestrator) createTx(ctx context.Context, reqs *[]*createReq, more func() []*createReq) error {
	claimsFailed, err := o.createTxTry(ctx, reqs, more, true)
	if claimsFailed {
		o.log.Debug("claiming the first steps of new tasks failed; creating them without claims", "tasks", len(*reqs), "error", err)
		_, err = o.createTxTry(ctx, reqs, nil, false)
	}
	return err
}

// createTxTry is one try of createTx, claiming the first steps if claim is
// set. claimsFailed: the transaction failed in the claims.
func (o *Orchestrator) createTxTry(ctx context.Context, reqs *[]*createReq, more func() []*createReq, claim bool) (claimsFailed bool, err error) {
	var afters []func(committed bool) // the local worker's, for the last attempt of the transaction
	var created []taskertype.Task
	var createdSteps [][]*taskertype.Step
	err = o.tx(ctx, func(tx store.Tx, rec *transition.Recorder) error {
		for _, after := range afters {
			after(false)
		}
		afters, claimsFailed = afters[:0], false
		if more != nil {
			*reqs = addLive(*reqs, more())
		}
		created, createdSteps = make([]taskertype.Task, len(*reqs)), make([][]*taskertype.Step, len(*reqs))
		now := o.clock.Now()
		var namespaces []string
		for i, r := range *reqs {
			start := o.clock.Now()
			t := *r.task
			if err := tx.TaskCreate(ctx, &store.TaskCreateParams{Task: &t, Steps: r.steps, At: now, Processor: o.cfg.Processor}); err != nil {
				return err
			}
			t.State, t.CreatedAt, t.UpdatedAt = taskertype.TaskPending, now, now
			rec.Created(&t, now)
			fresh := make([]*taskertype.Step, len(r.steps))
			for i, s := range r.steps {
				c := *s
				c.State, c.CreatedAt, c.UpdatedAt = taskertype.StepPending, now, now
				fresh[i] = &c
			}
			o.rememberAfterCommit(rec, &t, fresh)
			if err := o.apply(ctx, tx, rec, &t, makePlan(t.State, fresh, "", now), now); err != nil {
				return err
			}
			created[i], createdSteps[i] = t, fresh
			o.timed(start)
			if !slices.Contains(namespaces, t.Namespace) {
				namespaces = append(namespaces, t.Namespace)
			}
		}
		local := o.local.Load()
		if local == nil || !claim {
			return nil
		}
		for _, ns := range namespaces {
			after, err := (*local).ClaimInTx(ctx, tx, rec, queue.StepQueue(ns))
			if err != nil {
				claimsFailed = ctx.Err() == nil
				return err
			}
			if after != nil {
				afters = append(afters, after)
			}
		}
		return nil
	})
	for _, after := range afters {
		after(err == nil)
	}
	if err != nil {
		return claimsFailed, err
	}
	for i, r := range *reqs {
		*r.task = created[i]
		r.created = createdSteps[i]
	}
	return false, nil
}

func (o *Orchestrator) ensureStepQueue(ctx context.Context, namespace string) error {
	if _, ok := o.ensured.Load(namespace); ok {
		return nil
	}
	name := queue.StepQueue(namespace)
	if err := o.queue.QueueEnsure(ctx, name); err != nil {
		return fmt.Errorf("ensure queue %s: %w", name, err)
	}
	if o.cfg.DomainEventQueue != nil {
		if de := o.cfg.DomainEventQueue(namespace); de != "" {
			if err := o.queue.QueueEnsure(ctx, de); err != nil {
				return fmt.Errorf("ensure queue %s: %w", de, err)
			}
		}
	}
	o.ensured.Store(namespace, struct{}{})
	return nil
}

func buildTask(spec *TaskSpec) (*taskertype.Task, []*taskertype.Step, error) {
	if len(spec.Steps) == 0 {
		return nil, nil, fmt.Errorf("%w: a task needs at least one step", taskertype.ErrInvalid)
	}
	task := &taskertype.Task{
		ID: uuid.Must(uuid.NewV7()), Namespace: spec.Namespace, Name: spec.Name, Version: spec.Version, Context: spec.Context,
		Request: spec.Request,
	}
	task.Request.Tags = slices.Clone(spec.Request.Tags)
	if task.Request.CorrelationID == uuid.Nil {
		task.Request.CorrelationID = uuid.Must(uuid.NewV7())
	}
	ids := make(map[string]uuid.UUID, len(spec.Steps))
	for _, s := range spec.Steps {
		ids[s.Name] = uuid.Must(uuid.NewV7())
	}
	steps := make([]*taskertype.Step, len(spec.Steps))
	for i, s := range spec.Steps {
		deps := make([]uuid.UUID, len(s.DependsOn))
		for j, d := range s.DependsOn {
			id, ok := ids[d]
			if !ok {
				return nil, nil, fmt.Errorf("%w: step %q depends on unknown step %q", taskertype.ErrInvalid, s.Name, d)
			}
			deps[j] = id
		}
		pos := i
		if spec.Positioned {
			pos = s.Position
		}
		steps[i] = &taskertype.Step{
			ID: ids[s.Name], TaskID: task.ID, Name: s.Name, Handler: s.Handler, Position: pos,
			DependsOn: deps, Retry: s.Retry, Timeout: s.Timeout,
		}
	}
	return task, steps, nil
}
