import type { Logger } from '../log/index.ts';
import { insertRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident } from '../storage/sql.ts';
import type { IngestMetrics } from './registry.ts';

/** One row of `<db>.pipeline_metrics`, as sent in JSONEachRow. */
export interface MetricRow {
  /** 'YYYY-MM-DD hh:mm:ss' UTC. */
  time: string;
  instance: string;
  /** Prometheus sample name, e.g. paysentinel_ingest_stored_total or paysentinel_ingest_insert_seconds_sum. */
  name: string;
  /** Prometheus label text without braces, e.g. `partition="0",topic="payments.events"`; '' when none. */
  labels: string;
  value: number;
}

/** Prometheus label text: names sorted, values escaped as in the exposition format. */
const labelText = (labels: Record<string, string | number>): string =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');

/**
 * Every sample of the pipeline's own series at `now`: counters, gauges, and histogram
 * `_sum`/`_count` (the per-bucket series are left out: average latency and batch size need only
 * sum and count). Node's process series stay on /metrics only.
 */
export async function snapshotRows(metrics: Pick<IngestMetrics, 'registry'>, instance: string, now: Date): Promise<MetricRow[]> {
  const time = now.toISOString().slice(0, 19).replace('T', ' ');
  const rows: MetricRow[] = [];
  for (const metric of await metrics.registry.prom.getMetricsAsJSON()) {
    if (!metric.name.startsWith('paysentinel_')) continue;
    // A labelled counter nothing has counted yet gets one 0 row without labels, so the dashboards' sums read 0, not 'no data'.
    const values = metric.values.length === 0 && String(metric.type) === 'counter' ? [{ value: 0, labels: {} }] : metric.values;
    for (const v of values as { value: number; labels: Record<string, string | number>; metricName?: string }[]) {
      const name = v.metricName ?? metric.name;
      if (name.endsWith('_bucket') || !Number.isFinite(v.value)) continue;
      rows.push({ time, instance, name, labels: labelText(v.labels), value: v.value });
    }
  }
  return rows;
}

export interface MetricsRecorderOptions {
  clickhouse: ClickHouseClient;
  /** Database holding pipeline_metrics (storage/migrations/003_pipeline_metrics.sql). */
  database: string;
  metrics: Pick<IngestMetrics, 'registry'>;
  logger: Logger;
  /** Time between snapshots. @default 10000 */
  intervalMs?: number;
  /** Names this process in the table, so counters of several instances are not mixed up. */
  instance: string;
  /** Longest `stop()` waits for the last snapshot. @default 2000 */
  stopTimeoutMs?: number;
  /** @default () => new Date() */
  clock?: () => Date;
}

export interface MetricsRecorder {
  /** Writes one snapshot now (never throws: a failed write is logged and the next one tries again). */
  record(): Promise<void>;
  /** Stops the timer and writes a last snapshot, so the final counts of a run are kept. */
  stop(): Promise<void>;
}

/**
 * Periodically inserts a snapshot of the pipeline's counters and gauges into
 * `<db>.pipeline_metrics`, for the Pipeline health dashboard. A snapshot that fails (ClickHouse
 * down) is dropped: ingest keeps running, and the cumulative counters lose no information.
 */
export function startMetricsRecorder(options: MetricsRecorderOptions): MetricsRecorder {
  const { clickhouse, metrics, logger, instance, intervalMs = 10_000, stopTimeoutMs = 2_000, clock = () => new Date() } = options;
  const table = ident(options.database, 'pipeline_metrics').text;
  let inFlight: Promise<void> | undefined;
  let failing = false;

  const record = (): Promise<void> => {
    // A slow ClickHouse must not pile up overlapping snapshots.
    if (inFlight) return inFlight;
    inFlight = snapshotRows(metrics, instance, clock())
      .then((rows) => insertRows(clickhouse, table, rows, 'record pipeline metrics'))
      .then(() => {
        if (failing) logger.info('recording pipeline metrics again');
        failing = false;
      })
      .catch((err: unknown) => {
        // Logged once per outage, not once per interval.
        if (!failing) logger.warn('could not record pipeline metrics', { error: (err as Error).message });
        failing = true;
      })
      .finally(() => (inFlight = undefined));
    return inFlight;
  };

  const timer = setInterval(() => void record(), intervalMs);
  timer.unref();
  return {
    record,
    async stop() {
      clearInterval(timer);
      // Bounded, so stopping while ClickHouse is unreachable does not wait for a request timeout.
      let timeout: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => (timeout = setTimeout(resolve, stopTimeoutMs)));
      await Promise.race([(inFlight ?? Promise.resolve()).then(record), bound]);
      clearTimeout(timeout);
    },
  };
}
