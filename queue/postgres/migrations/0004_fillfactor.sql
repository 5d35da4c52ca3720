-- The queues' tables leave more than half of each page free (fillfactor 45,
-- was 70), so that a claim, which rewrites a message's row at the same
-- size, finds room on the row's page and is a HOT update: no new entry in
-- the primary key or the claim-order index. At 70 a claim of a batch of
-- messages, most of them on one page, found room for fewer than half of
-- them, and claims then scanned past the index entries of the others
-- (docs/benchmarks.md, "Issue 9: the queue's claims as HOT updates").
--
-- The setting applies to the pages written from now on: a queue's pages
-- turn over as its messages are acknowledged, so its table takes it as it
-- drains. SET (fillfactor) takes a lock that does not block reads or
-- writes. QueueEnsure sets it too on a table an older binary creates after
-- this migration (queue/postgres/sql.go, upgrade).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT queue_table FROM tasker_queues LOOP
        EXECUTE format('ALTER TABLE IF EXISTS %I SET (fillfactor = 45)', r.queue_table);
    END LOOP;
END
$$;
