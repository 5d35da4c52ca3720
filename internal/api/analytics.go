package api

import (
	"context"
	"fmt"
	"time"

	"github.com/tasker-go/tasker/internal/api/gen"
)

// Analytics bounds.
const (
	maxAnalyticsHours = 24 * 366
	maxAnalyticsLimit = 1000
)

// GetPerformanceMetrics answers what the tasks created in the last hours
// became, computed by the database (store.Store.PerformanceStats). The
// health score is the share of the finished tasks (complete or error) that
// completed; 1 when none finished.
func (s *Server) GetPerformanceMetrics(ctx context.Context, req gen.GetPerformanceMetricsRequestObject) (gen.GetPerformanceMetricsResponseObject, error) {
	hours := int32(24)
	if h := req.Params.Hours; h != nil {
		hours = *h
	}
	if hours < 1 || hours > maxAnalyticsHours {
		return nil, badf("hours %d: give a number of hours from 1 to %d (default 24)", hours, maxAnalyticsHours)
	}
	now := s.clock.Now().UTC()
	since := now.Add(-time.Duration(hours) * time.Hour)
	p, err := s.eng.Performance(ctx, since)
	if err != nil {
		return nil, err
	}
	out := gen.GetPerformanceMetrics200JSONResponse{
		TotalTasks: p.Tasks, ActiveTasks: p.Unfinished, CompletedTasks: p.Complete, FailedTasks: p.Error,
		AverageTaskDurationSeconds: p.TaskSeconds, AverageStepDurationSeconds: p.StepSeconds,
		TasksPerHour: p.Tasks / int64(hours), StepsPerHour: p.Steps / int64(hours), SystemHealthScore: 1,
		AnalysisPeriodStart: since.Format(time.RFC3339Nano), CalculatedAt: now.Format(time.RFC3339Nano),
	}
	if p.Tasks > 0 {
		out.CompletionRate = float64(p.Complete) / float64(p.Tasks)
		out.ErrorRate = float64(p.Error) / float64(p.Tasks)
	}
	if f := p.Complete + p.Error; f > 0 {
		out.SystemHealthScore = float64(p.Complete) / float64(f)
	}
	return out, nil
}

// GetBottlenecks answers the slowest steps and template versions, the
// database pools' use and the counts of tasks and steps by state, with
// recommendations drawn from those figures only.
func (s *Server) GetBottlenecks(ctx context.Context, req gen.GetBottlenecksRequestObject) (gen.GetBottlenecksResponseObject, error) {
	limit, minRuns := int32(10), int32(5)
	if l := req.Params.Limit; l != nil {
		limit = *l
	}
	if m := req.Params.MinExecutions; m != nil {
		minRuns = *m
	}
	if limit < 1 || limit > maxAnalyticsLimit {
		return nil, badf("limit %d: give from 1 to %d (default 10)", limit, maxAnalyticsLimit)
	}
	if minRuns < 1 {
		return nil, badf("min_executions %d: give at least 1 (default 5)", minRuns)
	}
	steps, err := s.eng.SlowSteps(ctx, int(limit), int(minRuns))
	if err != nil {
		return nil, err
	}
	tasks, err := s.eng.SlowTasks(ctx, int(limit), int(minRuns))
	if err != nil {
		return nil, err
	}
	counts, err := s.eng.StateCounts(ctx)
	if err != nil {
		return nil, err
	}
	out := gen.GetBottlenecks200JSONResponse{SlowSteps: []gen.SlowStepInfo{}, SlowTasks: []gen.SlowTaskInfo{}, Recommendations: []string{}}
	for _, st := range steps {
		last := st.LastFinished.Format(time.RFC3339Nano)
		out.SlowSteps = append(out.SlowSteps, gen.SlowStepInfo{NamespaceName: st.Namespace, TaskName: st.Task, Version: st.Version,
			StepName: st.Step, AverageDurationSeconds: st.AvgSeconds, MaxDurationSeconds: st.MaxSeconds,
			ExecutionCount: st.Executions, ErrorCount: st.Errors, ErrorRate: float64(st.Errors) / float64(st.Executions),
			LastExecutedAt: &last})
	}
	for _, t := range tasks {
		last := t.LastFinished.Format(time.RFC3339Nano)
		out.SlowTasks = append(out.SlowTasks, gen.SlowTaskInfo{NamespaceName: t.Namespace, TaskName: t.Task, Version: t.Version,
			AverageDurationSeconds: t.AvgSeconds, MaxDurationSeconds: t.MaxSeconds, AverageStepCount: t.AvgSteps,
			ExecutionCount: t.Executions, ErrorCount: t.Errors, ErrorRate: float64(t.Errors) / float64(t.Executions),
			LastExecutedAt: &last})
	}
	var inUse, maxConns int
	for _, p := range s.eng.Stats().Pools {
		inUse += p.InUse
		maxConns += p.MaxConns
	}
	if maxConns > 0 {
		out.ResourceUtilization.DatabasePoolUtilization = float64(inUse) / float64(maxConns)
	}
	out.ResourceUtilization.SystemHealth = healthCounts(counts.Tasks, counts.Steps)
	out.Recommendations = recommendations(gen.BottleneckAnalysis(out))
	return out, nil
}

