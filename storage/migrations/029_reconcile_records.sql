-- The reconcile job kept up from what changed (docs/adr/0003, *Reconcile from records*). It used to
-- group every payment event of its 24 hours into attempts on every run (every 5 minutes): at 5,000
-- events/s that is 432 million events a run, and at the 4.5 million events of `bench:detect` a
-- run already took 125 s and starved the rates job beside it. Now each attempt's reconcile record
-- (its first and last event, channel, merchant, outcome, first final status, how many distinct
-- final statuses, callback delay) is written once and rewritten only when its order changes: a
-- run reads the orders stored since its cursor (payment_changes), rebuilds their attempts from the
-- order-ordered copy (payment_events_by_entity) and writes, for each attempt whose record changed,
-- a copy of the old record with the opposite sign and the new one. A record's weight is the sum of
-- the signs of its identical rows, so the current records are those with a positive sum, whatever
-- merges have done; the run's report reads only the window's records.
--
-- `generation` is the cursor's: a rebuild (the first run, or a window reaching back before what the
-- records cover) writes every attempt of the window under a new generation, and readers take the
-- cursor's. Partitioned by the day of the attempt's first event, so a report reads the window's
-- days and old days are dropped whole.
CREATE TABLE IF NOT EXISTS {db}.reconcile_records
(
    generation UInt64,
    order_id String,
    attempt_no UInt8,
    sign Int32,
    version UInt64,
    first_ms UInt64,
    last_ms UInt64,
    channel String,
    merchant_id String,
    outcome String,
    first_final String,
    final_statuses UInt8,
    has_delay UInt8,
    delay_ms UInt64
)
ENGINE = MergeTree
PARTITION BY toDate(toDateTime(intDiv(first_ms, 1000), 'UTC'))
ORDER BY (order_id, attempt_no, version)
SETTINGS index_granularity = 1024;
