-- Claims by priority, with aging (queue.SendParams.Priority). Each message
-- keeps its priority and its sort key, sort_at: the time it became visible
-- less its priority's worth of waiting. Claims take the visible messages in
-- sort_at order, on an index, so that a message of higher priority goes
-- first and one that has waited long enough goes before it.
--
-- Queues created before this migration get the columns here (QueueEnsure
-- creates them with new tables, and adds them to a table an older binary
-- created). The columns come with constant defaults, which PostgreSQL adds
-- without rewriting the table: the messages waiting keep priority 0 and sort
-- at the epoch, ahead of every new message, in the order they had (msg_id);
-- a process still running the previous binary keeps sending (its messages
-- sort there too) until it is upgraded. The index build holds off writes to
-- each queue table while it reads it.
--
-- The index is named 'qs_' || md5(queue table), as the queue's code names it
-- (sortIndexName): unique per table, whatever the length of its name.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT queue_table FROM tasker_queues LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS priority integer NOT NULL DEFAULT 0', r.queue_table);
        EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS sort_at timestamptz NOT NULL DEFAULT ''1970-01-01 00:00:00+00''', r.queue_table);
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (sort_at, msg_id)', 'qs_' || md5(r.queue_table), r.queue_table);
    END LOOP;
END
$$;

-- A dead letter keeps its message's priority: requeued, it is claimed as
-- the message was.
ALTER TABLE tasker_dead_letters ADD COLUMN priority integer NOT NULL DEFAULT 0;
