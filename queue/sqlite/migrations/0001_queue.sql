-- The embedded queue: named queues, their messages and the archive.
-- Times are Unix microseconds.

CREATE TABLE queue_queues (
    name       TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL
);

-- vt is when the message is (or becomes again) visible to claims. claimed is
-- 1 between a claim and its release (nack) or the end of the process, so that
-- a claim (vt in the future, claimed 1) is told apart from a delay (vt in the
-- future, claimed 0).
CREATE TABLE queue_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    read_ct     INTEGER NOT NULL DEFAULT 0,
    enqueued_at INTEGER NOT NULL,
    vt          INTEGER NOT NULL,
    claimed     INTEGER NOT NULL DEFAULT 0
);

-- Claims walk this index from the first visible message of the queue.
CREATE INDEX queue_messages_queue_vt ON queue_messages (queue, vt, id);

CREATE TABLE queue_archive (
    id          INTEGER PRIMARY KEY,
    queue       TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    read_ct     INTEGER NOT NULL,
    enqueued_at INTEGER NOT NULL,
    vt          INTEGER NOT NULL,
    archived_at INTEGER NOT NULL
);

CREATE INDEX queue_archive_queue ON queue_archive (queue, archived_at);
