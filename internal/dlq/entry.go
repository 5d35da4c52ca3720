// Package dlq records the investigations of tasks an operator must look at
// (the DLQ of tasks, tasker-core's tasks_dlq) and runs the staleness
// detector that finds stuck tasks. It never requeues anything: operators act
// through the step actions (reset, resolve, complete) and record what they
// did on the entry.
package dlq

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// snapshotStep is a step as a DLQ entry's snapshot shows it.
type snapshotStep struct {
	ID          uuid.UUID               `json:"step_uuid"`
	Name        string                  `json:"name"`
	Handler     string                  `json:"handler"`
	State       taskertype.StepState    `json:"current_state"`
	Attempts    int                     `json:"attempts"`
	MaxAttempts int                     `json:"max_attempts"`
	Retryable   bool                    `json:"retryable"`
	NextRetryAt *time.Time              `json:"next_retry_at,omitempty"`
	Failure     *taskertype.StepFailure `json:"last_failure,omitempty"`
	UpdatedAt   time.Time               `json:"updated_at"`
}

// Snapshot returns the task snapshot of an entry made at at: the task
// (without its context, which may be large: the task still holds it) and
// its steps, with extra merged at the top level. Its keys follow
// tasker-core's (task_uuid, namespace, task_name, current_state,
// snapshot_timestamp, task_details) so that the investigation queue reads
// them the same way.
func Snapshot(task *taskertype.Task, steps []*taskertype.Step, at time.Time, extra map[string]any) json.RawMessage {
	m := map[string]any{
		"task_uuid":          task.ID,
		"namespace":          task.Namespace,
		"task_name":          task.Name,
		"task_version":       task.Version,
		"current_state":      task.State,
		"snapshot_timestamp": at,
		"task_details": map[string]any{
			"created_at":       task.CreatedAt,
			"state_entered_at": task.UpdatedAt,
			"revision":         task.Revision,
		},
	}
	ss := make([]snapshotStep, 0, len(steps))
	for _, s := range steps {
		st := snapshotStep{ID: s.ID, Name: s.Name, Handler: s.Handler, State: s.State, Attempts: s.Attempts,
			MaxAttempts: s.Retry.MaxAttempts, Retryable: s.Retry.Retryable, Failure: s.Failure, UpdatedAt: s.UpdatedAt}
		if !s.NextRetryAt.IsZero() {
			t := s.NextRetryAt
			st.NextRetryAt = &t
		}
		ss = append(ss, st)
	}
	m["steps"] = ss
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil { // only plain values above: cannot happen
		return json.RawMessage(`{}`)
	}
	return b
}

func object(m map[string]any) json.RawMessage {
	b, err := json.Marshal(m)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return b
}

// Exhausted returns the steps in error that used every attempt their retry
// policy allows on a failure that was itself retryable: retries ran out,
// the failure was not declared permanent.
func Exhausted(steps []*taskertype.Step) []*taskertype.Step {
	var out []*taskertype.Step
	for _, s := range steps {
		if s.State == taskertype.StepError && s.Retry.Retryable && s.Failure != nil && s.Failure.Retryable &&
			s.Attempts >= s.Retry.MaxAttempts {
			out = append(out, s)
		}
	}
	return out
}

// RecordMaxRetries records a max_retries_exceeded entry for a task that has
// just given up (blocked_by_failures → error) in tx, when a step of it ran
// out of attempts. task is the task as it is after the transition (in
// error), from blocked_by_failures. It reads the task's steps through tx
// (rows the transaction holds already). It returns whether an entry was
// made (not when the task has a pending one already).
func RecordMaxRetries(ctx context.Context, tx store.Tx, task *taskertype.Task, at time.Time) (bool, error) {
	steps, err := tx.StepList(ctx, task.ID)
	if err != nil {
		return false, fmt.Errorf("dlq: steps of task %s: %w", task.ID, err)
	}
	out := Exhausted(steps)
	if len(out) == 0 {
		return false, nil
	}
	names := make([]string, len(out))
	for i, s := range out {
		names[i] = s.Name
	}
	id, err := uuid.NewV7()
	if err != nil {
		return false, fmt.Errorf("dlq: entry id: %w", err)
	}
	created, err := tx.DLQEntryCreate(ctx, &store.DLQEntryCreateParams{Entry: &taskertype.DLQEntry{
		ID: id, TaskID: task.ID, OriginalState: taskertype.TaskBlockedByFailures, Reason: taskertype.DLQMaxRetriesExceeded, At: at,
		TaskSnapshot: Snapshot(task, steps, at, nil),
		Metadata: object(map[string]any{
			"detection_method": "retries_exhausted", "steps": names,
			"attempts": out[0].Attempts, "max_attempts": out[0].Retry.MaxAttempts,
			"last_error": out[0].Failure.Message,
		}),
	}})
	if err != nil {
		return false, fmt.Errorf("dlq: task %s: %w", task.ID, err)
	}
	return created, nil
}
