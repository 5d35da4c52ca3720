package postgres

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

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
		sc taskScanner
		t  taskertype.Task
	)
	if err := sc.scan(row, &t, extra...); err != nil {
		return nil, err
	}
	return &t, nil
}

// scanStep reads a row of stepCols, and then extra, if any.
func scanStep(row pgx.Row, extra ...any) (*taskertype.Step, error) {
	var (
		sc stepScanner
		s  taskertype.Step
	)
	if err := sc.scan(row, &s, extra...); err != nil {
		return nil, err
	}
	return &s, nil
}

// taskScanner reads rows of taskCols into tasks; one serves every row of
// a result, so that its destinations are made once, not per row (the
// nullable time is read as a pgtype.Timestamptz, which pgx fills without
// allocating, where a **time.Time costs one per row).
type taskScanner struct {
	finished pgtype.Timestamptz
	priority int32
	state    string
	cols     [4]textCol // namespace, name, version, state
	dest     []any
}

// texts gives a result's text column its strings, a value one of the
// column's last 8 distinct values already taking the string it took then:
// the rows of a batch repeat their namespace, template, state, handler and
// backoff (a task's steps have a name and a handler each, so a column
// keeps its own), and pgx would allocate each anew.
type texts struct {
	recent [8]string
	next   int
}

func (c *texts) of(b []byte) string {
	for _, s := range c.recent {
		if s == string(b) {
			return s
		}
	}
	s := string(b)
	c.recent[c.next] = s
	c.next = (c.next + 1) % len(c.recent)
	return s
}

// textCol reads a text column into *dst through its texts (a
// pgtype.BytesScanner: pgx hands it the column's bytes, valid during the
// call).
type textCol struct {
	dst   *string
	texts texts
}

func (c *textCol) ScanBytes(b []byte) error {
	if b == nil {
		return errors.New("cannot scan NULL into a text column") // as pgx for a *string
	}
	*c.dst = c.texts.of(b)
	return nil
}

// bind points the columns at dsts, keeping what each has seen.
func bind(cols []textCol, dsts ...*string) {
	for i, d := range dsts {
		cols[i].dst = d
	}
}

// scan reads row into t, which it overwrites, and then extra, if any.
func (sc *taskScanner) scan(row pgx.Row, t *taskertype.Task, extra ...any) error {
	*t = taskertype.Task{}
	bind(sc.cols[:], &t.Namespace, &t.Name, &t.Version, &sc.state)
	sc.dest = append(sc.dest[:0], &t.ID, &sc.cols[0], &sc.cols[1], &sc.cols[2], &sc.cols[3], &t.Revision, &t.CreatedAt, &t.UpdatedAt,
		&sc.finished, &sc.priority)
	sc.dest = append(sc.dest, extra...)
	if err := row.Scan(sc.dest...); err != nil {
		return err
	}
	t.State = taskertype.TaskState(sc.state)
	var err error
	if t.FinishedAt, err = timestamptzOf(sc.finished); err != nil {
		return fmt.Errorf("task %s: finished_at: %w", t.ID, err)
	}
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	t.Request.Priority = int(sc.priority)
	return nil
}

// stepScanner reads rows of stepCols into steps, as taskScanner does tasks.
type stepScanner struct {
	state, backoff               string
	cols                         [4]textCol // name, handler, state, backoff
	failure                      []byte
	base, cap, timeout           int64
	nextRetry, started, finished pgtype.Timestamptz
	dest                         []any
}

// scan reads row into s, which it overwrites, and then extra, if any.
func (sc *stepScanner) scan(row pgx.Row, s *taskertype.Step, extra ...any) error {
	*s = taskertype.Step{}
	sc.failure = nil
	bind(sc.cols[:], &s.Name, &s.Handler, &sc.state, &sc.backoff)
	sc.dest = append(sc.dest[:0], &s.ID, &s.TaskID, &sc.cols[0], &sc.cols[1], &s.Position, &s.DependsOn, &sc.cols[2], &s.Attempts,
		&s.Retry.Retryable, &s.Retry.MaxAttempts, &sc.cols[3], &sc.base, &sc.cap, &s.Retry.Jitter, &sc.timeout,
		&sc.nextRetry, (*[]byte)(&s.Result), &sc.failure, &s.CreatedAt, &s.UpdatedAt, &sc.started, &sc.finished, &s.AttemptID)
	sc.dest = append(sc.dest, extra...)
	if err := row.Scan(sc.dest...); err != nil {
		return err
	}
	s.State, s.Retry.Backoff = taskertype.StepState(sc.state), taskertype.Backoff(sc.backoff)
	s.Retry.Base = time.Duration(sc.base) * time.Microsecond
	s.Retry.Cap = time.Duration(sc.cap) * time.Microsecond
	s.Timeout = time.Duration(sc.timeout) * time.Microsecond
	if sc.failure != nil {
		s.Failure = new(taskertype.StepFailure)
		if err := json.Unmarshal(sc.failure, s.Failure); err != nil {
			return fmt.Errorf("step %s: failure: %w", s.ID, err)
		}
	}
	for _, c := range []struct {
		dst  *time.Time
		src  pgtype.Timestamptz
		name string
	}{{&s.NextRetryAt, sc.nextRetry, "next_retry_at"}, {&s.StartedAt, sc.started, "started_at"}, {&s.FinishedAt, sc.finished, "finished_at"}} {
		var err error
		if *c.dst, err = timestamptzOf(c.src); err != nil {
			return fmt.Errorf("step %s: %s: %w", s.ID, c.name, err)
		}
	}
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	if len(s.DependsOn) == 0 {
		s.DependsOn = nil
	}
	sortIDs(s.DependsOn)
	return nil
}

// timeOf is the UTC time of a nullable column; NULL is the zero time.
func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// timestamptzOf is timeOf for a column read as a pgtype.Timestamptz; an
// infinite time is an error, as it was read into a *time.Time.
func timestamptzOf(t pgtype.Timestamptz) (time.Time, error) {
	switch {
	case !t.Valid:
		return time.Time{}, nil
	case t.InfinityModifier != pgtype.Finite:
		return time.Time{}, fmt.Errorf("cannot read %v into a time", t.InfinityModifier)
	}
	return t.Time.UTC(), nil
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// nullTimeIn is nullTime with t kept in *at, so that a batch's times take
// one allocation, not one each.
func nullTimeIn(at *time.Time, t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	*at = t
	return at
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
