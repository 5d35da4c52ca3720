-- Claims by priority, with aging (queue.SendParams.Priority). Each message
-- keeps its priority and its sort key, sort_at: the time it became visible
-- less its priority's worth of waiting. Claims take the visible messages in
-- sort_at order, on an index, so that a message of higher priority goes
-- first and one that has waited long enough goes before it.
--
-- Queues created before this migration get the columns here (QueueEnsure
-- creates them with new tables): their messages keep priority 0 and sort
-- by the time they are (or became) visible, the order claims had before.
-- The index is named as the queue's code names it: left('qs' ||
-- substr(queue_table, 2), 63).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT queue_table FROM tasker_queues LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS priority integer NOT NULL DEFAULT 0', r.queue_table);
        EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS sort_at timestamptz', r.queue_table);
        EXECUTE format('UPDATE %I SET sort_at = vt WHERE sort_at IS NULL', r.queue_table);
        EXECUTE format('ALTER TABLE %I ALTER COLUMN sort_at SET NOT NULL', r.queue_table);
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (sort_at, msg_id)',
            left('qs' || substr(r.queue_table, 2), 63), r.queue_table);
    END LOOP;
END
$$;

-- A dead letter keeps its message's priority: requeued, it is claimed as
-- the message was.
ALTER TABLE tasker_dead_letters ADD COLUMN priority integer NOT NULL DEFAULT 0;
