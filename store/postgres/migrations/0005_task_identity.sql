-- Task identity and the task request's fields (docs/identity.md): what a
-- task's creator said about it (tasker-core's TaskRequest), and its
-- identity. identity_hash is unique: two creates of the same task, in one
-- process or in two, leave exactly one. It is NULL for a task of an
-- always_unique template created without an idempotency key (NULLs are
-- distinct in a unique index). The columns never change after creation, so
-- the index costs the task's updates nothing (they stay HOT).
ALTER TABLE tasks
    ADD COLUMN priority              integer NOT NULL DEFAULT 0,
    ADD COLUMN correlation_id        uuid,
    ADD COLUMN parent_correlation_id uuid,
    ADD COLUMN initiator             text    NOT NULL DEFAULT '',
    ADD COLUMN source_system         text    NOT NULL DEFAULT '',
    ADD COLUMN reason                text    NOT NULL DEFAULT '',
    ADD COLUMN tags                  text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN identity_hash         text,
    ADD COLUMN idempotency_key       text;

CREATE UNIQUE INDEX tasks_identity_hash ON tasks (identity_hash);
