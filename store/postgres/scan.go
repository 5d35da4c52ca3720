package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/taskertype"
)

// The columns read, in the order scanTask and scanStep take them.
const (
	// taskCols end with the priority, which orders the claims of the task's
	// messages: orchestration needs it wherever it reads a task.
	taskCols = `id, namespace, name, version, state, revision, created_at, updated_at, finished_at, priority`
	stepCols = `id, task_id, name, handler, position, depends_on, state, attempts,
		retryable, max_attempts, backoff, backoff_base_us, backoff_cap_us, jitter, timeout_us,
		next_retry_at, result, failure, created_at, updated_at, started_at, finished_at, attempt_id`
	transitionCols = `id, task_id, step_id, from_state, to_state, event, at, processor`
	// requestCols are the rest of the task request's columns (migration 0005), read
	// after the context by scanTaskRequest: only TaskGet and TaskList need
	// them.
	requestCols = `correlation_id, parent_correlation_id, initiator, source_system, reason, tags,
		identity_hash, idempotency_key`
)

// scanTaskRequest reads a row of taskCols, the context and requestCols.
func scanTaskRequest(row pgx.Row) (*taskertype.Task, error) {
	var (
		t            taskertype.Task
		finished     *time.Time
		corr, parent *uuid.UUID
		hash, key    *string
		priority     int32
	)
	rq := &t.Request
	if err := row.Scan(&t.ID, &t.Namespace, &t.Name, &t.Version, &t.State, &t.Revision, &t.CreatedAt, &t.UpdatedAt, &finished, &priority,
		(*[]byte)(&t.Context), &corr, &parent, &rq.Initiator, &rq.SourceSystem, &rq.Reason, &rq.Tags,
		&hash, &key); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt, t.FinishedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC(), timeOf(finished)
	rq.Priority = int(priority)
	if corr != nil {
		rq.CorrelationID = *corr
	}
	if parent != nil {
		rq.ParentCorrelationID = *parent
	}
	if hash != nil {
		rq.IdentityHash = *hash
	}
	if key != nil {
		rq.IdempotencyKey = *key
	}
	if len(rq.Tags) == 0 {
		rq.Tags = nil
	}
	return &t, nil
}

func nullUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

func nullText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// textArray spells tags as a PostgreSQL array literal ({"a","b"}), so that
// the tags of several tasks travel in one text[] parameter.
func textArray(tags []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, t := range tags {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range t {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// scanTask reads a row of taskCols, and then extra, if any.
func scanTask(row pgx.Row, extra ...any) (*taskertype.Task, error) {
	var (
		t        taskertype.Task
		finished *time.Time
		priority int32
	)
	dest := append([]any{&t.ID, &t.Namespace, &t.Name, &t.Version, &t.State, &t.Revision, &t.CreatedAt, &t.UpdatedAt, &finished, &priority}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt, t.FinishedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC(), timeOf(finished)
	t.Request.Priority = int(priority)
	return &t, nil
}

// scanStep reads a row of stepCols, and then extra, if any.
func scanStep(row pgx.Row, extra ...any) (*taskertype.Step, error) {
	var (
		s                            taskertype.Step
		failure                      []byte
		base, cap, timeout           int64
		nextRetry, started, finished *time.Time
	)
	dest := append([]any{&s.ID, &s.TaskID, &s.Name, &s.Handler, &s.Position, &s.DependsOn, &s.State, &s.Attempts,
		&s.Retry.Retryable, &s.Retry.MaxAttempts, &s.Retry.Backoff, &base, &cap, &s.Retry.Jitter, &timeout,
		&nextRetry, (*[]byte)(&s.Result), &failure, &s.CreatedAt, &s.UpdatedAt, &started, &finished, &s.AttemptID}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	s.Retry.Base = time.Duration(base) * time.Microsecond
	s.Retry.Cap = time.Duration(cap) * time.Microsecond
	s.Timeout = time.Duration(timeout) * time.Microsecond
	if failure != nil {
		s.Failure = new(taskertype.StepFailure)
		if err := json.Unmarshal(failure, s.Failure); err != nil {
			return nil, fmt.Errorf("step %s: failure: %w", s.ID, err)
		}
	}
	s.NextRetryAt, s.StartedAt, s.FinishedAt = timeOf(nextRetry), timeOf(started), timeOf(finished)
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	if len(s.DependsOn) == 0 {
		s.DependsOn = nil
	}
	sortIDs(s.DependsOn)
	return &s, nil
}

// timeOf is the UTC time of a nullable column; NULL is the zero time.
func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// nullJSON stores an empty JSON value as NULL.
func nullJSON(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func failureJSON(s *taskertype.Step) ([]byte, error) {
	if s.Failure == nil {
		return nil, nil
	}
	return json.Marshal(s.Failure)
}

func sortIDs(ids []uuid.UUID) {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
}

// copyStep copies a step, its failure and its dependency list.
func copyStep(s *taskertype.Step, deps bool) *taskertype.Step {
	c := *s
	if s.Failure != nil {
		f := *s.Failure
		c.Failure = &f
	}
	c.DependsOn = nil
	if deps {
		c.DependsOn = slices.Clone(s.DependsOn)
	}
	return &c
}
