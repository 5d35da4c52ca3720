package postgres

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-go/tasker/internal/jsonenc"
	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
)

// The statements of the buffered writes, and of the compare-and-set of a
// step the transaction does not hold.

// insertTasks inserts the tasks created in the transaction, as they are now.
func insertTasks(rows []*taskRow, inputs map[uuid.UUID]taskInputs) pgdb.Stmt {
	n := len(rows)
	var (
		ids                         = make([]uuid.UUID, n)
		namespaces, names, versions = make([]string, n), make([]string, n), make([]string, n)
		states                      = make([]string, n)
		revisions                   = make([]int64, n)
		ctxs                        = make([][]byte, n)
		created, updated            = make([]time.Time, n), make([]time.Time, n)
		finished                    = make([]*time.Time, n)
		// The request's columns (migration 0005).
		priorities          = make([]int32, n)
		corrs, parents      = make([]*uuid.UUID, n), make([]*uuid.UUID, n)
		initiators, sources = make([]string, n), make([]string, n)
		reasons             = make([]string, n)
		tags                = make([]string, n) // text[] literals: an array of arrays must be rectangular
		hashes, keys        = make([]*string, n), make([]*string, n)
	)
	for i, r := range rows {
		t := &r.task
		ids[i], namespaces[i], names[i], versions[i] = t.ID, t.Namespace, t.Name, t.Version
		states[i], revisions[i], ctxs[i] = string(t.State), t.Revision, inputs[t.ID].context
		created[i], updated[i], finished[i] = t.CreatedAt, t.UpdatedAt, nullTime(t.FinishedAt)
		rq := &t.Request
		priorities[i], corrs[i], parents[i] = int32(rq.Priority), nullUUID(rq.CorrelationID), nullUUID(rq.ParentCorrelationID)
		initiators[i], sources[i], reasons[i] = rq.Initiator, rq.SourceSystem, rq.Reason
		tags[i], hashes[i], keys[i] = textArray(rq.Tags), nullText(rq.IdentityHash), nullText(rq.IdempotencyKey)
	}
	return pgdb.Stmt{
		SQL: `INSERT INTO tasks (id, namespace, name, version, state, revision, context, created_at, updated_at, finished_at,
				priority, correlation_id, parent_correlation_id, initiator, source_system, reason, tags, identity_hash, idempotency_key)
			SELECT id, namespace, name, version, state, revision, context, created_at, updated_at, finished_at,
				priority, correlation_id, parent_correlation_id, initiator, source_system, reason, tags::text[], identity_hash, idempotency_key
			FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::json[],
				$8::timestamptz[], $9::timestamptz[], $10::timestamptz[],
				$11::int[], $12::uuid[], $13::uuid[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[])
				AS u(id, namespace, name, version, state, revision, context, created_at, updated_at, finished_at,
					priority, correlation_id, parent_correlation_id, initiator, source_system, reason, tags, identity_hash, idempotency_key)`,
		Args: []any{ids, namespaces, names, versions, states, revisions, ctxs, created, updated, finished,
			priorities, corrs, parents, initiators, sources, reasons, tags, hashes, keys},
		Err: func(err error) error {
			if pe := pgdb.PgError(err); pe != nil && pgdb.IsUniqueViolation(err) && pe.ConstraintName == "tasks_identity_hash" {
				return fmt.Errorf("task create: %s: %w", pe.Detail, store.ErrIdentityTaken)
			}
			if pgdb.IsUniqueViolation(err) {
				return fmt.Errorf("task create: %s: %w", pgdb.PgError(err).Detail, store.ErrTaskExists)
			}
			return fmt.Errorf("task create: %w", err)
		},
	}
}

