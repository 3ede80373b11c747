-- Periodic snapshots of the pipeline's own Prometheus counters and gauges (metrics/recorder.ts),
-- so Grafana, whose data source is ClickHouse, can chart pipeline health. One row per sample:
-- counters are cumulative per instance (a restart starts them at 0 again, readers treat a drop
-- as a reset); labels is the Prometheus label text without braces, e.g. partition="0",topic="t".
-- Partitioned by day so old days can be dropped (18.16 has no table TTL).
CREATE TABLE IF NOT EXISTS {db}.pipeline_metrics
(
    time DateTime('UTC'),
    instance String,
    name String,
    labels String,
    value Float64
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(time)
ORDER BY (name, instance, labels, time);
