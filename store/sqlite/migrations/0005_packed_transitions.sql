-- The transition log, packed: one row per task and transaction instead of
-- one per transition. A report transaction makes five to ten transitions of
-- each task it touches (the step's, then the task's hops); as rows of their
-- own they were a quarter of the engine's CPU at saturation, in b-tree
-- inserts and bound values.
--
-- entries is a JSON array of the transitions of the row, in the order they
-- were applied, each an array [step_id, from_state, to_state, event, at]:
-- step_id is the step's canonical UUID text, or null for a transition of the
-- task itself; from_state is '' for the record that creates the task or
-- step; at is Unix microseconds. The first entry is transition number seq of
-- the task, the next seq + 1, and so on: a task's log is its rows in seq
-- order, each row's entries in array order. processor is the process that
-- made the row's transitions (a row holds those of one processor).
--
-- Read it with json_each, for example:
--   SELECT l.seq + j.key AS seq, j.value ->> 0 AS step_id, j.value ->> 1 AS from_state,
--          j.value ->> 2 AS to_state, j.value ->> 3 AS event, j.value ->> 4 AS at, l.processor
--   FROM transitions l, json_each(l.entries) j WHERE l.task_id = ? ORDER BY l.seq, j.key;
CREATE TABLE transitions_packed (
    task_id   TEXT    NOT NULL,
    seq       INTEGER NOT NULL, -- the number of the first entry in the task's log
    processor TEXT    NOT NULL,
    entries   TEXT    NOT NULL, -- JSON, see above
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;

INSERT INTO transitions_packed (task_id, seq, processor, entries)
SELECT task_id, seq, processor, json_array(json_array(step_id, from_state, to_state, event, at))
FROM transitions;

DROP TABLE transitions;
ALTER TABLE transitions_packed RENAME TO transitions;
