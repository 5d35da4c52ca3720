package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/api/gen"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// The spec spells reasons and statuses in PascalCase, the engine in
// snake_case.
var (
	reasonToAPI = map[taskertype.DLQReason]gen.DlqReason{
		taskertype.DLQStalenessTimeout: gen.StalenessTimeout, taskertype.DLQMaxRetriesExceeded: gen.MaxRetriesExceeded,
		taskertype.DLQDependencyCycleDetected: gen.DependencyCycleDetected, taskertype.DLQWorkerUnavailable: gen.WorkerUnavailable,
		taskertype.DLQManual: gen.ManualDlq,
	}
	statusToAPI = map[taskertype.DLQResolutionStatus]gen.DlqResolutionStatus{
		taskertype.DLQPending: gen.Pending, taskertype.DLQManuallyResolved: gen.ManuallyResolved,
		taskertype.DLQPermanentlyFailed: gen.PermanentlyFailed, taskertype.DLQCancelled: gen.Cancelled,
	}
	statusFromAPI = func() map[gen.DlqResolutionStatus]taskertype.DLQResolutionStatus {
		m := map[gen.DlqResolutionStatus]taskertype.DLQResolutionStatus{}
		for k, v := range statusToAPI {
			m[v] = k
		}
		return m
	}()
)

func apiStatus(field string, s gen.DlqResolutionStatus) (taskertype.DLQResolutionStatus, error) {
	st, ok := statusFromAPI[s]
	if !ok {
		return "", badf("%s %q is not a resolution status: use Pending, ManuallyResolved, PermanentlyFailed or Cancelled", field, s)
	}
	return st, nil
}

func dlqEntry(e *tasker.DLQEntry) gen.DlqEntry {
	out := gen.DlqEntry{DlqEntryUuid: e.ID, TaskUuid: e.TaskID, OriginalState: string(e.OriginalState),
		DlqReason: reasonToAPI[e.Reason], DlqTimestamp: e.At.UTC(), ResolutionStatus: statusToAPI[e.ResolutionStatus],
		ResolutionTimestamp: timePtr(e.ResolvedAt), ResolutionNotes: optString(e.ResolutionNotes),
		ResolvedBy: optString(e.ResolvedBy), TaskSnapshot: rawJSON(e.TaskSnapshot), Metadata: rawJSON(e.Metadata),
		CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC()}
	if out.TaskSnapshot == nil {
		out.TaskSnapshot = map[string]any{}
	}
	return out
}

// limitParam checks an optional limit against the engine's bound.
func limitParam(l *int64) (int, error) {
	if l == nil {
		return 0, nil
	}
	if *l < 0 || *l > store.MaxDLQListLimit {
		return 0, badf("limit %d: give 0 to %d", *l, store.MaxDLQListLimit)
	}
	return int(*l), nil
}

// ListDlqEntries lists DLQ entries, newest first.
func (s *Server) ListDlqEntries(ctx context.Context, req gen.ListDlqEntriesRequestObject) (gen.ListDlqEntriesResponseObject, error) {
	p := tasker.DLQListParams{}
	var err error
	if p.Limit, err = limitParam(req.Params.Limit); err != nil {
		return nil, err
	}
	if o := req.Params.Offset; o != nil {
		if *o < 0 || *o > math.MaxInt32 {
			return nil, badf("offset %d: give 0 or more", *o)
		}
		p.Offset = int(*o)
	}
	if st := req.Params.ResolutionStatus; st != nil {
		if p.Status, err = apiStatus("resolution_status", *st); err != nil {
			return nil, err
		}
	}
	es, err := s.eng.ListDLQ(ctx, p)
	if err != nil {
		return nil, err
	}
	out := gen.ListDlqEntries200JSONResponse{}
	for _, e := range es {
		out = append(out, dlqEntry(e))
	}
	return out, nil
}

// GetDlqEntry answers the most recent DLQ entry of a task.
func (s *Server) GetDlqEntry(ctx context.Context, req gen.GetDlqEntryRequestObject) (gen.GetDlqEntryResponseObject, error) {
	e, err := s.eng.TaskDLQEntry(ctx, req.TaskUuid)
	if err != nil {
		return nil, err
	}
	return gen.GetDlqEntry200JSONResponse(dlqEntry(e)), nil
}

