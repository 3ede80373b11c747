-- Per-attempt states whose argMax and argMin compare strings (docs/adr/0003, "String-keyed
-- states"). In 025's attempt_states both compared tuples and returned tuples, which ClickHouse
-- handles with its generic code (one Field per value); merging them was most of the rates job's
-- item builds. The same states over strings use its string code: measured on 4.8 million events
-- (docs/benchmarks.md, 2026-12-07, fifth session), building them took 12.8 s of CPU instead of
-- 23.4 s, and merging one slice's 87,506 attempts 0.51-0.58 s instead of 1.12-1.42 s.
-- The numbers do not change (analytics/DEFINITIONS.md): the same values are chosen by the same
-- keys, because each key is written so that comparing the strings compares the tuples:
--   s_result (latest status, code, amount): key = the event's time in ms plus 10^13 (14 digits
--     for every DateTime, so fixed width), the final-status flag (one digit), the event id;
--     value = 'status:amount:code' (the code last, so it may hold any character).
--   s_origin (earliest channel and merchant): key = the same 14 digits, the event id;
--     value = the channel's length in bytes, ':', the channel, the merchant.
-- occurred_ms is below 1,000 (ingest/records.ts), so time * 1000 + occurred_ms orders as
-- (occurred_at, occurred_ms) does.
-- As in 025, each state ignores a row stored twice, so the copy below racing the view changes
-- nothing. The old states are dropped: instances of the version before this one read them, so
-- stop them before starting this one.
CREATE TABLE IF NOT EXISTS {db}.attempt_summaries
(
    order_id String,
    attempt_no UInt8,
    s_first_ms AggregateFunction(min, UInt64),
    s_result AggregateFunction(argMax, String, String),
    s_origin AggregateFunction(argMin, String, String),
    s_buckets AggregateFunction(groupUniqArray, UInt32)
)
ENGINE = AggregatingMergeTree
ORDER BY (order_id, attempt_no)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.attempt_summaries_mv TO {db}.attempt_summaries AS
SELECT
    order_id,
    toUInt8(ifNull(attempt, 0)) AS attempt_no,
    minState(toUInt64(occurred_at) * 1000 + occurred_ms) AS s_first_ms,
    argMaxState(
        concat(toString(status), ':', toString(amount_minor), ':', ifNull(failure_code, '')),
        concat(toString(toUInt64(occurred_at) * 1000 + occurred_ms + 10000000000000), toString(toUInt8(status != 'processing')), event_id)
    ) AS s_result,
    argMinState(
        concat(toString(length(channel)), ':', channel, merchant_id),
        concat(toString(toUInt64(occurred_at) * 1000 + occurred_ms + 10000000000000), event_id)
    ) AS s_origin,
    groupUniqArrayState(toUInt32(intDiv(toUInt32(occurred_at), 300) * 300)) AS s_buckets
FROM {db}.payment_events
WHERE type = 'payment'
GROUP BY order_id, attempt_no;

-- History, copied once with the view's own SELECT after the view exists (so no insert falls
-- between), aggregating on disk past 1 GB as 025 did.
INSERT INTO {db}.attempt_summaries
SELECT
    order_id,
    toUInt8(ifNull(attempt, 0)) AS attempt_no,
    minState(toUInt64(occurred_at) * 1000 + occurred_ms) AS s_first_ms,
    argMaxState(
        concat(toString(status), ':', toString(amount_minor), ':', ifNull(failure_code, '')),
        concat(toString(toUInt64(occurred_at) * 1000 + occurred_ms + 10000000000000), toString(toUInt8(status != 'processing')), event_id)
    ) AS s_result,
    argMinState(
        concat(toString(length(channel)), ':', channel, merchant_id),
        concat(toString(toUInt64(occurred_at) * 1000 + occurred_ms + 10000000000000), event_id)
    ) AS s_origin,
    groupUniqArrayState(toUInt32(intDiv(toUInt32(occurred_at), 300) * 300)) AS s_buckets
FROM {db}.payment_events
WHERE type = 'payment'
GROUP BY order_id, attempt_no
SETTINGS max_bytes_before_external_group_by = 1000000000;

DROP TABLE IF EXISTS {db}.attempt_states_mv;

DROP TABLE IF EXISTS {db}.attempt_states;
