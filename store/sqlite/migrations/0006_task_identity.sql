-- Task identity and the task request's fields (docs/identity.md): what a
-- task's creator said about it (tasker-core's TaskRequest), and its
-- identity. identity_hash is unique: two creates of the same task leave
-- exactly one. It is NULL for a task of an always_unique template created
-- without an idempotency key (NULLs are distinct in a unique index). tags is
-- a JSON array of strings; the correlation ids are UUID texts, NULL for
-- none.
ALTER TABLE tasks ADD COLUMN priority              INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN correlation_id        TEXT;
ALTER TABLE tasks ADD COLUMN parent_correlation_id TEXT;
ALTER TABLE tasks ADD COLUMN initiator             TEXT    NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN source_system         TEXT    NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN reason                TEXT    NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN tags                  TEXT    NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN identity_hash         TEXT;
ALTER TABLE tasks ADD COLUMN idempotency_key       TEXT;

CREATE UNIQUE INDEX tasks_identity_hash ON tasks (identity_hash);
