-- The DLQ of tasks: investigations of tasks an operator must look at
-- (tasker-core's tasks_dlq), not the dead letters of the queues. An entry
-- keeps a snapshot of the task when it was made; the task itself stays in
-- tasks. Times come from the engine's clock. Reasons and statuses are
-- checked text, as the task states are.

CREATE TABLE tasks_dlq (
    id                uuid        PRIMARY KEY,
    task_id           uuid        NOT NULL,
    original_state    text        NOT NULL,
    reason            text        NOT NULL CHECK (reason IN ('staleness_timeout', 'max_retries_exceeded',
                          'dependency_cycle_detected', 'worker_unavailable', 'manual_dlq')),
    dlq_at            timestamptz NOT NULL,
    resolution_status text        NOT NULL DEFAULT 'pending' CHECK (resolution_status IN ('pending',
                          'manually_resolved', 'permanently_failed', 'cancelled')),
    resolved_at       timestamptz,
    resolution_notes  text,
    resolved_by       varchar(255),
    task_snapshot     json        NOT NULL,
    metadata          json,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

CREATE INDEX tasks_dlq_task ON tasks_dlq (task_id);
CREATE INDEX tasks_dlq_status ON tasks_dlq (resolution_status, dlq_at);
CREATE INDEX tasks_dlq_at ON tasks_dlq (dlq_at);
-- One pending investigation per task: a stuck episode is recorded once.
CREATE UNIQUE INDEX tasks_dlq_one_pending ON tasks_dlq (task_id) WHERE resolution_status = 'pending';