func healthCounts(tasks, steps map[string]int64) gen.SystemHealthCounts {
	var h gen.SystemHealthCounts
	for _, n := range tasks {
		h.TotalTasks += n
	}
	for _, n := range steps {
		h.TotalSteps += n
	}
	h.PendingTasks, h.InitializingTasks, h.EnqueuingStepsTasks = tasks["pending"], tasks["initializing"], tasks["enqueuing_steps"]
	h.StepsInProcessTasks, h.EvaluatingResultsTasks = tasks["steps_in_process"], tasks["evaluating_results"]
	h.WaitingForDependenciesTasks, h.WaitingForRetryTasks = tasks["waiting_for_dependencies"], tasks["waiting_for_retry"]
	h.BlockedByFailuresTasks, h.CompleteTasks, h.ErrorTasks = tasks["blocked_by_failures"], tasks["complete"], tasks["error"]
	h.CancelledTasks, h.ResolvedManuallyTasks = tasks["cancelled"], tasks["resolved_manually"]
	h.PendingSteps, h.EnqueuedSteps, h.InProgressSteps = steps["pending"], steps["enqueued"], steps["in_progress"]
	h.EnqueuedForOrchestrationSteps = steps["enqueued_for_orchestration"]
	h.EnqueuedAsErrorForOrchestrationSteps = steps["enqueued_as_error_for_orchestration"]
	h.WaitingForRetrySteps, h.CompleteSteps, h.ErrorSteps = steps["waiting_for_retry"], steps["complete"], steps["error"]
	h.CancelledSteps, h.ResolvedManuallySteps = steps["cancelled"], steps["resolved_manually"]
	return h
}

// recommendations says what the figures point at; nothing when nothing
// stands out.
func recommendations(b gen.BottleneckAnalysis) []string {
	out := []string{}
	if len(b.SlowSteps) > 0 {
		s := b.SlowSteps[0]
		out = append(out, fmt.Sprintf("step %s of %s/%s %s is the slowest: %.3fs on average, %.3fs at most, over %d runs",
			s.StepName, s.NamespaceName, s.TaskName, s.Version, s.AverageDurationSeconds, s.MaxDurationSeconds, s.ExecutionCount))
	}
	for _, s := range b.SlowSteps {
		if s.ErrorRate >= 0.1 {
			out = append(out, fmt.Sprintf("step %s of %s/%s %s ended in error in %d of its %d runs (%.0f%%): look at its handler's failures",
				s.StepName, s.NamespaceName, s.TaskName, s.Version, s.ErrorCount, s.ExecutionCount, 100*s.ErrorRate))
		}
	}
	if u := b.ResourceUtilization.DatabasePoolUtilization; u >= 0.8 {
		out = append(out, fmt.Sprintf("the database pools are %.0f%% in use: raise their size or lower the load", 100*u))
	}
	h := b.ResourceUtilization.SystemHealth
	if h.BlockedByFailuresTasks > 0 {
		out = append(out, fmt.Sprintf("%d tasks are blocked by failures: the DLQ and the step actions (PATCH .../workflow_steps/{step_uuid}) resolve them", h.BlockedByFailuresTasks))
	}
	if h.EnqueuedSteps > 0 && h.InProgressSteps == 0 {
		out = append(out, fmt.Sprintf("%d steps are enqueued and none in progress: are workers running for their namespaces?", h.EnqueuedSteps))
	}
	return out
}
