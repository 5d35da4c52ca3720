-- The queues' tables leave more than half of each page free (fillfactor 45,
-- was 70), so that a claim, which rewrites a message's row at the same
-- size, finds room on the row's page and is a HOT update: no new entry in
-- the primary key or the claim-order index. At 70 a claim of a batch of
-- messages, most of them on one page, found room for fewer than half of
-- them, and claims then scanned past the index entries of the others
-- (docs/benchmarks.md, "Issue 9: the queues' claims as HOT updates").
--
-- Only the tables at 70, the value every earlier version created them
-- with, are changed: a fillfactor an operator set is left alone. The
-- setting applies to the pages written from now on: a queue's pages turn
-- over as its messages are acknowledged, so its table takes it as it
-- drains. SET (fillfactor) takes a lock that does not conflict with reads
-- and writes, but does with VACUUM and index builds, and this migration
-- holds it until it commits: each table is waited for at most 2 s and
-- skipped otherwise (a later process's QueueEnsure sets it;
-- queue/postgres/sql.go, upgrade), so that a vacuum of one queue does not
-- hold the migration, and the processes waiting for it, for as long as it
-- runs. The tables are those of the registry's schema, the migration's
-- own (compared by name: the schema's may need quotes); a registered
-- table that no longer exists is skipped.
DO $$
DECLARE
    r record;
    waited text := current_setting('lock_timeout');
BEGIN
    FOR r IN SELECT c.oid::regclass AS tbl FROM tasker_queues q
            JOIN pg_class c ON c.relname = q.queue_table
            JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
            WHERE 'fillfactor=70' = ANY (c.reloptions) LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '2s', true);
            EXECUTE format('ALTER TABLE %s SET (fillfactor = 45)', r.tbl);
        EXCEPTION WHEN lock_not_available THEN
            NULL; -- busy: left at 70 for now
        END;
        PERFORM set_config('lock_timeout', waited, true);
    END LOOP;
END
$$;