// insertSteps inserts the steps created in the transaction, as they are now.
func insertSteps(rows []*stepRow) pgdb.Stmt {
	n := len(rows)
	var (
		ids, taskIDs, attemptIDs    = make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
		names, handlers             = make([]string, n), make([]string, n)
		positions, attempts, maxAtt = make([]int32, n), make([]int32, n), make([]int32, n)
		deps, states, backoffs      = make([]string, n), make([]string, n), make([]string, n)
		retryable                   = make([]bool, n)
		bases, caps, timeouts       = make([]int64, n), make([]int64, n), make([]int64, n)
		jitters                     = make([]float64, n)
		results, failures           = make([][]byte, n), make([][]byte, n)
		created, updated            = make([]time.Time, n), make([]time.Time, n)
		nextRetry, started, ended   = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
	)
	for i, r := range rows {
		s := &r.step
		ids[i], taskIDs[i], names[i], handlers[i], attemptIDs[i] = s.ID, s.TaskID, s.Name, s.Handler, s.AttemptID
		positions[i], attempts[i], maxAtt[i] = int32(s.Position), int32(s.Attempts), int32(s.Retry.MaxAttempts)
		d := make([]string, len(s.DependsOn))
		for j, id := range s.DependsOn {
			d[j] = id.String()
		}
		deps[i], states[i], backoffs[i] = strings.Join(d, ","), string(s.State), string(s.Retry.Backoff)
		retryable[i] = s.Retry.Retryable
		bases[i], caps[i], timeouts[i] = s.Retry.Base.Microseconds(), s.Retry.Cap.Microseconds(), s.Timeout.Microseconds()
		jitters[i] = s.Retry.Jitter
		results[i] = nullJSON(s.Result)
		failures[i], _ = failureJSON(s) // checked by TaskCreate and StepTransition
		created[i], updated[i] = s.CreatedAt, s.UpdatedAt
		nextRetry[i], started[i], ended[i] = nullTime(s.NextRetryAt), nullTime(s.StartedAt), nullTime(s.FinishedAt)
	}
	return pgdb.Stmt{
		SQL: `INSERT INTO steps (id, task_id, name, handler, position, depends_on, state, attempts,
				retryable, max_attempts, backoff, backoff_base_us, backoff_cap_us, jitter, timeout_us,
				next_retry_at, result, failure, created_at, updated_at, started_at, finished_at, attempt_id)
			SELECT id, task_id, name, handler, position, string_to_array(deps, ',')::uuid[], state, attempts,
				retryable, max_attempts, backoff, base, cap, jitter, timeout,
				next_retry_at, result, failure, created_at, updated_at, started_at, finished_at, attempt_id
			FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::integer[], $6::text[], $7::text[], $8::integer[],
				$9::boolean[], $10::integer[], $11::text[], $12::bigint[], $13::bigint[], $14::double precision[], $15::bigint[],
				$16::timestamptz[], $17::json[], $18::json[], $19::timestamptz[], $20::timestamptz[], $21::timestamptz[], $22::timestamptz[],
				$23::uuid[])
			AS u(id, task_id, name, handler, position, deps, state, attempts, retryable, max_attempts, backoff, base, cap, jitter, timeout,
				next_retry_at, result, failure, created_at, updated_at, started_at, finished_at, attempt_id)`,
		Args: []any{ids, taskIDs, names, handlers, positions, deps, states, attempts, retryable, maxAtt, backoffs,
			bases, caps, jitters, timeouts, nextRetry, results, failures, created, updated, started, ended, attemptIDs},
		Err: func(err error) error {
			if pgdb.IsUniqueViolation(err) {
				return fmt.Errorf("task create: a step ID is already taken (%s): %w", pgdb.PgError(err).Detail, store.ErrTaskExists)
			}
			return fmt.Errorf("task create: steps: %w", err)
		},
	}
}

// updateStep writes the mutable fields of a step this transaction holds.
func updateStep(s *taskertype.Step) pgdb.Stmt {
	failure, _ := failureJSON(s)
	id := s.ID
	return pgdb.Stmt{
		SQL: `UPDATE steps SET state = $2, attempts = $3, next_retry_at = $4, result = $5, failure = $6,
			started_at = $7, finished_at = $8, updated_at = $9, attempt_id = $10 WHERE id = $1`,
		Args: []any{s.ID, string(s.State), s.Attempts, nullTime(s.NextRetryAt), nullJSON(s.Result), failure,
			nullTime(s.StartedAt), nullTime(s.FinishedAt), s.UpdatedAt, s.AttemptID},
		Err: func(err error) error { return fmt.Errorf("step transition: step %s: %w", id, err) },
	}
}

