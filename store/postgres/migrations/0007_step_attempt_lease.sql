-- The store lease of a running attempt, in database time: written when a
-- step starts and renewed with its claim by the worker that runs it, only
-- when the queue does not share this database (RabbitMQ; on PostgreSQL's
-- own queue the message's visibility timeout is the lease and this stays
-- NULL). A message of a step delivered again while its attempt's lease
-- runs waits for the lease to end instead of recording the attempt as lost
-- (docs/rabbitmq.md).
ALTER TABLE steps ADD COLUMN attempt_lease_until timestamptz;
