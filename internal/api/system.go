package api

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/api/gen"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

// GetConfig answers a safe view of the running configuration: backends,
// breakers, pools, queue names and how auth is set up; never a URL, a
// path, a key or a hash.
func (s *Server) GetConfig(ctx context.Context, _ gen.GetConfigRequestObject) (gen.GetConfigResponseObject, error) {
	set := s.eng.Settings()
	resp := gen.GetConfig200JSONResponse{
		Metadata: gen.ConfigMetadata{Environment: s.environment(), Timestamp: s.clock.Now().UTC(), Version: s.version},
		Auth: gen.SafeAuthConfig{Enabled: false, VerificationMethod: "none", AllowedAlgorithms: []string{},
			ApiKeyHeader: "X-API-Key"},
		CircuitBreakers: gen.SafeCircuitBreakerConfig{Enabled: true, FailureThreshold: int32(set.BreakerFailureThreshold),
			SuccessThreshold: int32(set.BreakerHalfOpenProbes), TimeoutSeconds: int32(set.BreakerOpenFor / time.Second)},
		DeploymentMode: s.set.DeploymentMode,
		Messaging:      gen.SafeMessagingConfig{Backend: set.Queue, Queues: s.queueNames()},
	}
	if resp.DeploymentMode == "" {
		resp.DeploymentMode = "api_orchestration"
	}
	for _, p := range s.eng.Stats().Pools {
		resp.DatabasePools.WebApiMaxConnections += int32(p.MaxConns)
		resp.DatabasePools.WebApiPoolSize += int32(p.InUse + p.Idle)
	}
	if s.auth != nil {
		a := s.auth.Config().Safe()
		resp.Auth = gen.SafeAuthConfig{Enabled: true, VerificationMethod: a.VerificationMethod, JwtIssuer: a.Issuer,
			JwtAudience: a.Audience, ApiKeyHeader: a.APIKeyHeader, ApiKeyCount: a.APIKeyCount,
			StrictValidation: a.StrictValidation, AllowedAlgorithms: a.AllowedAlgorithms}
	}
	return resp, nil
}

func (s *Server) environment() string {
	if s.set.Environment == "" {
		return "unspecified"
	}
	return s.set.Environment
}

// queueNames lists the orchestration queues and the step queue of each
// registered template's namespace.
func (s *Server) queueNames() []string {
	names := []string{queue.TasksQueue, queue.ResultsQueue}
	var nss []string
	for _, t := range s.eng.Templates() {
		if !slices.Contains(nss, t.Namespace) {
			nss = append(nss, t.Namespace)
		}
	}
	slices.Sort(nss)
	for _, ns := range nss {
		names = append(names, queue.StepQueue(ns))
	}
	return names
}

// GetStepAudit answers the step's execution results, newest first: one
// record per attempt outcome the store's transition history holds (the
// transitions in_progress → enqueued_for_orchestration, a success, and
// in_progress → enqueued_as_error_for_orchestration, a failure). The run
// time is from the attempt's start transition to its outcome; the worker
// is the transition's processor; the result (or the failure) is the
// step's, on the newest record only, while no operator action replaced it.
// The record and transition uuids are UUIDv5 names of the transition's
// id: stable, but not stored.
func (s *Server) GetStepAudit(ctx context.Context, req gen.GetStepAuditRequestObject) (gen.GetStepAuditResponseObject, error) {
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
	i := slices.IndexFunc(info.Steps, func(st *tasker.Step) bool { return st.ID == sid })
	if i < 0 {
		return nil, fmt.Errorf("step %s of task %s: %w: GET /v1/tasks/%s/workflow_steps lists its steps", sid, id, taskertype.ErrNotFound, id)
	}
	step := info.Steps[i]
	trs, err := s.eng.StepTransitions(ctx, id, sid)
	if err != nil {
		return nil, err
	}
	var corr *string
	if c := info.Task.Request.CorrelationID; c != uuid.Nil {
		v := c.String()
		corr = &v
	}
	out := gen.GetStepAudit200JSONResponse{}
	var started time.Time
	replaced := false // an operator's action came after the last outcome
	for _, tr := range trs {
		switch taskertype.StepEvent(tr.Event) {
		case taskertype.StepEventStart:
			started = tr.At
			continue
		case taskertype.StepEventCompleteManually, taskertype.StepEventResolveManually, taskertype.StepEventReset:
			replaced = true
			continue
		case taskertype.StepEventSucceed, taskertype.StepEventFail:
			replaced = false
		default:
			continue
		}
		from := tr.From
		rec := gen.StepAuditResponse{
			AuditUuid:        uuid.NewSHA1(sid, []byte("audit:"+strconv.FormatInt(tr.ID, 10))).String(),
			TransitionUuid:   uuid.NewSHA1(id, []byte("transition:"+strconv.FormatInt(tr.ID, 10))).String(),
			WorkflowStepUuid: sid.String(), TaskUuid: id.String(), StepName: step.Name,
			RecordedAt: tr.At.UTC().Format(time.RFC3339Nano), Success: tr.Event == string(taskertype.StepEventSucceed),
			FromState: &from, ToState: tr.To, CorrelationId: corr,
		}
		if tr.Processor != "" {
			p := tr.Processor
			rec.WorkerUuid = &p
		}
		if !started.IsZero() && !tr.At.Before(started) {
			ms := tr.At.Sub(started).Milliseconds()
			rec.ExecutionTimeMs = &ms
		}
		started = time.Time{}
		out = append(out, rec)
	}
	if n := len(out); n > 0 && !replaced {
		last := &out[n-1]
		switch {
		case last.Success && step.Result != nil:
			last.Result = step.Result
		case !last.Success && step.Failure != nil:
			last.Result = step.Failure
		}
	}
	slices.Reverse(out)
	return out, nil
}

// Settings is the part of the process's configuration GET /config shows
// that the engine does not know: how it was deployed. Nothing secret goes
// here.
type Settings struct {
	// Environment names the deployment ("" answers "unspecified").
	Environment string
	// DeploymentMode says how the process runs, e.g. "all_in_one" (API,
	// orchestration and workers in one process) or "api_orchestration".
	// "" answers "api_orchestration".
	DeploymentMode string
}
