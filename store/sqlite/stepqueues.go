package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/internal/domainevents"
	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/internal/wire"
	"github.com/tasker-go/tasker/queue"
	queuesqlite "github.com/tasker-go/tasker/queue/sqlite"
	"github.com/tasker-go/tasker/taskertype"
)

// The step queues (queue.StepQueue) are kept in the co-located queue's
// memory, not in rows: the steps table already says which steps wait for a
// worker, so a row per message wrote the same fact twice, in the single
// writer's time (docs/benchmarks.md, "the embedded store's single
// writer"). A step queue is an index of the steps table: its messages enter
// and leave it with the commits of the transactions that send, claim and
// acknowledge them (queuesqlite.TxMem), and at open they are rebuilt from
// the steps (restoreStepQueues). The process lock keeps every other
// process out of the database, so no one else needs them.

// isStepQueue picks the queues kept in memory: the step queues. A name
// that is also a namespace's domain-event queue (namespace "worker" or
// "worker_…": "worker_…_domain_events") stays in rows, whose durability
// those events need; a step queue of a namespace named "…_domain_events"
// (which templates refuse, for that very clash) would stay in rows too.
func isStepQueue(name string) bool {
	return strings.HasPrefix(name, queue.StepQueue("")) && !strings.HasSuffix(name, domainevents.QueueSuffix)
}

// restoreStepQueues gives the step queues the messages of the steps that
// wait for a worker: an enqueued step's message, never read; and an in
// progress step's, read once, since the attempt that ran it belonged to a
// process that is gone (the next claim finds the attempt lost, as after
// the expiry of its claim). The partial indexes' conditions are written
// out (a parameter would not match them). Tasks in error are looked at too: an operator
// may reset one, and its enqueued steps then still need their messages.
func (s *Store) restoreStepQueues(ctx context.Context) error {
	rows, err := s.db.W.QueryContext(ctx, `SELECT t.namespace, t.name, t.version, t.priority, t.created_at, s.task_id, s.id, s.state, s.updated_at
		FROM (SELECT id, namespace, name, version, priority, created_at FROM tasks INDEXED BY tasks_unfinished WHERE finished_at IS NULL
			UNION ALL
			SELECT id, namespace, name, version, priority, created_at FROM tasks INDEXED BY tasks_in_error WHERE state = 'error') t
		CROSS JOIN steps s ON s.task_id = t.id
		WHERE s.state IN (?1, ?2)
		ORDER BY s.updated_at`, taskertype.StepEnqueued, taskertype.StepInProgress)
	if err != nil {
		return fmt.Errorf("store: restore the step queues: %w", err)
	}
	defer rows.Close()
	byQueue := map[string][]queuesqlite.RestoredMessage{}
	var order []string
	for rows.Next() {
		var (
			ns, name, version, state string
			prio                     int
			taskID, stepID           uuid.UUID
			created, updated         int64
		)
		if err := rows.Scan(&ns, &name, &version, &prio, &created, &taskID, &stepID, &state, &updated); err != nil {
			return fmt.Errorf("store: restore the step queues: %w", err)
		}
		r := queuesqlite.RestoredMessage{
			Body:     wire.Encode(wire.StepMessage{TaskID: taskID, StepID: stepID, Template: name, Version: version}),
			Priority: prio, EnqueuedAt: sqlitedb.Time(updated), Since: sqlitedb.Time(created),
		}
		if taskertype.StepState(state) == taskertype.StepInProgress {
			r.ReadCount = 1
		}
		q := queue.StepQueue(ns)
		if !isStepQueue(q) {
			continue // its messages are rows, durable
		}
		if _, ok := byQueue[q]; !ok {
			order = append(order, q)
		}
		byQueue[q] = append(byQueue[q], r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: restore the step queues: %w", err)
	}
	rows.Close()
	total := 0
	for _, q := range order {
		if err := s.q.Restore(ctx, q, byQueue[q]); err != nil {
			return fmt.Errorf("store: restore the step queues: %w", err)
		}
		total += len(byQueue[q])
	}
	if total > 0 {
		s.db.Logger.Info("store: the step queues were rebuilt from the steps that wait for a worker", "messages", total, "queues", len(order))
	}
	return nil
}
