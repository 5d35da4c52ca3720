-- Dead letters: messages set aside for good because processing them kept
-- failing, with the reason, for an operator to read. One table for every
-- queue; a message moves here from queue_messages and never returns.
CREATE TABLE queue_dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    queue       TEXT    NOT NULL,
    msg_id      INTEGER NOT NULL,
    body        BLOB    NOT NULL,
    read_ct     INTEGER NOT NULL,
    enqueued_at INTEGER NOT NULL,
    dead_at     INTEGER NOT NULL,
    reason      TEXT    NOT NULL
);

CREATE INDEX queue_dead_letters_queue ON queue_dead_letters (queue, id);
