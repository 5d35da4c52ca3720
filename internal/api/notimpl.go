package api

import (
	"context"

	"github.com/tasker-go/tasker/internal/api/gen"
)

// The routes of tasker-core's spec this server does not serve yet answer
// 501 (errNotImplemented) with an ApiError saying so; docs/api.md lists them.

func (s *Server) GetConfig(context.Context, gen.GetConfigRequestObject) (gen.GetConfigResponseObject, error) {
	return nil, errNotImplemented
}

func (s *Server) GetBottlenecks(context.Context, gen.GetBottlenecksRequestObject) (gen.GetBottlenecksResponseObject, error) {
	return nil, errNotImplemented
}

func (s *Server) GetPerformanceMetrics(context.Context, gen.GetPerformanceMetricsRequestObject) (gen.GetPerformanceMetricsResponseObject, error) {
	return nil, errNotImplemented
}

func (s *Server) ListDlqEntries(context.Context, gen.ListDlqEntriesRequestObject) (gen.ListDlqEntriesResponseObject, error) {
	return nil, errNotImplemented
}

func (s *Server) UpdateDlqInvestigation(context.Context, gen.UpdateDlqInvestigationRequestObject) (gen.UpdateDlqInvestigationResponseObject, error) {
	return nil, errNotImplemented
}

func (s *Server) GetInvestigationQueue(context.Context, gen.GetInvestigationQueueRequestObject) (gen.GetInvestigationQueueResponseObject, error) {
	return nil, errNotImplemented
}

func (s *Server) GetStalenessMonitoring(context.Context, gen.GetStalenessMonitoringRequestObject) (gen.GetStalenessMonitoringResponseObject, error) {
	return nil, errNotImplemented
}

func (s *Server) GetDlqStats(context.Context, gen.GetDlqStatsRequestObject) (gen.GetDlqStatsResponseObject, error) {
	return nil, errNotImplemented
}

func (s *Server) GetDlqEntry(context.Context, gen.GetDlqEntryRequestObject) (gen.GetDlqEntryResponseObject, error) {
	return nil, errNotImplemented
}

func (s *Server) ResolveStepManually(context.Context, gen.ResolveStepManuallyRequestObject) (gen.ResolveStepManuallyResponseObject, error) {
	return nil, errNotImplemented
}

func (s *Server) GetStepAudit(context.Context, gen.GetStepAuditRequestObject) (gen.GetStepAuditResponseObject, error) {
	return nil, errNotImplemented
}
