package api

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tasker-go/tasker/internal/api/gen"
	"github.com/tasker-go/tasker/internal/resilience"
)

func (s *Server) stamp() string { return s.clock.Now().UTC().Format(time.RFC3339Nano) }

// BasicHealth answers while the process serves.
func (s *Server) BasicHealth(context.Context, gen.BasicHealthRequestObject) (gen.BasicHealthResponseObject, error) {
	return gen.BasicHealth200JSONResponse{Status: "healthy", Timestamp: s.stamp()}, nil
}

// LivenessProbe answers while the process serves.
func (s *Server) LivenessProbe(context.Context, gen.LivenessProbeRequestObject) (gen.LivenessProbeResponseObject, error) {
	return gen.LivenessProbe200JSONResponse{Status: "alive", Timestamp: s.stamp()}, nil
}

// HealthLivenessProbe is LivenessProbe under /health.
func (s *Server) HealthLivenessProbe(context.Context, gen.HealthLivenessProbeRequestObject) (gen.HealthLivenessProbeResponseObject, error) {
	return gen.HealthLivenessProbe200JSONResponse{Status: "alive", Timestamp: s.stamp()}, nil
}

// probe is the outcome of the checks behind readiness.
type probe struct {
	db, breakers gen.HealthCheck
	breakerState string
	ready        bool
}

// check reads the database once (a one-task list) and the breakers' states.
func (s *Server) check(ctx context.Context) probe {
	var p probe
	start := s.clock.Now()
	_, err := s.eng.Tasks(ctx, 1)
	p.db = gen.HealthCheck{Status: "healthy", DurationMs: s.clock.Now().Sub(start).Milliseconds()}
	if err != nil {
		msg := err.Error()
		p.db.Status, p.db.Message = "unhealthy", &msg
	}
	p.breakers = gen.HealthCheck{Status: "healthy"}
	p.breakerState = "closed"
	for _, b := range s.eng.Stats().Breakers {
		if b.State != resilience.StateClosed {
			msg := fmt.Sprintf("breaker %s is %s after %d consecutive failures", b.Name, b.State, b.ConsecutiveFailures)
			p.breakers.Status, p.breakers.Message = "degraded", &msg
			p.breakerState = string(b.State)
			if b.State == resilience.StateOpen {
				p.breakers.Status = "unhealthy"
			}
		}
	}
	p.ready = p.db.Status == "healthy" && p.breakers.Status != "unhealthy"
	return p
}

func (s *Server) info(p probe) gen.HealthInfo {
	state := "normal"
	if !p.ready {
		state = "degraded"
	}
	return gen.HealthInfo{CircuitBreakerState: p.breakerState, Environment: s.environment(), OperationalState: state, Version: s.version}
}

func (s *Server) readiness(ctx context.Context) (gen.ReadinessResponse, bool) {
	p := s.check(ctx)
	status := "ready"
	if !p.ready {
		status = "not_ready"
	}
	return gen.ReadinessResponse{Status: status, Timestamp: s.stamp(), Info: s.info(p), Checks: gen.ReadinessChecks{
		OrchestrationDatabase: p.db, WebDatabase: p.db, CircuitBreaker: p.breakers,
		OrchestrationSystem: gen.HealthCheck{Status: "unknown"}, CommandProcessor: gen.HealthCheck{Status: "unknown"},
	}}, p.ready
}

// ReadinessProbe answers 200 while the database answers and no breaker is
// open, 503 otherwise.
func (s *Server) ReadinessProbe(ctx context.Context, _ gen.ReadinessProbeRequestObject) (gen.ReadinessProbeResponseObject, error) {
	r, ok := s.readiness(ctx)
	if !ok {
		return nil, &unavailable{r}
	}
	return gen.ReadinessProbe200JSONResponse(r), nil
}

// HealthReadinessProbe is ReadinessProbe under /health.
func (s *Server) HealthReadinessProbe(ctx context.Context, _ gen.HealthReadinessProbeRequestObject) (gen.HealthReadinessProbeResponseObject, error) {
	r, ok := s.readiness(ctx)
	if !ok {
		return nil, &unavailable{r}
	}
	return gen.HealthReadinessProbe200JSONResponse(r), nil
}

// unavailable is a failed readiness check, answered 503 ServiceUnavailable.
type unavailable struct{ r gen.ReadinessResponse }

func (u *unavailable) Error() string { return "not ready: " + u.r.Status }

// DetailedHealth reports the checks with the dispatch channel's
// saturation, the database pools' utilization and the queues' depths.
func (s *Server) DetailedHealth(ctx context.Context, _ gen.DetailedHealthRequestObject) (gen.DetailedHealthResponseObject, error) {
	p := s.check(ctx)
	st := s.eng.Stats()
	status := "healthy"
	if !p.ready {
		status = "unhealthy"
	}
	pull := st.Pull
	sat := gen.HealthCheck{Status: "healthy"}
	msg := fmt.Sprintf("pull dispatch channel: %d of %d in flight (%d queued, %d pending), %d starving", pull.InFlight, pull.Capacity, pull.Queued, pull.Pending, pull.Starving)
	sat.Message = &msg
	if pull.Capacity > 0 && pull.InFlight*10 >= pull.Capacity*9 {
		sat.Status = "degraded"
	}
	info := s.info(p)
	pools := gen.HealthCheck{Status: "healthy"}
	var parts []string
	for _, pl := range st.Pools {
		parts = append(parts, fmt.Sprintf("%s: %d of %d in use, %d idle, %d waits", pl.Name, pl.InUse, pl.MaxConns, pl.Idle, pl.Waits))
		if pl.MaxConns > 0 && pl.InUse*10 >= pl.MaxConns*9 && pl.MaxConns > 1 {
			pools.Status = "degraded"
		}
		info.WebDatabasePoolSize += int32(pl.MaxConns)
	}
	info.OrchestrationDatabasePoolSize = info.WebDatabasePoolSize
	if len(parts) == 0 {
		pools.Status = "unknown"
		parts = append(parts, "the engine was given its store: its pools are not the engine's to read")
	}
	pm := strings.Join(parts, "; ")
	pools.Message = &pm
	depth := s.queueDepthCheck(ctx)
	notHere := "no separate orchestration system or command processor in this server: the engine runs in-process (see orchestration_database)"
	unknown := gen.HealthCheck{Status: "unknown", Message: &notHere}
	return gen.DetailedHealth200JSONResponse{Status: status, Timestamp: s.stamp(), Info: info, Checks: gen.DetailedHealthChecks{
		OrchestrationDatabase: p.db, WebDatabase: p.db, CircuitBreaker: p.breakers,
		OrchestrationSystem: unknown, CommandProcessor: unknown,
		ChannelSaturation: sat, PoolUtilization: pools, QueueDepth: depth,
	}}, nil
}

// queueDepthCheck reads every queue's depth.
func (s *Server) queueDepthCheck(ctx context.Context) gen.HealthCheck {
	ctx, cancel := context.WithTimeout(ctx, s.qdepth)
	defer cancel()
	start := s.clock.Now()
	depths, err := s.eng.QueueDepths(ctx)
	c := gen.HealthCheck{Status: "healthy", DurationMs: max(0, s.clock.Now().Sub(start).Milliseconds())}
	if err != nil {
		msg := err.Error()
		c.Status, c.Message = "unhealthy", &msg
		return c
	}
	parts := make([]string, len(depths))
	for i, d := range depths {
		parts[i] = fmt.Sprintf("%s=%d", d.Queue, d.Depth)
	}
	msg := strings.Join(parts, ", ")
	c.Message = &msg
	return c
}
