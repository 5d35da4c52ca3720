-- Tasks, steps and the log of their transitions.
--
-- Times are timestamptz (microseconds), all of them taken from the engine's
-- clock, never from now(). JSON is stored as json, not jsonb: it comes back
-- byte for byte as it was written. fillfactor leaves room on each page so
-- that a state change, which touches no indexed column, is a HOT update.

CREATE TABLE tasks (
    id          uuid        PRIMARY KEY,
    namespace   text        NOT NULL,
    name        text        NOT NULL,
    version     text        NOT NULL,
    state       text        NOT NULL,
    revision    bigint      NOT NULL,
    context     json        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    finished_at timestamptz
) WITH (fillfactor = 80);

-- TaskList: newest first; the unfinished tasks have their own index, which
-- a task leaves once, when it finishes.
CREATE INDEX tasks_created ON tasks (created_at DESC, id DESC);
CREATE INDEX tasks_unfinished ON tasks (created_at DESC, id DESC) WHERE finished_at IS NULL;

CREATE TABLE steps (
    id              uuid             PRIMARY KEY,
    task_id         uuid             NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    name            text             NOT NULL,
    handler         text             NOT NULL,
    position        integer          NOT NULL,
    -- The steps this one waits for: read with the step, no join.
    depends_on      uuid[]           NOT NULL,
    state           text             NOT NULL,
    attempts        integer          NOT NULL,
    retryable       boolean          NOT NULL,
    max_attempts    integer          NOT NULL,
    backoff         text             NOT NULL,
    backoff_base_us bigint           NOT NULL,
    backoff_cap_us  bigint           NOT NULL,
    jitter          double precision NOT NULL,
    timeout_us      bigint           NOT NULL,
    next_retry_at   timestamptz,
    result          json,
    failure         json,
    created_at      timestamptz      NOT NULL,
    updated_at      timestamptz      NOT NULL,
    started_at      timestamptz,
    finished_at     timestamptz
) WITH (fillfactor = 80);

-- StepList: the steps of a task in template order.
CREATE INDEX steps_task ON steps (task_id, position, name);

-- The log. id comes from one sequence, so it orders the transitions of a
-- task (the task's own and its steps') in the order they were written; the
-- task's own have step_id = the nil UUID.
CREATE TABLE transitions (
    task_id    uuid        NOT NULL,
    id         bigint      GENERATED ALWAYS AS IDENTITY,
    step_id    uuid        NOT NULL,
    from_state text        NOT NULL,
    to_state   text        NOT NULL,
    event      text        NOT NULL,
    at         timestamptz NOT NULL,
    processor  text        NOT NULL,
    PRIMARY KEY (task_id, id)
);
