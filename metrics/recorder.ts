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

const SAMPLE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$/;

/**
 * Every sample of the registry at `now`: counters, gauges, and histogram `_sum`/`_count` (the
 * per-bucket series are left out: average latency and batch size need only sum and count).
 * Read from the Prometheus text so the table holds exactly what /metrics shows.
 */
export function snapshotRows(metrics: Pick<IngestMetrics, 'registry'>, instance: string, now: Date): MetricRow[] {
  const time = now.toISOString().slice(0, 19).replace('T', ' ');
  const rows: MetricRow[] = [];
  for (const line of metrics.registry.render().split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m || m[1]!.endsWith('_bucket')) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    rows.push({ time, instance, name: m[1]!, labels: m[2] ?? '', value });
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
    inFlight = insertRows(clickhouse, table, snapshotRows(metrics, instance, clock()), 'record pipeline metrics')
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
