package store

import "time"

// The analytics reads (tasker-core's /v1/analytics routes), computed by the
// database from the tasks and steps it holds. A step keeps its last
// attempt's start and finish, so step run times are those of the last
// attempt of each step.

// PerformanceParams selects the tasks PerformanceStats covers.
type PerformanceParams struct {
	// Since keeps the tasks created at or after it, and the steps whose
	// last attempt finished at or after it.
	Since time.Time
}

// Performance is what the tasks created since a time became.
type Performance struct {
	// Tasks counts the tasks created; Unfinished, Complete and Error those
	// of them not in a terminal state, complete, and in error.
	Tasks, Unfinished, Complete, Error int64
	// TaskSeconds is the average time from creation to completion of the
	// Complete tasks; 0 without one.
	TaskSeconds float64
	// Steps counts the steps whose last attempt finished since; StepSeconds
	// is their average run time (finish minus start); 0 without one.
	Steps       int64
	StepSeconds float64
}

// SlowParams bounds the slowest lists.
type SlowParams struct {
	// Limit bounds the rows; MinExecutions leaves out the groups with
	// fewer runs.
	Limit, MinExecutions int
}

// SlowStep is one step of one template version, over the steps that ran
// (with a start and a finish), slowest average first.
type SlowStep struct {
	Namespace, Task, Version, Step string
	AvgSeconds, MaxSeconds         float64
	// Executions counts the steps that ran; Errors those of them in error.
	Executions, Errors int64
	LastFinished       time.Time
}

// SlowTask is one template version, over its finished tasks, slowest
// average first.
type SlowTask struct {
	Namespace, Task, Version string
	// AvgSeconds and MaxSeconds are of creation to finish.
	AvgSeconds, MaxSeconds float64
	// AvgSteps is the average number of steps of those tasks.
	AvgSteps float64
	// Executions counts the finished tasks; Errors those in error.
	Executions, Errors int64
	LastFinished       time.Time
}

// StateCounts counts every task and every step by state.
type StateCounts struct {
	Tasks, Steps map[string]int64
}
