-- Every accepted payment event, once. Ingest checks (occurred_at, event_id) before inserting, so a
-- redelivery is never written twice; ReplacingMergeTree on the same key is the backstop that folds
-- a duplicate written by two consumers during a rebalance.
CREATE TABLE IF NOT EXISTS {db}.payment_events
(
    event_id String,
    occurred_at DateTime('UTC'),
    occurred_ms UInt16,
    type Enum8('payment' = 1, 'refund' = 2),
    status Enum8('processing' = 1, 'succeeded' = 2, 'failed' = 3, 'timeout' = 4),
    order_id String,
    attempt Nullable(UInt8),
    transaction_id Nullable(String),
    amount_minor UInt64,
    currency String,
    channel String,
    merchant_id String,
    user_id Nullable(String),
    device_id Nullable(String),
    ip Nullable(String),
    failure_code Nullable(String),
    source Nullable(String),
    extra String,
    kafka_partition UInt16,
    kafka_offset UInt64,
    ingested_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (occurred_at, event_id);
