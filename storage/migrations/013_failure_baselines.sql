-- Failure-rate baselines written by the `baselines` job every hour (analytics/DEFINITIONS.md,
-- "Failure-rate baselines"). One row per (entity_type, entity_id, hour_of_day) with enough decided
-- attempts in the run's window; hour_of_day 255 is the entity's all-hours rate. entity_type is
-- `channel`, `device` or `all` (entity_id ''; always written, so every run that saw an attempt has a
-- row). Every run appends under its own `version`: readers take the latest version, older versions
-- are the history.
CREATE TABLE IF NOT EXISTS {db}.failure_baselines
(
    version UInt64,
    computed_at DateTime('UTC'),
    window_from DateTime('UTC'),
    window_to DateTime('UTC'),
    entity_type String,
    entity_id String,
    hour_of_day UInt8,
    decided UInt64,
    failed UInt64,
    timed_out UInt64,
    technical_failures UInt64,
    failure_rate Float64,
    technical_failure_rate Float64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(computed_at)
ORDER BY (entity_type, entity_id, hour_of_day, version);
