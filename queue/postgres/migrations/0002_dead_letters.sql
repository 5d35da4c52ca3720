-- Dead letters: messages set aside for good because processing them kept
-- failing, with the reason, for an operator to read. One table for every
-- queue (a queue's archive, a_<name>, also holds acknowledged messages); a
-- message moves here from q_<name> and never returns.
CREATE TABLE tasker_dead_letters (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue       text        NOT NULL,
    msg_id      bigint      NOT NULL,
    read_ct     integer     NOT NULL,
    enqueued_at timestamptz NOT NULL,
    dead_at     timestamptz NOT NULL,
    reason      text        NOT NULL,
    message     bytea       NOT NULL
);

CREATE INDEX tasker_dead_letters_queue ON tasker_dead_letters (queue, id);