// UpdateDlqInvestigation records what was done about an investigation.
func (s *Server) UpdateDlqInvestigation(ctx context.Context, req gen.UpdateDlqInvestigationRequestObject) (gen.UpdateDlqInvestigationResponseObject, error) {
	b := req.Body
	if b == nil {
		return nil, badf("no request body: send an UpdateInvestigationRequest JSON object (resolution_status, resolution_notes, resolved_by, metadata)")
	}
	p := tasker.DLQUpdateParams{Notes: b.ResolutionNotes, ResolvedBy: b.ResolvedBy}
	if b.ResolutionStatus != nil {
		st, err := apiStatus("resolution_status", *b.ResolutionStatus)
		if err != nil {
			return nil, err
		}
		p.Status = &st
	}
	if b.Metadata != nil {
		raw, err := json.Marshal(b.Metadata)
		if err != nil {
			return nil, badf("metadata: %v", err)
		}
		p.Metadata = raw
	}
	e, err := s.eng.UpdateDLQEntry(ctx, req.DlqEntryUuid, p)
	if err != nil {
		return nil, err
	}
	return gen.UpdateDlqInvestigation200JSONResponse{DlqEntryUuid: e.ID, Success: true,
		Message: fmt.Sprintf("dlq entry %s of task %s is %s", e.ID, e.TaskID, e.ResolutionStatus)}, nil
}

// GetDlqStats counts the entries by reason.
func (s *Server) GetDlqStats(ctx context.Context, _ gen.GetDlqStatsRequestObject) (gen.GetDlqStatsResponseObject, error) {
	st, err := s.eng.DLQStats(ctx)
	if err != nil {
		return nil, err
	}
	out := gen.GetDlqStats200JSONResponse{}
	for _, r := range st {
		d := gen.DlqStats{DlqReason: reasonToAPI[r.Reason], TotalEntries: r.Total, Pending: r.Pending,
			ManuallyResolved: r.ManuallyResolved, PermanentFailures: r.PermanentlyFailed, Cancelled: r.Cancelled,
			OldestEntry: timePtr(r.Oldest), NewestEntry: timePtr(r.Newest)}
		if r.ManuallyResolved+r.PermanentlyFailed+r.Cancelled > 0 {
			avg := r.AvgResolutionMinutes
			d.AvgResolutionTimeMinutes = &avg
		}
		out = append(out, d)
	}
	return out, nil
}

// GetInvestigationQueue answers the pending entries, most urgent first.
func (s *Server) GetInvestigationQueue(ctx context.Context, req gen.GetInvestigationQueueRequestObject) (gen.GetInvestigationQueueResponseObject, error) {
	limit, err := limitParam(req.Params.Limit)
	if err != nil {
		return nil, err
	}
	q, err := s.eng.DLQInvestigationQueue(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := gen.GetInvestigationQueue200JSONResponse{}
	for _, inv := range q {
		e := inv.Entry
		out = append(out, gen.DlqInvestigationQueueEntry{DlqEntryUuid: e.ID, TaskUuid: e.TaskID,
			OriginalState: string(e.OriginalState), DlqReason: reasonToAPI[e.Reason], DlqTimestamp: e.At.UTC(),
			MinutesInDlq: inv.MinutesInDLQ, PriorityScore: inv.PriorityScore})
	}
	return out, nil
}

// GetStalenessMonitoring answers the tasks that can be stuck, stale first.
func (s *Server) GetStalenessMonitoring(ctx context.Context, req gen.GetStalenessMonitoringRequestObject) (gen.GetStalenessMonitoringResponseObject, error) {
	limit, err := limitParam(req.Params.Limit)
	if err != nil {
		return nil, err
	}
	st, err := s.eng.Staleness(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := gen.GetStalenessMonitoring200JSONResponse{}
	for _, t := range st {
		ns, name := t.Task.Namespace, t.Task.Name
		out = append(out, gen.StalenessMonitoring{TaskUuid: t.Task.ID, NamespaceName: &ns, TaskName: &name,
			CurrentState: string(t.Task.State), HealthStatus: gen.StalenessHealthStatus(t.Health),
			TimeInStateMinutes: int32(t.TimeInState.Minutes()), TaskAgeMinutes: int32(t.TaskAge.Minutes()),
			StalenessThresholdMinutes: int32(t.Threshold.Minutes()), Priority: int32(t.Task.Request.Priority)})
	}
	return out, nil
}
