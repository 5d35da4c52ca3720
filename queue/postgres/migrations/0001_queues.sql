-- The registry of queues. Each queue has its own tables, created by
-- QueueEnsure: q_<name> holds its messages, a_<name> its archive. A later
-- migration that must change every queue's tables walks this registry.
CREATE TABLE tasker_queues (
    name          text        PRIMARY KEY,
    queue_table   text        NOT NULL,
    archive_table text        NOT NULL,
    created_at    timestamptz NOT NULL
);
