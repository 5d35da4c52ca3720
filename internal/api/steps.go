package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/api/gen"
	"github.com/tasker-go/tasker/taskertype"
)

// ResolveStepManually applies an operator's action to a step:
// reset_for_retry, resolve_manually or complete_manually (with the result
// dependents read). A state the step machine refuses is answered 409
// naming the state.
func (s *Server) ResolveStepManually(ctx context.Context, req gen.ResolveStepManuallyRequestObject) (gen.ResolveStepManuallyResponseObject, error) {
	id, err := parseUUID("task uuid", req.Uuid)
	if err != nil {
		return nil, err
	}
	sid, err := parseUUID("step uuid", req.StepUuid)
	if err != nil {
		return nil, err
	}
	if req.Body == nil {
		return nil, badf("no request body: send a StepManualAction JSON object with action_type reset_for_retry, resolve_manually or complete_manually")
	}
	raw, err := req.Body.MarshalJSON()
	if err != nil {
		return nil, badf("request body: %v", err)
	}
	var head struct {
		ActionType string `json:"action_type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, badf("request body: %v", err)
	}
	info, err := s.eng.Task(ctx, id)
	if err != nil {
		return nil, err
	}
	name := ""
	for _, st := range info.Steps {
		if st.ID == sid {
			name = st.Name
		}
	}
	if name == "" {
		return nil, fmt.Errorf("step %s of task %s: %w: GET /v1/tasks/%s/workflow_steps lists its steps", sid, id, taskertype.ErrNotFound, id)
	}
	switch head.ActionType {
	case string(gen.ResetForRetry):
		a, err := req.Body.AsStepManualAction0()
		if err != nil || a.ResetBy == "" || a.Reason == "" {
			return nil, badf("reset_for_retry needs reset_by and reason (strings)")
		}
		if err := s.eng.ResetStep(ctx, id, name); err != nil {
			return nil, s.refused(ctx, id, err)
		}
	case string(gen.ResolveManually):
		a, err := req.Body.AsStepManualAction1()
		if err != nil || a.ResolvedBy == "" || a.Reason == "" {
			return nil, badf("resolve_manually needs resolved_by and reason (strings)")
		}
		if err := s.eng.ResolveStep(ctx, id, name); err != nil {
			return nil, s.refused(ctx, id, err)
		}
	case string(gen.CompleteManually):
		var a struct {
			CompletedBy    string `json:"completed_by"`
			Reason         string `json:"reason"`
			CompletionData struct {
				Result json.RawMessage `json:"result"`
			} `json:"completion_data"`
		}
		if err := json.Unmarshal(raw, &a); err != nil || a.CompletedBy == "" || a.Reason == "" || len(a.CompletionData.Result) == 0 {
			return nil, badf("complete_manually needs completed_by, reason and completion_data.result (the result dependents read)")
		}
		if err := s.eng.CompleteStep(ctx, id, name, a.CompletionData.Result); err != nil {
			return nil, s.refused(ctx, id, err)
		}
	default:
		return nil, badf("action_type %q: use reset_for_retry, resolve_manually or complete_manually", head.ActionType)
	}
	info, err = s.eng.Task(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, st := range info.Steps {
		if st.ID == sid {
			return gen.ResolveStepManually200JSONResponse(stepResponse(st, info.Steps)), nil
		}
	}
	return nil, fmt.Errorf("step %s of task %s: %w", sid, id, taskertype.ErrNotFound)
}

// conflict is a request the task's state refuses: 409.
type conflict struct{ err error }

func (c *conflict) Error() string { return c.err.Error() }
func (c *conflict) Unwrap() error { return c.err }

// refused turns the engine's refusal of a manual action on a finished task
// (ErrInvalid: "task ... is complete: its steps can no longer change")
// into a 409 naming the state, as the state machine's own refusals are;
// other errors pass as they are.
func (s *Server) refused(ctx context.Context, id uuid.UUID, err error) error {
	if !errors.Is(err, taskertype.ErrInvalid) {
		return err
	}
	info, rerr := s.eng.Task(ctx, id)
	if rerr != nil || !info.Task.State.Terminal() {
		return err
	}
	return &conflict{err}
}