// updateSteps writes the mutable fields of many steps this transaction
// holds, in one statement.
func updateSteps(rows []*stepRow) pgdb.Stmt {
	n := len(rows)
	var (
		ids, attemptIDs           = make([]uuid.UUID, n), make([]uuid.UUID, n)
		states                    = make([]string, n)
		attempts                  = make([]int32, n)
		nextRetry, started, ended = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		times                     = make([]time.Time, 3*n) // what they point to
		results, failures         = make([][]byte, n), make([][]byte, n)
		updated                   = make([]time.Time, n)
	)
	for i, r := range rows {
		s := &r.step
		ids[i], states[i], attempts[i], attemptIDs[i] = s.ID, string(s.State), int32(s.Attempts), s.AttemptID
		nextRetry[i], started[i], ended[i] = nullTimeIn(&times[3*i], s.NextRetryAt), nullTimeIn(&times[3*i+1], s.StartedAt), nullTimeIn(&times[3*i+2], s.FinishedAt)
		results[i] = nullJSON(s.Result)
		failures[i], _ = failureJSON(s) // checked by StepTransition
		updated[i] = s.UpdatedAt
	}
	return pgdb.Stmt{
		SQL: `UPDATE steps AS s SET state = u.state, attempts = u.attempts, next_retry_at = u.next_retry_at,
				result = u.result, failure = u.failure, started_at = u.started_at, finished_at = u.finished_at,
				updated_at = u.updated_at, attempt_id = u.attempt_id
			FROM unnest($1::uuid[], $2::text[], $3::integer[], $4::timestamptz[], $5::json[], $6::json[],
				$7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::uuid[])
				AS u(id, state, attempts, next_retry_at, result, failure, started_at, finished_at, updated_at, attempt_id)
			WHERE s.id = u.id`,
		Args: []any{ids, states, attempts, nextRetry, results, failures, started, ended, updated, attemptIDs},
		Err:  func(err error) error { return fmt.Errorf("step transitions: %d steps: %w", n, err) },
	}
}

// updateTasks writes the state, revision and times of the tasks this
// transaction holds and changed: one statement, whatever their number.
func updateTasks(tasks []*taskertype.Task) pgdb.Stmt {
	if len(tasks) == 1 {
		t := tasks[0]
		return pgdb.Stmt{SQL: `UPDATE tasks SET state = $2, revision = $3, updated_at = $4, finished_at = $5 WHERE id = $1`,
			Args: []any{t.ID, string(t.State), t.Revision, t.UpdatedAt, nullTime(t.FinishedAt)}}
	}
	n := len(tasks)
	var (
		ids       = make([]uuid.UUID, n)
		states    = make([]string, n)
		revisions = make([]int64, n)
		updated   = make([]time.Time, n)
		finished  = make([]*time.Time, n)
	)
	for i, t := range tasks {
		ids[i], states[i], revisions[i], updated[i], finished[i] = t.ID, string(t.State), t.Revision, t.UpdatedAt, nullTime(t.FinishedAt)
	}
	return pgdb.Stmt{
		SQL: `UPDATE tasks AS t SET state = u.state, revision = u.revision, updated_at = u.updated_at, finished_at = u.finished_at
			FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])
				AS u(id, state, revision, updated_at, finished_at)
			WHERE t.id = u.id`,
		Args: []any{ids, states, revisions, updated, finished},
	}
}

// casStepStmt is the compare-and-set of a step the transaction does not
// hold: it writes the step's mutable fields if the stored step is in state
// from, raises its task's revision in the same statement if bumpTask, and
// returns the stored row (no row: not moved). A non-nil attempt is the
// fence: the stored step must carry that attempt ID too.
func casStepStmt(s *taskertype.Step, from taskertype.StepState, attempt uuid.UUID, bumpTask bool, row func(pgx.Row) error) pgdb.Stmt {
	failure, _ := failureJSON(s)
	id := s.ID
	return pgdb.Stmt{
		SQL: `WITH u AS (
				UPDATE steps SET state = $3, attempts = $4, next_retry_at = $5, result = $6, failure = $7,
					started_at = $8, finished_at = $9, updated_at = $10, attempt_id = $13
				WHERE id = $1 AND task_id = $2 AND state = $11
					AND ($14::uuid = '00000000-0000-0000-0000-000000000000' OR attempt_id = $14)
				RETURNING ` + stepCols + `),
			b AS (UPDATE tasks SET revision = revision + 1 WHERE $12 AND id = (SELECT task_id FROM u))
			SELECT * FROM u`,
		Args: []any{s.ID, s.TaskID, string(s.State), s.Attempts, nullTime(s.NextRetryAt), nullJSON(s.Result), failure,
			nullTime(s.StartedAt), nullTime(s.FinishedAt), s.UpdatedAt, string(from), bumpTask, s.AttemptID, attempt},
		Row: row,
		Err: func(err error) error { return fmt.Errorf("step transition: step %s: %w", id, err) },
	}
}

