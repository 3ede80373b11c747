-- Copies of payment_events ordered for detection (docs/adr/0002, "Entity-ordered copies").
-- payment_events is ordered by event time, so finding one order's events of the last 24 hours,
-- or the rows written since the last detection tick, meant reading every row of the period.
-- These copies are filled by materialized views on every insert into payment_events, in the
-- same INSERT, so ingest writes nothing more itself.

-- Every event once per entity it belongs to (ip, device, user, order), ordered by entity:
-- a tick reads only the granules of the entities it looks at. A small index granularity keeps
-- that read small, at the cost of a larger primary index in memory (about 30 bytes per 1,024
-- rows). Plain MergeTree: ingest stores each event once, and every detection query reads
-- distinct keys or takes one row per event_id, so a row copied twice changes no result.
CREATE TABLE IF NOT EXISTS {db}.payment_events_by_entity
(
    entity_type Enum8('ip' = 1, 'device' = 2, 'user' = 3, 'order' = 4),
    entity_key String,
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
    ingested_at DateTime('UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (entity_type, entity_key, occurred_at)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.payment_events_by_entity_mv TO {db}.payment_events_by_entity AS
SELECT
    CAST(kind AS Enum8('ip' = 1, 'device' = 2, 'user' = 3, 'order' = 4)) AS entity_type,
    ekey AS entity_key,
    event_id, occurred_at, occurred_ms, type, status, order_id, attempt, transaction_id, amount_minor, currency,
    channel, merchant_id, user_id, device_id, ip, failure_code, source, ingested_at
FROM {db}.payment_events
ARRAY JOIN ['ip', 'device', 'user', 'order'] AS kind, [ifNull(ip, ''), ifNull(device_id, ''), ifNull(user_id, ''), order_id] AS ekey
WHERE ekey != '';

-- Where each event sits in Kafka, ordered by that position: a tick finds the rows written since
-- the last one (and the entities they touch) by reading only those rows.
CREATE TABLE IF NOT EXISTS {db}.payment_events_by_position
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
    merchant_id String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ingested_at)
ORDER BY (kafka_partition, kafka_offset);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.payment_events_by_position_mv TO {db}.payment_events_by_position AS
SELECT kafka_partition, kafka_offset, ingested_at, occurred_at, order_id, ip, device_id, user_id, channel, merchant_id
FROM {db}.payment_events;

-- History stored before this migration, copied once with the views' own SELECTs: the views only
-- see new inserts, and POPULATE (the built-in way) is not allowed with TO and misses rows
-- inserted while it runs. A row inserted while this runs may be copied twice instead, which
-- changes no result (every reader takes distinct keys or one row per event_id).
INSERT INTO {db}.payment_events_by_entity
SELECT
    CAST(kind AS Enum8('ip' = 1, 'device' = 2, 'user' = 3, 'order' = 4)) AS entity_type,
    ekey AS entity_key,
    event_id, occurred_at, occurred_ms, type, status, order_id, attempt, transaction_id, amount_minor, currency,
    channel, merchant_id, user_id, device_id, ip, failure_code, source, ingested_at
FROM {db}.payment_events
ARRAY JOIN ['ip', 'device', 'user', 'order'] AS kind, [ifNull(ip, ''), ifNull(device_id, ''), ifNull(user_id, ''), order_id] AS ekey
WHERE ekey != '';

INSERT INTO {db}.payment_events_by_position
SELECT kafka_partition, kafka_offset, ingested_at, occurred_at, order_id, ip, device_id, user_id, channel, merchant_id
FROM {db}.payment_events;
