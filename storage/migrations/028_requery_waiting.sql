-- The attempts the requery job found still processing but left for a later run because of its
-- limit (automation/requery.ts). Before, its scan by time started again at the oldest attempt the
-- limit had left, so while more attempts were stuck than it could ask about (a gateway outage)
-- every run re-read all the events since then: measured in bench:detect at 5,000 events/s, the
-- start stayed put for five runs, each reading 3.1-4.3 million rows (docs/benchmarks.md). Now
-- its scan always moves on, and what it leaves is kept here by key: a run reads the oldest few
-- waiting attempts, checks them again by key, and asks about them oldest first.
-- One row per change: waiting = 1 when left, 0 once asked, settled or gone; the latest version
-- of an attempt is its state. Partitioned by the day of the attempt's first report: a run reads
-- only the last day's partitions, so older ones are never read again and can be dropped.
CREATE TABLE IF NOT EXISTS {db}.requery_waiting
(
    order_id String,
    attempt UInt8,
    transaction_id String,
    began DateTime('UTC'),
    waiting UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(began)
ORDER BY (order_id, attempt);
