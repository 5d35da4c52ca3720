package api

import (
	"context"

	"github.com/tasker-go/tasker/internal/api/gen"
)

// The routes of tasker-core's spec this server does not serve yet answer
// 501 (errNotImplemented) with an ApiError saying so; docs/api.md lists them.

func (s *Server) GetBottlenecks(context.Context, gen.GetBottlenecksRequestObject) (gen.GetBottlenecksResponseObject, error) {
	return nil, errNotImplemented
}

func (s *Server) GetPerformanceMetrics(context.Context, gen.GetPerformanceMetricsRequestObject) (gen.GetPerformanceMetricsResponseObject, error) {
	return nil, errNotImplemented
}
