package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/api/gen"
	"github.com/tasker-go/tasker/internal/auth"
	"github.com/tasker-go/tasker/taskertype"
)

// permContextRead is the permission a caller needs, with auth on, to read
// a task's context in the task answers (tasker-core's tasks:context_read).
const permContextRead = "tasks:context_read"

// contextRoutes are the routes whose answers carry task contexts: with
// auth on, a caller without permContextRead gets them redacted.
var contextRoutes = map[string]bool{
	"POST /v1/tasks":              true,
	"GET /v1/tasks":               true,
	"GET /v1/tasks/{uuid}":        true,
	"DELETE /v1/tasks/{uuid}":     true,
	"GET /v1/tasks/{uuid}/events": true,
}

// showContext says whether the request's caller may read task contexts:
// always with auth off; with auth on, when its principal holds
// tasks:context_read (or a wildcard of it).
func (s *Server) showContext(ctx context.Context) bool {
	if s.auth == nil {
		return true
	}
	p := auth.PrincipalFrom(ctx)
	return p != nil && p.Allows(permContextRead)
}

// task is taskResponse for the request's caller: the context is an empty
// object when the caller may not read it (docs/api.md), so the answer
// still has the spec's required context.
func (s *Server) task(ctx context.Context, t *tasker.Task, steps []*tasker.Step) gen.TaskResponse {
	out := taskResponse(t, steps)
	if !s.showContext(ctx) {
		out.Context = map[string]any{}
	}
	return out
}

// Pagination of GET /v1/tasks.
const (
	defaultPerPage = 25
	maxPerPage     = 100
	// maxOffset bounds how deep a page may start: an offset is walked on
	// the index, so a page a million tasks deep costs a million index
	// entries (docs/api.md).
	maxOffset = 1_000_000
)

func parseUUID(field, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, badf("%s %q is not a UUID: pass the uuid the API returned (e.g. 0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d)", field, s)
	}
	return id, nil
}

// CreateTask creates a task from a registered template.
func (s *Server) CreateTask(ctx context.Context, req gen.CreateTaskRequestObject) (gen.CreateTaskResponseObject, error) {
	b := req.Body
	if b == nil {
		return nil, badf("no request body: send a TaskRequest JSON object (namespace, name, version, context, ...)")
	}
	if b.Namespace == "" || b.Name == "" {
		return nil, badf("namespace and name are required: name the template to run (GET /v1/templates lists them)")
	}
	ctxv := b.Context
	switch c := ctxv.(type) {
	case nil:
		ctxv = map[string]any{}
	case map[string]any:
	case json.RawMessage:
		// As the request carried it (createTaskServer). It is decoded once
		// more, numbers as their digits, so that a context posted here is
		// stored compact, with one value per key (the last, as every decoder
		// takes) and bad UTF-8 mended, whatever spacing or repeats the
		// client sent.
		if kind := rawKind(c); kind != "" {
			return nil, badf("context must be a JSON object, not %s", kind)
		}
		d := json.NewDecoder(bytes.NewReader(c))
		d.UseNumber()
		var v map[string]any
		if err := d.Decode(&v); err != nil {
			return nil, badf("context: %v", err)
		}
		ctxv = v
	default:
		return nil, badf("context must be a JSON object, not %s", jsonKind(ctxv))
	}
	p := tasker.CreateTaskParams{Namespace: b.Namespace, Name: b.Name, Version: b.Version, Context: ctxv,
		CorrelationID: b.CorrelationId, Initiator: b.Initiator, SourceSystem: b.SourceSystem, Reason: b.Reason, Tags: b.Tags}
	if b.Priority != nil {
		p.Priority = int(*b.Priority)
	}
	if b.ParentCorrelationId != nil {
		p.ParentCorrelationID = *b.ParentCorrelationId
	}
	if b.IdempotencyKey != nil {
		p.IdempotencyKey = *b.IdempotencyKey
	}
	info, err := s.eng.CreateTaskInfo(ctx, p)
	if errors.Is(err, taskertype.ErrNotFound) {
		// The spec answers an unknown template 400 (it lists no 404 here).
		return nil, &badRequest{err.Error()}
	}
	if err != nil {
		return nil, err
	}
	// The task and its steps as the create committed them: no read.
	return gen.CreateTask201JSONResponse(s.task(ctx, info.Task, info.Steps)), nil
}

