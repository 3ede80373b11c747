-- The copy ordered by Kafka position, with index marks every 1,024 rows instead of 8,192. A tick
-- reads the rows above its watermark in each of the six partitions, and ClickHouse reads whole
-- granules: in every part, the granule holding each partition's watermark is read in full. At
-- 5,000 events/s that was about 110,000 rows read per statement for the ~1,500 new ones, twice
-- a tick (new rows, then their keys): 11 s of ClickHouse CPU in two minutes of bench:detect,
-- a fifth of its statements' CPU (docs/benchmarks.md). With 1,024-row granules the same two minutes read
-- a fifth of the rows (6.4 and 6.1 million instead of 33.2 and 30.1).
-- 18.16 cannot change a table's index granularity, so this is a new table, made like 015's: its
-- view is created before the recent rows are copied into it, so no insert falls between the two;
-- one inserted while the copy runs is then stored twice, which changes no decision (keys are
-- taken distinct, and a row counted twice only makes a key screened sooner or a tick look behind).
-- The old copy is dropped: instances of the version before this one read it, so stop them before
-- starting this one.
CREATE TABLE IF NOT EXISTS {db}.payment_events_by_kafka_position
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
ORDER BY (kafka_partition, kafka_offset)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.payment_events_by_kafka_position_mv TO {db}.payment_events_by_kafka_position AS
SELECT kafka_partition, kafka_offset, ingested_at, occurred_at, order_id, ip, device_id, user_id, channel, merchant_id, type, status, failure_code, source
FROM {db}.payment_events;

-- The instances are stopped for this migration, and a new leader reads at most the last 10
-- minutes of writes (its look-back): the last 15 minutes are copied, from payment_events itself
-- (it has every column, and the old copy may be gone if this migration is run again after a
-- crash). 15 minutes rather than 015's hour: at 5,000 events/s that is 4.5 million rows, not 18.
INSERT INTO {db}.payment_events_by_kafka_position
SELECT kafka_partition, kafka_offset, ingested_at, occurred_at, order_id, ip, device_id, user_id, channel, merchant_id, type, status, failure_code, source
FROM {db}.payment_events
WHERE ingested_at >= now() - 900;

DROP TABLE IF EXISTS {db}.payment_events_by_offset_mv;

DROP TABLE IF EXISTS {db}.payment_events_by_offset;
