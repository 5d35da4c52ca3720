package storetest

import (
	"math"
	"testing"
	"time"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// runStep runs a step once: started at start, finished ok after d.
func (e *env) runStep(t *testing.T, p *store.TaskCreateParams, name string, d time.Duration, ok bool) {
	t.Helper()
	var step *taskertype.Step
	for _, s := range p.Steps {
		if s.Name == name {
			step = s
		}
	}
	e.moveStep(t, step.ID, taskertype.StepEventEnqueue, nil)
	start := e.clock.Now()
	e.moveStep(t, step.ID, taskertype.StepEventStart, func(s *taskertype.Step) { s.Attempts, s.StartedAt = 1, start })
	e.clock.Advance(d)
	if ok {
		e.moveStep(t, step.ID, taskertype.StepEventSucceed, func(s *taskertype.Step) { s.FinishedAt = e.clock.Now() })
		e.moveStep(t, step.ID, taskertype.StepEventComplete, nil)
		return
	}
	e.moveStep(t, step.ID, taskertype.StepEventFail, func(s *taskertype.Step) {
		s.FinishedAt, s.Failure = e.clock.Now(), &taskertype.StepFailure{Kind: taskertype.FailureHandler, Message: "no"}
	})
	e.moveStep(t, step.ID, taskertype.StepEventFailPermanently, nil)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func testAnalytics(t *testing.T, e *env) {
	ctx := t.Context()
	// Task 1: created at Start, its step a runs 2s, complete at +10s.
	done := diamond(t, e)
	e.create(t, done)
	e.runStep(t, done, "a", 2*time.Second, true)
	e.clock.Set(Start.Add(10 * time.Second))
	e.moveTask(t, done.Task.ID, e.moveTask(t, done.Task.ID, taskertype.TaskPending, taskertype.TaskEventStart), taskertype.TaskEventAllStepsComplete)
	// Task 2: created at +20s, its step a fails for good after 4s, the task
	// is in error at +30s.
	e.clock.Set(Start.Add(20 * time.Second))
	failed := diamond(t, e)
	e.create(t, failed)
	e.runStep(t, failed, "a", 4*time.Second, false)
	lastStep := e.clock.Now()
	e.clock.Set(Start.Add(30 * time.Second))
	st := e.moveTask(t, failed.Task.ID, taskertype.TaskPending, taskertype.TaskEventStart)
	st = e.moveTask(t, failed.Task.ID, st, taskertype.TaskEventReadyStepsFound)
	e.moveTask(t, failed.Task.ID, st, taskertype.TaskEventEnqueueFailed)
	// Task 3: created at +40s, untouched.
	e.clock.Set(Start.Add(40 * time.Second))
	e.create(t, diamond(t, e))

	perf, err := e.s.PerformanceStats(ctx, &store.PerformanceParams{Since: Start})
	if err != nil {
		t.Fatal(err)
	}
	want := store.Performance{Tasks: 3, Unfinished: 1, Complete: 1, Error: 1, TaskSeconds: 10, Steps: 2, StepSeconds: 3}
	if perf.Tasks != want.Tasks || perf.Unfinished != want.Unfinished || perf.Complete != want.Complete || perf.Error != want.Error ||
		!near(perf.TaskSeconds, want.TaskSeconds) || perf.Steps != want.Steps || !near(perf.StepSeconds, want.StepSeconds) {
		t.Errorf("performance since the start: %+v, want %+v", *perf, want)
	}
	perf, err = e.s.PerformanceStats(ctx, &store.PerformanceParams{Since: Start.Add(15 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if perf.Tasks != 2 || perf.Complete != 0 || perf.Error != 1 || perf.TaskSeconds != 0 || perf.Steps != 1 || !near(perf.StepSeconds, 4) {
		t.Errorf("performance since +15s: %+v, want the last two tasks and the failed step", *perf)
	}
	perf, err = e.s.PerformanceStats(ctx, &store.PerformanceParams{Since: Start.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if *perf != (store.Performance{}) {
		t.Errorf("performance of an empty window: %+v, want zeros", *perf)
	}

	steps, err := e.s.SlowSteps(ctx, &store.SlowParams{Limit: 10, MinExecutions: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 1 {
		t.Fatalf("slow steps: %d rows, want 1 (step a of shop/order 1.2.0)", len(steps))
	}
	s := steps[0]
	if s.Namespace != "shop" || s.Task != "order" || s.Version != "1.2.0" || s.Step != "a" || !near(s.AvgSeconds, 3) ||
		!near(s.MaxSeconds, 4) || s.Executions != 2 || s.Errors != 1 || !s.LastFinished.Equal(lastStep) {
		t.Errorf("slow step: %+v, want a: avg 3s, max 4s, 2 runs, 1 error, last at %v", *s, lastStep)
	}
	if steps, err = e.s.SlowSteps(ctx, &store.SlowParams{Limit: 10, MinExecutions: 3}); err != nil || len(steps) != 0 {
		t.Errorf("slow steps of at least 3 runs: %v, %v; want none", steps, err)
	}

	tasks, err := e.s.SlowTasks(ctx, &store.SlowParams{Limit: 10, MinExecutions: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 {
		t.Fatalf("slow tasks: %d rows, want 1", len(tasks))
	}
	k := tasks[0]
	if k.Namespace != "shop" || k.Task != "order" || k.Version != "1.2.0" || !near(k.AvgSeconds, 10) || !near(k.MaxSeconds, 10) ||
		!near(k.AvgSteps, 4) || k.Executions != 2 || k.Errors != 1 || !k.LastFinished.Equal(Start.Add(30*time.Second)) {
		t.Errorf("slow task: %+v, want avg and max 10s, 4 steps, 2 finished, 1 error, last at +30s", *k)
	}
	if tasks, err = e.s.SlowTasks(ctx, &store.SlowParams{Limit: 0, MinExecutions: 1}); err != nil || len(tasks) != 0 {
		t.Errorf("slow tasks with limit 0: %v, %v; want none", tasks, err)
	}

	counts, err := e.s.StateCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Tasks["complete"] != 1 || counts.Tasks["error"] != 1 || counts.Tasks["pending"] != 1 || len(counts.Tasks) != 3 {
		t.Errorf("task counts: %v", counts.Tasks)
	}
	if counts.Steps["complete"] != 1 || counts.Steps["error"] != 1 || counts.Steps["pending"] != 10 || len(counts.Steps) != 3 {
		t.Errorf("step counts: %v", counts.Steps)
	}
}