// rawKind is "" for a JSON object, else what the JSON value is, as
// jsonKind words it.
func rawKind(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "empty"
	}
	switch c := raw[0]; {
	case c == '{':
		return ""
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	default:
		return "a number"
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

// GetTask answers a task with its steps' readiness.
func (s *Server) GetTask(ctx context.Context, req gen.GetTaskRequestObject) (gen.GetTaskResponseObject, error) {
	id, err := parseUUID("task uuid", req.Uuid)
	if err != nil {
		return nil, err
	}
	info, err := s.eng.Task(ctx, id)
	if err != nil {
		return nil, err
	}
	return gen.GetTask200JSONResponse(s.task(ctx, info.Task, info.Steps)), nil
}

// CancelTask cancels an unfinished task and answers it as it is now.
func (s *Server) CancelTask(ctx context.Context, req gen.CancelTaskRequestObject) (gen.CancelTaskResponseObject, error) {
	id, err := parseUUID("task uuid", req.Uuid)
	if err != nil {
		return nil, err
	}
	if err := s.eng.CancelTask(ctx, id); err != nil {
		return nil, err
	}
	info, err := s.eng.Task(ctx, id)
	if err != nil {
		return nil, err
	}
	return gen.CancelTask200JSONResponse(s.task(ctx, info.Task, info.Steps)), nil
}

// ListTasks lists tasks newest first, filtered by status and namespace, a
// page at a time.
func (s *Server) ListTasks(ctx context.Context, req gen.ListTasksRequestObject) (gen.ListTasksResponseObject, error) {
	p := req.Params
	page, perPage := int32(1), int32(defaultPerPage)
	if p.Page != nil {
		if *p.Page < 1 {
			return nil, badf("page %d: pages count from 1", *p.Page)
		}
		page = *p.Page
	}
	if p.PerPage != nil {
		if *p.PerPage < 1 || *p.PerPage > maxPerPage {
			return nil, badf("per_page %d: give 1 to %d", *p.PerPage, maxPerPage)
		}
		perPage = *p.PerPage
	}
	var states []tasker.TaskState
	if p.Status != nil && *p.Status != "" {
		st := taskertype.TaskState(*p.Status)
		if !slices.Contains(taskertype.TaskStates, st) {
			return nil, badf("status %q is not a task state: use one of %v", *p.Status, taskertype.TaskStates)
		}
		states = append(states, st)
	}
	if p.Initiator != nil || p.SourceSystem != nil {
		return nil, badf("the initiator and source_system filters are not supported: this server does not index them (docs/api.md)")
	}
	offset := int64(page-1) * int64(perPage)
	if offset > maxOffset {
		return nil, badf("page %d of %d tasks starts beyond the first %d tasks this server pages through: narrow the list with status or namespace", page, perPage, maxOffset)
	}
	pp := tasker.TaskPageParams{States: states, Limit: int(perPage), Offset: int(offset)}
	if p.Namespace != nil {
		pp.Namespace = *p.Namespace
	}
	tasks, total, err := s.eng.TaskPage(ctx, pp)
	if err != nil {
		return nil, err
	}
	out := gen.TaskListResponse{Tasks: []gen.TaskResponse{}}
	for _, t := range tasks {
		info, err := s.eng.Task(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		out.Tasks = append(out.Tasks, s.task(ctx, info.Task, info.Steps))
	}
	to := offset + int64(len(tasks))
	pages := int32((total + int64(perPage) - 1) / int64(perPage))
	out.Pagination = gen.PaginationInfo{Page: page, PerPage: perPage, TotalCount: total, TotalPages: pages,
		HasNext: to < total, HasPrevious: page > 1}
	return gen.ListTasks200JSONResponse(out), nil
}

// ListTaskSteps answers a task's steps in template order.
func (s *Server) ListTaskSteps(ctx context.Context, req gen.ListTaskStepsRequestObject) (gen.ListTaskStepsResponseObject, error) {
	id, err := parseUUID("task uuid", req.Uuid)
	if err != nil {
		return nil, err
	}
	info, err := s.eng.Task(ctx, id)
	if err != nil {
		return nil, err
	}
	out := gen.ListTaskSteps200JSONResponse{}
	for _, st := range info.Steps {
		out = append(out, stepResponse(st, info.Steps))
	}
	return out, nil
}

// GetStep answers one step of a task with its readiness.
func (s *Server) GetStep(ctx context.Context, req gen.GetStepRequestObject) (gen.GetStepResponseObject, error) {
	id, err := parseUUID("task uuid", req.Uuid)
	if err != nil {
		return nil, err
	}
	sid, err := parseUUID("step uuid", req.StepUuid)
	if err != nil {
		return nil, err
	}
	info, err := s.eng.Task(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, st := range info.Steps {
		if st.ID == sid {
			return gen.GetStep200JSONResponse(stepResponse(st, info.Steps)), nil
		}
	}
	return nil, fmt.Errorf("step %s of task %s: %w: GET /v1/tasks/%s/workflow_steps lists its steps", sid, id, taskertype.ErrNotFound, id)
}

// readiness is what a step's parents and retry policy say of it.
type readiness struct {
	completedParents, totalParents int32
	depsSatisfied, ready, retry    bool
}

func stepReadiness(st *tasker.Step, byID map[uuid.UUID]*tasker.Step) readiness {
	r := readiness{totalParents: int32(len(st.DependsOn))}
	for _, d := range st.DependsOn {
		if p := byID[d]; p != nil && (p.State == taskertype.StepComplete || p.State == taskertype.StepResolvedManually) {
			r.completedParents++
		}
	}
	r.depsSatisfied = r.completedParents == r.totalParents
	r.retry = st.Retry.Retryable && st.Attempts < st.Retry.MaxAttempts
	r.ready = r.depsSatisfied && (st.State == taskertype.StepPending ||
		(st.State == taskertype.StepWaitingForRetry && r.retry))
	return r
}

func index(steps []*tasker.Step) map[uuid.UUID]*tasker.Step {
	m := make(map[uuid.UUID]*tasker.Step, len(steps))
	for _, st := range steps {
		m[st.ID] = st
	}
	return m
}

// wireTime is t as the answers give it: UTC, at the microsecond both
// stores keep, so that an answer built from what a transaction wrote (the
// create's) and one read back agree.
func wireTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = wireTime(t)
	return &t
}

func stringTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := wireTime(t).Format(time.RFC3339Nano)
	return &s
}

func rawJSON(r json.RawMessage) any {
	if len(r) == 0 {
		return nil
	}
	return r
}

func stepResponse(st *tasker.Step, all []*tasker.Step) gen.StepResponse {
	r := stepReadiness(st, index(all))
	out := gen.StepResponse{
		Attempts: int32(st.Attempts), CompletedParents: r.completedParents, TotalParents: r.totalParents,
		CreatedAt: wireTime(st.CreatedAt).Format(time.RFC3339Nano), UpdatedAt: wireTime(st.UpdatedAt).Format(time.RFC3339Nano),
		CurrentState: string(st.State), DependenciesSatisfied: r.depsSatisfied, ReadyForExecution: r.ready,
		RetryEligible: r.retry, MaxAttempts: int32(st.Retry.MaxAttempts), Name: st.Name,
		StepUuid: st.ID.String(), TaskUuid: st.TaskID.String(), NextRetryAt: stringTime(st.NextRetryAt),
		Results: rawJSON(st.Result),
	}
	if st.State.Terminal() {
		out.CompletedAt = stringTime(st.UpdatedAt)
	}
	return out
}

// taskResponse builds the spec's TaskResponse from what the engine stores.
// The request's metadata tasker-core records (initiator, source_system,
// reason, correlation ids, tags, priority) is not stored yet: those fields
// are empty (docs/api.md).
func taskResponse(t *tasker.Task, steps []*tasker.Step) gen.TaskResponse {
	byID := index(steps)
	out := gen.TaskResponse{
		TaskUuid: t.ID.String(), Namespace: t.Namespace, Name: t.Name, Version: t.Version, Status: string(t.State),
		Context: rawJSON(t.Context), CreatedAt: wireTime(t.CreatedAt), UpdatedAt: wireTime(t.UpdatedAt),
		CompletedAt: timePtr(t.FinishedAt), TotalSteps: int64(len(steps)), Steps: []gen.StepReadinessStatus{},
	}
	// The request's fields (docs/identity.md).
	rq := &t.Request
	out.CorrelationId, out.Initiator, out.SourceSystem, out.Reason = rq.CorrelationID, rq.Initiator, rq.SourceSystem, rq.Reason
	if rq.ParentCorrelationID != uuid.Nil {
		parent := rq.ParentCorrelationID
		out.ParentCorrelationId = &parent
	}
	if rq.Priority != 0 {
		priority := int32(rq.Priority)
		out.Priority = &priority
	}
	if len(rq.Tags) > 0 {
		tags := slices.Clone(rq.Tags)
		out.Tags = &tags
	}
	if out.Context == nil {
		out.Context = map[string]any{}
	}
	for _, st := range steps {
		r := stepReadiness(st, byID)
		switch st.State {
		case taskertype.StepComplete, taskertype.StepResolvedManually:
			out.CompletedSteps++
		case taskertype.StepError:
			out.FailedSteps++
		case taskertype.StepEnqueued, taskertype.StepInProgress, taskertype.StepEnqueuedForOrchestration, taskertype.StepEnqueuedAsErrorForOrchestration:
			out.InProgressSteps++
		case taskertype.StepPending, taskertype.StepWaitingForRetry:
			out.PendingSteps++
		}
		if r.ready {
			out.ReadySteps++
		}
		rs := gen.StepReadinessStatus{
			Attempts: int32(st.Attempts), CompletedParents: r.completedParents, TotalParents: r.totalParents,
			CurrentState: string(st.State), DependenciesSatisfied: r.depsSatisfied, ReadyForExecution: r.ready,
			RetryEligible: r.retry, MaxAttempts: int32(st.Retry.MaxAttempts), Name: st.Name,
			NamedStepUuid: st.ID, WorkflowStepUuid: st.ID, TaskUuid: st.TaskID, NextRetryAt: timePtr(st.NextRetryAt),
		}
		out.Steps = append(out.Steps, rs)
	}
	if out.TotalSteps > 0 {
		out.CompletionPercentage = float64(out.CompletedSteps) * 100 / float64(out.TotalSteps)
	}
	out.ExecutionStatus, out.HealthStatus, out.RecommendedAction = execution(t.State, out)
	return out
}

// execution derives tasker-core's execution status, health and recommended
// action from the task's state and its step counts.
func execution(state tasker.TaskState, r gen.TaskResponse) (status, health, action string) {
	switch {
	case state == taskertype.TaskComplete || state == taskertype.TaskResolvedManually:
		return "all_complete", "healthy", "none"
	case state == taskertype.TaskCancelled:
		return "cancelled", "healthy", "none"
	case state == taskertype.TaskError || state == taskertype.TaskBlockedByFailures || r.FailedSteps > 0:
		return "blocked_by_failures", "blocked", "handle_failures"
	case r.ReadySteps > 0:
		return "has_ready_steps", "healthy", "execute_ready_steps"
	case r.InProgressSteps > 0:
		return "processing", "healthy", "wait_for_completion"
	default:
		return "waiting_for_dependencies", "healthy", "wait_for_dependencies"
	}
}
