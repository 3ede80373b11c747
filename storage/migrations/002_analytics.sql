-- Rates per closed time bucket, written by the `rates` job. A run writes every row of the buckets
-- it covers with one `version` (its start time in ms); re-running a bucket replaces it. Readers
-- keep, per (bucket_size, dimension, bucket_start), only the rows of the latest version, so a
-- value that no longer occurs in a recomputed bucket disappears too; FINAL folds exact re-inserts.
CREATE TABLE IF NOT EXISTS {db}.payment_rates
(
    bucket_size Enum8('5m' = 1, 'hour' = 2, 'day' = 3),
    bucket_start DateTime('UTC'),
    dimension Enum8('all' = 1, 'channel' = 2, 'merchant' = 3, 'failure_code' = 4),
    value String,
    attempts UInt64,
    succeeded UInt64,
    failed UInt64,
    timeout UInt64,
    processing UInt64,
    retry_attempts UInt64,
    orders UInt64,
    orders_retried UInt64,
    orders_first_not_succeeded UInt64,
    orders_recovered UInt64,
    orders_paid UInt64,
    orders_refunded UInt64,
    paid_amount_minor UInt64,
    refunded_amount_minor UInt64,
    success_rate Float64,
    failure_rate Float64,
    timeout_rate Float64,
    retry_rate Float64,
    orders_needing_retry_rate Float64,
    recovered_by_retry_rate Float64,
    refund_rate Float64,
    refund_amount_rate Float64,
    computed_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket_start)
ORDER BY (bucket_size, dimension, value, bucket_start);

-- One row when a job run starts (status running) and one when it ends (ok or failed), same run_id;
-- the larger version is the run's current state.
CREATE TABLE IF NOT EXISTS {db}.job_runs
(
    job String,
    run_id String,
    window_from DateTime('UTC'),
    window_to DateTime('UTC'),
    started_at DateTime('UTC'),
    finished_at Nullable(DateTime('UTC')),
    status Enum8('running' = 1, 'ok' = 2, 'failed' = 3),
    rows UInt64,
    error String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (job, started_at, run_id);
