-- Leaner per-attempt states (docs/adr/0003, "Leaner states"). Merging payment_attempt_states was
-- the largest single cost at 5,000 events/s: a merge was running in 118 of 300 one-second samples
-- of bench:detect, about 25,000 rows/s per thread (docs/benchmarks.md, "Where the two cores go").
-- Each row carried eight aggregate states: three argMax sharing one ordering key (status, code,
-- amount), two argMin sharing another (channel, merchant), each comparing tuples, and two
-- groupUniqArray hash sets, one of them the refunds, empty for every payment attempt.
-- Here an attempt has four: the first event's time, one argMax of (status, code, amount), one
-- argMin of (channel, merchant), the 5-minute buckets of its events. Succeeded refunds go to a
-- plain table of their own, read distinct. The numbers do not change (analytics/DEFINITIONS.md):
-- the same values are chosen by the same keys.
-- As in 016, each state ignores a row stored twice and the refunds are read distinct, so the
-- copies below racing the views, or running twice, change nothing.
-- The old states are dropped: instances of the version before this one read them, so stop them
-- before starting this one.
CREATE TABLE IF NOT EXISTS {db}.attempt_states
(
    order_id String,
    attempt_no UInt8,
    s_first_ms AggregateFunction(min, UInt64),
    s_result AggregateFunction(argMax, Tuple(Enum8('processing' = 1, 'succeeded' = 2, 'failed' = 3, 'timeout' = 4), String, UInt64), Tuple(DateTime('UTC'), UInt16, UInt8, String)),
    s_origin AggregateFunction(argMin, Tuple(String, String), Tuple(DateTime('UTC'), UInt16, String)),
    s_buckets AggregateFunction(groupUniqArray, UInt32)
)
ENGINE = AggregatingMergeTree
ORDER BY (order_id, attempt_no)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.attempt_states_mv TO {db}.attempt_states AS
SELECT
    order_id,
    toUInt8(ifNull(attempt, 0)) AS attempt_no,
    minState(toUInt64(occurred_at) * 1000 + occurred_ms) AS s_first_ms,
    argMaxState(tuple(status, ifNull(failure_code, ''), amount_minor), (occurred_at, occurred_ms, toUInt8(status != 'processing'), event_id)) AS s_result,
    argMinState(tuple(channel, merchant_id), (occurred_at, occurred_ms, event_id)) AS s_origin,
    groupUniqArrayState(toUInt32(intDiv(toUInt32(occurred_at), 300) * 300)) AS s_buckets
FROM {db}.payment_events
WHERE type = 'payment'
GROUP BY order_id, attempt_no;

-- Every succeeded refund, by order. A refund stored twice is one refund: readers take distinct
-- (event_id, amount) pairs, as the old state's groupUniqArray did.
CREATE TABLE IF NOT EXISTS {db}.order_refunds
(
    order_id String,
    event_id String,
    amount_minor UInt64
)
ENGINE = MergeTree
ORDER BY (order_id, event_id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.order_refunds_mv TO {db}.order_refunds AS
SELECT order_id, event_id, amount_minor
FROM {db}.payment_events
WHERE type = 'refund' AND status = 'succeeded';

-- History, copied once with the views' own SELECTs after the views exist (so no insert falls
-- between), aggregating on disk past 1 GB as 016 did.
INSERT INTO {db}.attempt_states
SELECT
    order_id,
    toUInt8(ifNull(attempt, 0)) AS attempt_no,
    minState(toUInt64(occurred_at) * 1000 + occurred_ms) AS s_first_ms,
    argMaxState(tuple(status, ifNull(failure_code, ''), amount_minor), (occurred_at, occurred_ms, toUInt8(status != 'processing'), event_id)) AS s_result,
    argMinState(tuple(channel, merchant_id), (occurred_at, occurred_ms, event_id)) AS s_origin,
    groupUniqArrayState(toUInt32(intDiv(toUInt32(occurred_at), 300) * 300)) AS s_buckets
FROM {db}.payment_events
WHERE type = 'payment'
GROUP BY order_id, attempt_no
SETTINGS max_bytes_before_external_group_by = 1000000000;

INSERT INTO {db}.order_refunds
SELECT order_id, event_id, amount_minor
FROM {db}.payment_events
WHERE type = 'refund' AND status = 'succeeded';

DROP TABLE IF EXISTS {db}.payment_attempt_states_mv;

DROP TABLE IF EXISTS {db}.payment_attempt_states;
