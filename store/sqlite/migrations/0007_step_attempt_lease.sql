-- The store lease of a running attempt, unix microseconds of the
-- database's clock: written when a step starts and renewed with its claim,
-- only when the queue does not share this database (NULL otherwise, as it
-- always is with SQLite's own queue). See the PostgreSQL migration 0007
-- and docs/rabbitmq.md.
ALTER TABLE steps ADD COLUMN attempt_lease_until INTEGER;
