-- The store: tasks, their steps, the steps' dependency edges and the log of
-- every state change. IDs are canonical UUID text; times are Unix
-- microseconds, NULL for "not yet".

CREATE TABLE tasks (
    id          TEXT    NOT NULL PRIMARY KEY,
    namespace   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    context     BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER
);

-- TaskList: all tasks newest first; and the unfinished ones, newest first.
-- The second is partial and keyed on creation, not state, so that the state
-- changes of a running task (several per step) never touch it: a task enters
-- it when created and leaves it once, when it finishes.
CREATE INDEX tasks_created ON tasks (created_at, id);
CREATE INDEX tasks_unfinished ON tasks (created_at, id) WHERE finished_at IS NULL;

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
);

-- Edges are written with their steps and never change. task_id lets
-- StepList read the edges of a task with one query.
CREATE TABLE step_edges (
    task_id      TEXT NOT NULL REFERENCES tasks (id),
    from_step_id TEXT NOT NULL REFERENCES steps (id),
    to_step_id   TEXT NOT NULL REFERENCES steps (id),
    PRIMARY KEY (to_step_id, from_step_id)
) WITHOUT ROWID;

CREATE INDEX step_edges_from ON step_edges (from_step_id);
CREATE INDEX step_edges_task ON step_edges (task_id);

-- The log is append-only: no row is ever updated or deleted, so a plain
-- INTEGER PRIMARY KEY (max + 1) numbers the rows in the order they are
-- inserted, as AUTOINCREMENT would, without AUTOINCREMENT's extra write to
-- sqlite_sequence in every transaction (a quarter of the pages a step
-- transition writes).
CREATE TABLE transitions (
    id         INTEGER PRIMARY KEY,
    task_id    TEXT    NOT NULL,
    step_id    TEXT,             -- NULL for a transition of the task itself
    from_state TEXT    NOT NULL, -- '' for the record that creates the task or step
    to_state   TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    processor  TEXT    NOT NULL
);

CREATE INDEX transitions_task ON transitions (task_id, id);
