-- Finding an order by one of its transaction ids (the support console's order page, `orders
-- show`, customer messages). An order's own events are read from payment_events_by_entity
-- (migration 014, ordered by entity); a transaction id had no key that narrows to it, so a look-up
-- by transaction id read the whole payment_events table. This small copy is ordered by
-- transaction id: a look-up reads the few granules of that id in each monthly partition.
-- Filled by a materialized view on every insert into payment_events, in the same INSERT.
CREATE TABLE IF NOT EXISTS {db}.payment_events_by_transaction
(
    transaction_id String,
    order_id String,
    occurred_at DateTime('UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (transaction_id, order_id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.payment_events_by_transaction_mv TO {db}.payment_events_by_transaction AS
SELECT assumeNotNull(transaction_id) AS transaction_id, order_id, occurred_at
FROM {db}.payment_events
WHERE isNotNull(transaction_id) AND transaction_id != '';

-- History stored before this migration, copied once (the view only sees new inserts); a row
-- inserted while this runs may be copied twice, which changes no look-up (it reads distinct orders).
INSERT INTO {db}.payment_events_by_transaction
SELECT assumeNotNull(transaction_id) AS transaction_id, order_id, occurred_at
FROM {db}.payment_events
WHERE isNotNull(transaction_id) AND transaction_id != '';
