-- Claims by priority, with aging (queue.SendParams.Priority). Each message
-- keeps its priority and its sort key, sort_at (Unix microseconds): the
-- time it became visible less its priority's worth of waiting.
--
-- Two partial indexes replace (queue, vt, id), so that a claim reads about
-- as many index entries as it claims, whatever the backlog and the messages
-- in flight:
-- - queue_messages_ready holds the messages not claimed (visible or
--   delayed) in claim order; it holds vt, so the delayed ones it passes
--   over are told apart without reading their rows;
-- - queue_messages_held holds the claimed ones by vt: a claim that expired
--   (its holder stopped renewing it) is found at its start.
-- A claim moves a message from the first to the second (as it moved its
-- entry in the old index), an acknowledgement deletes it from the second.
--
-- Messages sent before this migration keep priority 0 and sort by the time
-- they are (or became) visible: the order claims had before.
ALTER TABLE queue_messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_messages ADD COLUMN sort_at INTEGER NOT NULL DEFAULT 0;
UPDATE queue_messages SET sort_at = vt;
DROP INDEX queue_messages_queue_vt;
CREATE INDEX queue_messages_ready ON queue_messages (queue, sort_at, vt) WHERE claimed = 0;
CREATE INDEX queue_messages_held ON queue_messages (queue, vt) WHERE claimed = 1;

-- A dead letter keeps its message's priority: requeued, it is claimed as
-- the message was.
ALTER TABLE queue_dead_letters ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
