-- The transactional outbox of a store whose queue is not in this database
-- (RabbitMQ): a transaction's Tx.MessageSend writes its messages here, in
-- the transaction, and a relay publishes them to the broker after the
-- commit and deletes them once the broker confirmed them. A relay leases
-- the rows it publishes (lease_until, database time), so several processes
-- never publish a row at once; a relay that dies leaves its rows to the
-- next one when the lease ends. docs/rabbitmq.md.

CREATE TABLE message_outbox (
    id          bigserial   PRIMARY KEY,
    queue_name  text        NOT NULL,
    body        bytea       NOT NULL,
    delay_us    bigint      NOT NULL DEFAULT 0 CHECK (delay_us >= 0),
    priority    integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL DEFAULT '-infinity'
);

CREATE INDEX message_outbox_lease ON message_outbox (lease_until, id);
