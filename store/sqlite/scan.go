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
		corr, parent     sql.NullString
		tags             []byte
		hash, key        sql.NullString
	)
	rq := &t.Request
	if err := r.Scan(&t.ID, &t.Namespace, &t.Name, &t.Version, &t.State, &t.Revision, (*[]byte)(&t.Context),
		&created, &updated, &finished,
		&rq.Priority, &corr, &parent, &rq.Initiator, &rq.SourceSystem, &rq.Reason, &tags, &hash, &key); err != nil {
		return nil, err
	}
	t.CreatedAt = sqlitedb.Time(created)
	t.UpdatedAt = sqlitedb.Time(updated)
	t.FinishedAt = sqlitedb.NullTime(finished)
	var err error
	if rq.CorrelationID, err = nullUUID(corr); err != nil {
		return nil, fmt.Errorf("task %s: correlation_id: %w", t.ID, err)
	}
	if rq.ParentCorrelationID, err = nullUUID(parent); err != nil {
		return nil, fmt.Errorf("task %s: parent_correlation_id: %w", t.ID, err)
	}
	if len(tags) > 0 && !bytes.Equal(tags, []byte("[]")) {
		if err := json.Unmarshal(tags, &rq.Tags); err != nil {
			return nil, fmt.Errorf("task %s: tags: %w", t.ID, err)
		}
	}
	rq.IdentityHash, rq.IdempotencyKey = hash.String, key.String
	return &t, nil
}

// nullUUID reads a UUID text that may be NULL (uuid.Nil).
func nullUUID(s sql.NullString) (uuid.UUID, error) {
	if !s.Valid || s.String == "" {
		return uuid.Nil, nil
	}
	return uuid.Parse(s.String)
}

// requestArgs are the values of a task's request columns, in the order of
// taskColumns.
func requestArgs(rq *taskertype.TaskRequest) ([]any, error) {
	tags := []byte("[]")
	if len(rq.Tags) > 0 {
		b, err := json.Marshal(rq.Tags)
		if err != nil {
			return nil, err
		}
		tags = b
	}
	return []any{rq.Priority, nullText(uuidText(rq.CorrelationID)), nullText(uuidText(rq.ParentCorrelationID)),
		rq.Initiator, rq.SourceSystem, rq.Reason, tags, nullText(rq.IdentityHash), nullText(rq.IdempotencyKey)}, nil
}

func uuidText(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}

func nullText(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

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
