-- Every update of a task or a step a HOT update (docs/postgres.md, "HOT
-- updates"): the new row version goes on the old one's page and no index
-- gets an entry for it.
--
-- 1. A step is updated at least twice (started, then finished), with a
--    result that makes the row longer, and a task once or more as its
--    steps go. At fillfactor 80 about half of those updates found no room
--    on the row's page while the transactions around them kept the old
--    versions alive (20,940 of 40,000 steps' HOT in a drain of 20,000
--    one-step tasks, and 10,677 of 20,000 tasks' once their finish was
--    HOT too) and wrote a new entry in each of the table's indexes. At 50
--    a page keeps room for them. It applies to the pages written from now
--    on; a fillfactor an operator set (not 80, the one migration 0001
--    gave) stays.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class c, unnest(c.reloptions) AS o
               WHERE c.oid = 'steps'::regclass AND o = 'fillfactor=80') THEN
        ALTER TABLE steps SET (fillfactor = 50);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class c, unnest(c.reloptions) AS o
               WHERE c.oid = 'tasks'::regclass AND o = 'fillfactor=80') THEN
        ALTER TABLE tasks SET (fillfactor = 50);
    END IF;
END $$;

-- 2. The partial index of unfinished tasks (tasks_unfinished, WHERE
--    finished_at IS NULL) made every task's last update, the one that sets
--    finished_at, a non-HOT update: one new entry in each of the table's
--    indexes. The set of unfinished tasks is now a table of its own, kept
--    by triggers (so that every writer keeps it, whatever its version):
--    a task is added when it is inserted unfinished or reopened (reset),
--    removed when it finishes or is deleted. The readers that looked for
--    unfinished tasks (the task list filtered by unfinished states, the
--    staleness detector) join it; they still check finished_at, so the
--    table only narrows what they read.
CREATE TABLE open_tasks (
    task_id         uuid        PRIMARY KEY,
    task_created_at timestamptz NOT NULL
);
-- The task list's order: newest first.
CREATE INDEX open_tasks_created ON open_tasks (task_created_at DESC, task_id DESC);

-- One call per INSERT statement, whatever its rows (a creation writes a
-- group of tasks in one statement).
CREATE FUNCTION open_tasks_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO open_tasks (task_id, task_created_at)
        SELECT id, created_at FROM inserted_tasks WHERE finished_at IS NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER open_tasks_inserted AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS inserted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION open_tasks_inserted();

-- A call only for a row whose finished_at goes from NULL to a time or back:
-- once when a task finishes, and when a reset reopens it.
CREATE FUNCTION open_tasks_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.finished_at IS NULL THEN
        INSERT INTO open_tasks (task_id, task_created_at) VALUES (NEW.id, NEW.created_at)
            ON CONFLICT (task_id) DO NOTHING;
    ELSE
        DELETE FROM open_tasks WHERE task_id = OLD.id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER open_tasks_moved AFTER UPDATE OF finished_at ON tasks
    FOR EACH ROW WHEN ((OLD.finished_at IS NULL) <> (NEW.finished_at IS NULL))
    EXECUTE FUNCTION open_tasks_moved();

CREATE FUNCTION open_tasks_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM open_tasks WHERE task_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER open_tasks_deleted AFTER DELETE ON tasks
    FOR EACH ROW WHEN (OLD.finished_at IS NULL)
    EXECUTE FUNCTION open_tasks_deleted();

-- The tasks unfinished now. The migration runs in one transaction and
-- CREATE TRIGGER locked the table against writes: no task moves between
-- this read and the triggers.
INSERT INTO open_tasks (task_id, task_created_at)
    SELECT id, created_at FROM tasks WHERE finished_at IS NULL;

DROP INDEX tasks_unfinished;
