-- The steps at fillfactor 50, so that their updates are HOT updates (the
-- new row version on the old one's page, no new index entry) under load
-- too (docs/postgres.md, "Fillfactor").
--
-- A step is updated at least twice (started, then finished with its
-- result, which makes the row longer). The steps of a group of tasks
-- created together share pages, and a worker starts them together and
-- stores their outcomes together: at fillfactor 80 half of their new
-- versions found no room on the page while the transactions around them
-- kept the old ones alive (20,940 of 40,000 of the steps' updates HOT in a
-- drain of 20,000 one-step tasks), and each of the others wrote a new
-- entry in both indexes of the table. At 50 nearly all are HOT. It applies
-- to the pages written from now on. A fillfactor an operator set (other
-- than 80, the one migration 0001 gave) stays.
--
-- The tasks stay at 80: at 50 their heap grew by half over five drains,
-- for no gain shown (a task's last update, its finish, is never HOT: it
-- changes the predicate of the partial index tasks_unfinished).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class c, unnest(c.reloptions) AS o
               WHERE c.oid = 'steps'::regclass AND o = 'fillfactor=80') THEN
        ALTER TABLE steps SET (fillfactor = 50);
    END IF;
END $$;