// maxPackedTransitions bounds the transitions of one row of the log: the
// identity column steps by it (migration 0008), so that a row's
// transitions, numbered from its id, never reach the next row's.
const maxPackedTransitions = 1024

// packedTransition is a transition after a row's first, in its more column.
type packedTransition struct {
	Step  uuid.UUID `json:"s,omitzero"` // absent for the task's own (uuid.Nil)
	From  string    `json:"f"`
	To    string    `json:"t"`
	Event string    `json:"e"`
	At    int64     `json:"a"` // Unix microseconds, as timestamptz keeps it
}

// insertTransitions records the transitions of the transaction, packed:
// one row per task (and processor, and maxPackedTransitions transitions),
// its transitions in the order they were made. The more column is written
// here (appendPacked), all rows' in one buffer: json.Marshal of
// []packedTransition made several objects per transition.
func insertTransitions(rows []transitionRow) pgdb.Stmt {
	n := len(rows) // the rows' bound
	var (
		taskIDs, stepIDs   = make([]uuid.UUID, 0, n), make([]uuid.UUID, 0, n)
		froms, tos, events = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		ats                = make([]time.Time, 0, n)
		processors         = make([]string, 0, n)
		count              = make([]int, 0, n) // transitions per row
		rowOf              = make([]int, n)
	)
	open := make(map[uuid.UUID]int, 4) // the row a task's next transition joins
	for j, r := range rows {
		if i, ok := open[r.taskID]; ok && processors[i] == r.processor && count[i] < maxPackedTransitions {
			rowOf[j] = i
			count[i]++
			continue
		}
		i := len(taskIDs)
		open[r.taskID], rowOf[j] = i, i
		taskIDs, stepIDs = append(taskIDs, r.taskID), append(stepIDs, r.stepID)
		froms, tos, events = append(froms, r.from), append(tos, r.to), append(events, r.event)
		// Floored to the microsecond, as the packed ones (UnixMicro): the
		// two forms of a time never differ.
		ats, processors = append(ats, r.at.Truncate(time.Microsecond)), append(processors, r.processor)
		count = append(count, 1)
	}
	// The transitions by row, each row's in order, its first (in the
	// row's columns) at the head: a counting sort.
	start := make([]int, len(count)+1)
	for i, c := range count {
		start[i+1] = start[i] + c
	}
	at := slices.Clone(start[:len(count)])
	order := make([]int, len(rows))
	for j, i := range rowOf {
		order[at[i]] = j
		at[i]++
	}
	mores := make([][]byte, len(count)) // nil: NULL, no more
	var buf []byte
	for i := range count {
		if count[i] == 1 {
			continue
		}
		from := len(buf)
		buf = append(buf, '[')
		for k, j := range order[start[i]+1 : start[i+1]] {
			if k > 0 {
				buf = append(buf, ',')
			}
			r := &rows[j]
			buf = appendPacked(buf, packedTransition{Step: r.stepID, From: r.from, To: r.to, Event: r.event, At: r.at.UnixMicro()})
		}
		buf = append(buf, ']')
		mores[i] = buf[from:len(buf):len(buf)]
	}
	return pgdb.Stmt{
		SQL: `INSERT INTO transitions (task_id, step_id, from_state, to_state, event, at, processor, more)
			SELECT t, s, f, o, e, a, p, m
			FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::json[])
				WITH ORDINALITY AS u(t, s, f, o, e, a, p, m, n)
			ORDER BY n`,
		Args: []any{taskIDs, stepIDs, froms, tos, events, ats, processors, mores},
		Err:  func(err error) error { return fmt.Errorf("record transitions: %w", err) },
	}
}

// appendPacked appends t as JSON, what json.Marshal writes for it but for
// the escaping of <, > and & (TestAppendPacked).
func appendPacked(b []byte, t packedTransition) []byte {
	b = append(b, '{')
	if t.Step != uuid.Nil {
		b = append(b, `"s":`...)
		b = jsonenc.AppendQuotedUUID(b, t.Step)
		b = append(b, ',')
	}
	b = append(b, `"f":`...)
	b = jsonenc.AppendString(b, t.From)
	b = append(b, `,"t":`...)
	b = jsonenc.AppendString(b, t.To)
	b = append(b, `,"e":`...)
	b = jsonenc.AppendString(b, t.Event)
	b = append(b, `,"a":`...)
	b = strconv.AppendInt(b, t.At, 10)
	return append(b, '}')
}
