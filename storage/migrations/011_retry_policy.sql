-- The retry policy the `retry-policy` job tunes from history (analytics/DEFINITIONS.md, *Retry policy*). Every run appends the
-- whole policy, one row per (channel, failure_code), under its own `version`: the latest version is
-- the current policy, the older ones are its history. Each row carries its evidence (per attempt
-- number k: failed attempts retried, retries that succeeded, the success probability and its
-- Wilson interval), what it was before, and a one-line reason.
CREATE TABLE IF NOT EXISTS {db}.retry_policy
(
    channel String,
    failure_code String,
    version UInt64,
    run_id String,
    computed_at DateTime('UTC'),
    window_from DateTime('UTC'),
    window_to DateTime('UTC'),
    action String,
    retry UInt8,
    max_attempts UInt8,
    backoff_seconds UInt32,
    peak_hours Array(UInt8),
    peak_max_attempts UInt8,
    peak_backoff_seconds UInt32,
    failures UInt64,
    ks Array(UInt8),
    retried Array(UInt64),
    retry_succeeded Array(UInt64),
    p_success Array(Float64),
    ci_low Array(Float64),
    ci_high Array(Float64),
    succeeded_retries UInt64,
    median_delay_s Float64,
    channel_failure_rate Float64,
    peak_failure_rates Array(Float64),
    change String,
    previous_action String,
    previous_max_attempts UInt8,
    previous_peak_max_attempts UInt8,
    reason String
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(computed_at)
ORDER BY (channel, failure_code, version);
