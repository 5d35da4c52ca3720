-- The DLQ of tasks: investigations of tasks an operator must look at
-- (tasker-core's tasks_dlq), not the dead letters of the queues. An entry
-- keeps a snapshot of the task when it was made; the task itself stays in
-- tasks. Times are Unix microseconds; JSON is text.

CREATE TABLE tasks_dlq (
    id                TEXT    NOT NULL PRIMARY KEY, -- UUIDv7
    task_id           TEXT    NOT NULL,
    original_state    TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    dlq_at            INTEGER NOT NULL,
    resolution_status TEXT    NOT NULL DEFAULT 'pending',
    resolved_at       INTEGER,
    resolution_notes  TEXT,
    resolved_by       TEXT,
    task_snapshot     BLOB    NOT NULL,
    metadata          BLOB,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX tasks_dlq_task ON tasks_dlq (task_id);
CREATE INDEX tasks_dlq_status ON tasks_dlq (resolution_status, dlq_at);
CREATE INDEX tasks_dlq_at ON tasks_dlq (dlq_at);
-- One pending investigation per task: a stuck episode is recorded once.
CREATE UNIQUE INDEX tasks_dlq_one_pending ON tasks_dlq (task_id) WHERE resolution_status = 'pending';
