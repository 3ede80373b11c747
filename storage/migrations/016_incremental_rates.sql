-- Incremental rates (docs/adr/0003). The `rates` job used to rebuild every attempt of the last
-- hour from all of its orders' events on every run, once per dimension; now each run reads only
-- what changed since the last one and restates only the 5-minute buckets those changes touch.
--
-- Every attempt (and every order's succeeded refunds) folded into one row of aggregate states,
-- ordered by order: a run merges the states of the orders that changed instead of reading their
-- events. Filled by a materialized view on every insert into payment_events. The states are
-- min/argMin/argMax/groupUniqArray, which a row stored twice cannot change, so an event copied
-- twice (a redelivery not yet folded, or the copy below racing the view) changes nothing.
-- Aliases differ from the source columns: 18.16 resolves aliases query-wide.
CREATE TABLE IF NOT EXISTS {db}.payment_attempt_states
(
    order_id String,
    kind Enum8('payment' = 1, 'refund' = 2),
    attempt_no UInt8,
    s_first_ms AggregateFunction(min, UInt64),
    s_outcome AggregateFunction(argMax, Enum8('processing' = 1, 'succeeded' = 2, 'failed' = 3, 'timeout' = 4), Tuple(DateTime('UTC'), UInt16, UInt8, String)),
    s_code AggregateFunction(argMax, String, Tuple(DateTime('UTC'), UInt16, UInt8, String)),
    s_amount AggregateFunction(argMax, UInt64, Tuple(DateTime('UTC'), UInt16, UInt8, String)),
    s_channel AggregateFunction(argMin, String, Tuple(DateTime('UTC'), UInt16, String)),
    s_merchant AggregateFunction(argMin, String, Tuple(DateTime('UTC'), UInt16, String)),
    s_buckets AggregateFunction(groupUniqArray, UInt32),
    s_refunds AggregateFunction(groupUniqArray, Tuple(String, UInt64))
)
ENGINE = AggregatingMergeTree
ORDER BY (order_id, kind, attempt_no)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.payment_attempt_states_mv TO {db}.payment_attempt_states AS
SELECT
    order_id,
    type AS kind,
    toUInt8(if(type = 'payment', ifNull(attempt, 0), 0)) AS attempt_no,
    minState(toUInt64(occurred_at) * 1000 + occurred_ms) AS s_first_ms,
    argMaxState(status, (occurred_at, occurred_ms, toUInt8(status != 'processing'), event_id)) AS s_outcome,
    argMaxState(ifNull(failure_code, ''), (occurred_at, occurred_ms, toUInt8(status != 'processing'), event_id)) AS s_code,
    argMaxState(amount_minor, (occurred_at, occurred_ms, toUInt8(status != 'processing'), event_id)) AS s_amount,
    argMinState(channel, (occurred_at, occurred_ms, event_id)) AS s_channel,
    argMinState(merchant_id, (occurred_at, occurred_ms, event_id)) AS s_merchant,
    groupUniqArrayState(toUInt32(intDiv(toUInt32(occurred_at), 300) * 300)) AS s_buckets,
    groupUniqArrayState(if(type = 'refund', (event_id, amount_minor), ('', toUInt64(0)))) AS s_refunds
FROM {db}.payment_events
WHERE type = 'payment' OR status = 'succeeded'
GROUP BY order_id, kind, attempt_no;

-- Which orders changed, in the order ClickHouse stored them: `seen_at` is the server's clock when
-- the row was inserted, so a run reads the rows since its last one by the primary key, whatever
-- the events' own times (a late callback) or the client's clock.
CREATE TABLE IF NOT EXISTS {db}.payment_changes
(
    seen_at DateTime('UTC'),
    order_id String,
    occurred_at DateTime('UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(seen_at)
ORDER BY seen_at;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.payment_changes_mv TO {db}.payment_changes AS
SELECT now() AS seen_at, order_id, occurred_at
FROM {db}.payment_events;

-- What each attempt and each order adds to the counts of its 5-minute bucket (the bucket of its
-- first event; an order's is its first attempt's), written by the rates job for the orders that
-- changed. A bucket's rates are the sums of its live items. The latest version of a key wins,
-- `deleted` rows retire an item from a bucket it no longer belongs to (an earlier event arrived
-- late and moved the attempt's first occurred_at).
CREATE TABLE IF NOT EXISTS {db}.rate_items
(
    bucket_start DateTime('UTC'),
    kind Enum8('attempt' = 1, 'order' = 2),
    order_id String,
    attempt_no UInt8,
    deleted UInt8,
    channel String,
    merchant String,
    code String,
    attempts UInt8,
    succeeded UInt8,
    failed UInt8,
    timeout UInt8,
    processing UInt8,
    retry_attempts UInt8,
    orders UInt8,
    orders_retried UInt8,
    orders_first_not_succeeded UInt8,
    orders_recovered UInt8,
    orders_paid UInt8,
    orders_refunded UInt8,
    paid_amount_minor UInt64,
    refunded_amount_minor UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket_start)
ORDER BY (bucket_start, kind, order_id, attempt_no);

-- The buckets each run's items landed in, so the run restates exactly those (read by version).
CREATE TABLE IF NOT EXISTS {db}.rate_items_touched
(
    version UInt64,
    bucket_start DateTime('UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(bucket_start)
ORDER BY (version, bucket_start);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.rate_items_touched_mv TO {db}.rate_items_touched AS
SELECT DISTINCT version, bucket_start
FROM {db}.rate_items;

-- Where the rates job has read payment_changes up to (server clock), and from which bucket on
-- its items are complete; the latest version is current.
CREATE TABLE IF NOT EXISTS {db}.analytics_cursors
(
    job String,
    seen_to DateTime('UTC'),
    covered_from DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY job;

-- History stored before this migration: states copied once with the view's own SELECT (the view
-- sees only new inserts), aggregating on disk past 1 GB so a large store fits the memory limit.
-- Its changes are not copied: the job's first run after this migration builds the items of the
-- buckets it covers from payment_events.
INSERT INTO {db}.payment_attempt_states
SELECT
    order_id,
    type AS kind,
    toUInt8(if(type = 'payment', ifNull(attempt, 0), 0)) AS attempt_no,
    minState(toUInt64(occurred_at) * 1000 + occurred_ms) AS s_first_ms,
    argMaxState(status, (occurred_at, occurred_ms, toUInt8(status != 'processing'), event_id)) AS s_outcome,
    argMaxState(ifNull(failure_code, ''), (occurred_at, occurred_ms, toUInt8(status != 'processing'), event_id)) AS s_code,
    argMaxState(amount_minor, (occurred_at, occurred_ms, toUInt8(status != 'processing'), event_id)) AS s_amount,
    argMinState(channel, (occurred_at, occurred_ms, event_id)) AS s_channel,
    argMinState(merchant_id, (occurred_at, occurred_ms, event_id)) AS s_merchant,
    groupUniqArrayState(toUInt32(intDiv(toUInt32(occurred_at), 300) * 300)) AS s_buckets,
    groupUniqArrayState(if(type = 'refund', (event_id, amount_minor), ('', toUInt64(0)))) AS s_refunds
FROM {db}.payment_events
WHERE type = 'payment' OR status = 'succeeded'
GROUP BY order_id, kind, attempt_no
SETTINGS max_bytes_before_external_group_by = 1000000000;
