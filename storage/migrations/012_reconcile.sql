-- Written by the `reconcile` job every 5 minutes (analytics/DEFINITIONS.md, *Reconciliation*). Each run writes with its own
-- `version`; readers keep the latest version. callback_delays always gets a row for all channels
-- (channel '') per run, so the latest version is known even when a run finds nothing to report.
CREATE TABLE IF NOT EXISTS {db}.reconcile_attempts
(
    version UInt64,
    computed_at DateTime('UTC'),
    kind String,
    order_id String,
    attempt UInt16,
    channel String,
    merchant_id String,
    first_at DateTime('UTC'),
    last_at DateTime('UTC'),
    first_final String,
    outcome String,
    final_statuses UInt64,
    age_seconds UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(computed_at)
ORDER BY (kind, version, order_id, attempt);

CREATE TABLE IF NOT EXISTS {db}.callback_delays
(
    version UInt64,
    computed_at DateTime('UTC'),
    window_from DateTime('UTC'),
    window_to DateTime('UTC'),
    channel String,
    attempts UInt64,
    p50_ms Float64,
    p90_ms Float64,
    p95_ms Float64,
    p99_ms Float64,
    max_ms Float64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(computed_at)
ORDER BY (version, channel);
