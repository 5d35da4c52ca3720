-- Claims by priority, with aging (queue.SendParams.Priority). Each message
-- keeps its priority and its sort key, sort_at (Unix microseconds): the
-- time it became visible less its priority's worth of waiting. Claims walk
-- the visible messages of a queue in sort_at order on the index below, which
-- holds vt so that the claimed and delayed messages it passes over are told
-- apart without reading their rows.
--
-- Messages sent before this migration keep priority 0 and sort by the time
-- they are (or became) visible: the order claims had before.
ALTER TABLE queue_messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_messages ADD COLUMN sort_at INTEGER NOT NULL DEFAULT 0;
UPDATE queue_messages SET sort_at = vt;
CREATE INDEX queue_messages_queue_sort ON queue_messages (queue, sort_at, vt);

-- A dead letter keeps its message's priority: requeued, it is claimed as
-- the message was.
ALTER TABLE queue_dead_letters ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
