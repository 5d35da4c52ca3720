-- The transition log in the order it is written. Its rows were kept by
-- (task_id, seq) in the table itself, so a transaction that touched forty
-- tasks inserted into forty places of the log, each a page rewritten into
-- the WAL at its commit; draining a backlog, whose tasks in progress lie
-- spread over the log, the log was about a third of the engine's time
-- (docs/benchmarks.md, "the transition log in write order"). Now the table
-- is kept in the order rows are written (its integer key), so a
-- transaction's rows go to its last pages, and a unique index keeps the
-- rows of a task together for its reads: its entries still go to each
-- task's place, but they are small, so far fewer pages are written. The
-- rows and their format (migration 0005) do not change. The migration
-- copies the whole log once, in its transaction at open, and the old
-- table's pages stay in the file as free pages for new rows.
CREATE TABLE transitions_appended (
    id        INTEGER PRIMARY KEY, -- the order rows were written in
    task_id   TEXT    NOT NULL,
    seq       INTEGER NOT NULL,    -- the number of the first entry in the task's log
    processor TEXT    NOT NULL,
    entries   TEXT    NOT NULL     -- JSON, see migration 0005
);

-- The rows already there are numbered in (task_id, seq) order: the order
-- they were written in is not known (the ORDER BY is what the old table's
-- scan gives anyway; it says so).
INSERT INTO transitions_appended (task_id, seq, processor, entries)
SELECT task_id, seq, processor, entries FROM transitions ORDER BY task_id, seq;

DROP TABLE transitions;
ALTER TABLE transitions_appended RENAME TO transitions;
CREATE UNIQUE INDEX transitions_task ON transitions (task_id, seq);
