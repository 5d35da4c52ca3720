-- A message's queue.SendParams.Since goes through the outbox too: a step's
-- message waits from its task's creation in claim order on every queue,
-- the broker's included (docs/identity.md, "Priority and aging"). NULL: not
-- set, as for the rows an older binary writes. A nullable column without a
-- default is added without rewriting the table.
ALTER TABLE message_outbox ADD COLUMN since timestamptz;
