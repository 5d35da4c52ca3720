package sqlite

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/taskertype"
)

type scanner interface {
	Scan(dest ...any) error
}

// scanTask reads a row of taskColumns.
func scanTask(r scanner) (*taskertype.Task, error) {
	var (
		t                taskertype.Task
		created, updated int64
		finished         sql.NullInt64
	)
	if err := r.Scan(&t.ID, &t.Namespace, &t.Name, &t.Version, &t.State, &t.Revision, (*[]byte)(&t.Context),
		&created, &updated, &finished); err != nil {
		return nil, err
	}
	t.CreatedAt = sqlitedb.Time(created)
	t.UpdatedAt = sqlitedb.Time(updated)
	t.FinishedAt = sqlitedb.NullTime(finished)
	return &t, nil
}

// scanStep reads a row of stepColumns, followed by the step's comma-separated
// dependencies into deps unless deps is nil; DependsOn is left empty.
func scanStep(r scanner, deps *sql.NullString) (*taskertype.Step, error) {
	var (
		s                            taskertype.Step
		failure                      []byte
		base, cap                    int64
		timeout, created, updated    int64
		nextRetry, started, finished sql.NullInt64
	)
	dest := []any{&s.ID, &s.TaskID, &s.Name, &s.Handler, &s.Position, &s.State, &s.Attempts,
		&s.Retry.Retryable, &s.Retry.MaxAttempts, &s.Retry.Backoff, &base, &cap, &s.Retry.Jitter, &timeout,
		&nextRetry, (*[]byte)(&s.Result), &failure, &created, &updated, &started, &finished, &s.AttemptID}
	if deps != nil {
		dest = append(dest, deps)
	}
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	s.Retry.Base = time.Duration(base) * time.Microsecond
	s.Retry.Cap = time.Duration(cap) * time.Microsecond
	if failure != nil {
		s.Failure = new(taskertype.StepFailure)
		if err := json.Unmarshal(failure, s.Failure); err != nil {
			return nil, fmt.Errorf("step %s: failure: %w", s.ID, err)
		}
	}
	s.Timeout = time.Duration(timeout) * time.Microsecond
	s.NextRetryAt = sqlitedb.NullTime(nextRetry)
	s.CreatedAt = sqlitedb.Time(created)
	s.UpdatedAt = sqlitedb.Time(updated)
	s.StartedAt = sqlitedb.NullTime(started)
	s.FinishedAt = sqlitedb.NullTime(finished)
	return &s, nil
}

func sortIDs(ids []uuid.UUID) {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
}

// nullBytes stores an empty JSON value as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}
