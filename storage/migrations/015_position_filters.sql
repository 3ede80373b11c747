-- The copy ordered by Kafka position, with the fields the features' filters test (type, status,
-- failure_code, source): a detection tick counts, per key it has already screened, only the new rows
-- that can change one of its features (docs/adr/0002, "Parked keys"). A busy device with no
-- technical failure since its last screen is then not read again.
--
-- A new table instead of ALTER ... ADD COLUMN, which 18.16 cannot make idempotent (no IF NOT
-- EXISTS there), so a crash half-way through is harmless. Its view is created before the recent
-- history is copied into it, so no insert falls between the two; one inserted while the copy runs
-- is then stored twice, which changes no decision (keys are taken distinct, and a row counted
-- twice only makes a key screened sooner or a tick look behind). The old copy is dropped:
-- instances of the version before this one read it, so stop them before starting this one.
CREATE TABLE IF NOT EXISTS {db}.payment_events_by_offset
(
    kafka_partition UInt16,
    kafka_offset UInt64,
    ingested_at DateTime('UTC'),
    occurred_at DateTime('UTC'),
    order_id String,
    ip Nullable(String),
    device_id Nullable(String),
    user_id Nullable(String),
    channel String,
    merchant_id String,
    type Enum8('payment' = 1, 'refund' = 2),
    status Enum8('processing' = 1, 'succeeded' = 2, 'failed' = 3, 'timeout' = 4),
    failure_code Nullable(String),
    source Nullable(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ingested_at)
ORDER BY (kafka_partition, kafka_offset);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.payment_events_by_offset_mv TO {db}.payment_events_by_offset AS
SELECT kafka_partition, kafka_offset, ingested_at, occurred_at, order_id, ip, device_id, user_id, channel, merchant_id, type, status, failure_code, source
FROM {db}.payment_events;

-- Ticks read at most the last 10 minutes of writes (a new leader's look-back); an hour of them
-- is copied, from payment_events itself, which has the filter fields.
INSERT INTO {db}.payment_events_by_offset
SELECT kafka_partition, kafka_offset, ingested_at, occurred_at, order_id, ip, device_id, user_id, channel, merchant_id, type, status, failure_code, source
FROM {db}.payment_events
WHERE ingested_at >= now() - 3600;

DROP TABLE IF EXISTS {db}.payment_events_by_position_mv;

DROP TABLE IF EXISTS {db}.payment_events_by_position;
