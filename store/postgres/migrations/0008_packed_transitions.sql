-- The transition log, packed as the embedded database's is (its migration
-- 0005): a row holds the transitions one transaction made of one task, in
-- the order they were applied, instead of one row each. A report makes two
-- to ten transitions of each task it touches (the step's, then the task's
-- hops) and a creation one per step and one for the task; as rows of their
-- own they were most of the rows the engine inserted.
--
-- The first transition of a row is in its columns, with the row's id; the
-- others, if any, are in more, a JSON array of objects {"s": step id (absent
-- for the task's own), "f": from_state, "t": to_state, "e": event, "a": at
-- in Unix microseconds}, numbered id + 1, id + 2, ... The identity column
-- steps by 1024, so a row holds at most 1024 transitions and its numbers
-- never meet the next row's; a task's log is its rows in id order, each
-- row's transitions in order. processor is the same for a row's
-- transitions. Rows written before this migration have no more.
ALTER TABLE transitions ADD COLUMN more json;
ALTER TABLE transitions ALTER COLUMN id SET INCREMENT BY 1024;
