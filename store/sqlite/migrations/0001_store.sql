-- The store: tasks, their steps, the steps' dependency edges and the log of
-- every state change. IDs are canonical UUID text; times are Unix
-- microseconds, NULL for "not yet".

CREATE TABLE tasks (
    id          TEXT    NOT NULL PRIMARY KEY,
    namespace   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    revision    INTEGER NOT NULL DEFAULT 0, -- taskertype.Task.Revision
    context     BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER
);

-- TaskList, newest first, reads the IDs backwards: they are UUIDv7, which
-- sort in creation order. The unfinished tasks have an index of their own,
-- which a running task enters when created and leaves once, when it
-- finishes: its several state changes per step never touch it.
CREATE INDEX tasks_unfinished ON tasks (id) WHERE finished_at IS NULL;

CREATE TABLE steps (
    id            TEXT    NOT NULL PRIMARY KEY,
    task_id       TEXT    NOT NULL REFERENCES tasks (id),
    name          TEXT    NOT NULL,
    handler       TEXT    NOT NULL,
    position      INTEGER NOT NULL,
    state         TEXT    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    -- The retry policy, one column a field: read with every step, so it
    -- is kept out of JSON (decoding it was a third of a step read's cost).
    retryable     INTEGER NOT NULL,
    max_attempts  INTEGER NOT NULL,
    backoff       TEXT    NOT NULL,
    backoff_base_us INTEGER NOT NULL,
    backoff_cap_us  INTEGER NOT NULL,
    jitter        REAL    NOT NULL,
    timeout_us    INTEGER NOT NULL,
    next_retry_at INTEGER,
    result        BLOB,             -- the handler's JSON result
    failure       BLOB,             -- JSON of taskertype.StepFailure
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    UNIQUE (task_id, name)
) WITHOUT ROWID; -- one b-tree less to write when steps are created

-- Edges are written with their steps and never change. StepList reads a
-- step's dependencies through the primary key.
CREATE TABLE step_edges (
    task_id      TEXT NOT NULL REFERENCES tasks (id),
    from_step_id TEXT NOT NULL REFERENCES steps (id),
    to_step_id   TEXT NOT NULL REFERENCES steps (id),
    PRIMARY KEY (to_step_id, from_step_id)
) WITHOUT ROWID;


-- The log is append-only. Its rows are kept by task, in the order they were
-- applied (seq counts a task's transitions), so the table is its own index:
-- one b-tree to append to per transaction, and a task's log is one range.
CREATE TABLE transitions (
    task_id    TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    step_id    TEXT,             -- NULL for a transition of the task itself
    from_state TEXT    NOT NULL, -- '' for the record that creates the task or step
    to_state   TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    processor  TEXT    NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;
