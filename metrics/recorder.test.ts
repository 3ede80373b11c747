import { describe, expect, test } from 'vitest';
import { createLogger } from '../log/index.ts';
import type { ClickHouseClient } from '../storage/clickhouse.ts';
import { snapshotRows, startMetricsRecorder, type MetricRow } from './recorder.ts';
import { createIngestMetrics } from './registry.ts';

const NOW = new Date(Date.UTC(2026, 10, 25, 10, 0, 5, 750));

function busyMetrics() {
  const m = createIngestMetrics();
  m.consumed.inc(undefined, 120);
  m.stored.inc(undefined, 100);
  m.deadLettered.inc({ reason: 'invalid JSON' }, 3);
  m.deadLettered.inc({ reason: 'contract' }, 2);
  m.insertLatency.observe(0.2);
  m.insertLatency.observe(0.4);
  m.batchSize.observe(60);
  m.lag.set(7, { topic: 'payments.events', partition: 0 });
  m.lag.set(0, { topic: 'payments.events', partition: 1 });
  m.paused.set(1);
  return m;
}

/** A client that records inserts, or fails them while `down` is set. */
function fakeClickHouse() {
  const inserts: { table: string; values: MetricRow[] }[] = [];
  const state = { down: false };
  const client = {
    insert: async (args: { table: string; values: MetricRow[] }) => {
      if (state.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      inserts.push(args);
    },
  } as unknown as ClickHouseClient;
  return { client, inserts, state };
}

describe('snapshotRows', () => {
  test('every counter and gauge sample, with its labels, at the snapshot second', async () => {
    const rows = await snapshotRows(busyMetrics(), 'host-1', NOW);
    const find = (name: string, labels = '') => rows.find((r) => r.name === name && r.labels === labels)?.value;
    expect(rows.every((r) => r.time === '2026-11-25 10:00:05' && r.instance === 'host-1')).toBe(true);
    expect(find('paysentinel_ingest_consumed_total')).toBe(120);
    expect(find('paysentinel_ingest_stored_total')).toBe(100);
    expect(find('paysentinel_ingest_duplicates_total')).toBe(0);
    expect(find('paysentinel_ingest_dead_lettered_total', 'reason="invalid JSON"')).toBe(3);
    expect(find('paysentinel_ingest_dead_lettered_total', 'reason="contract"')).toBe(2);
    expect(find('paysentinel_ingest_insert_seconds_sum')).toBeCloseTo(0.6);
    expect(find('paysentinel_ingest_insert_seconds_count')).toBe(2);
    expect(find('paysentinel_ingest_batch_rows_sum')).toBe(60);
    expect(find('paysentinel_consumer_lag', 'partition="0",topic="payments.events"')).toBe(7);
    expect(find('paysentinel_consumer_lag', 'partition="1",topic="payments.events"')).toBe(0);
    expect(find('paysentinel_ingest_paused')).toBe(1);
    // Per-bucket histogram series are not needed for averages and would multiply the rows.
    expect(rows.some((r) => r.name.endsWith('_bucket'))).toBe(false);
  });
});

describe('startMetricsRecorder', () => {
  test('writes snapshots to <db>.pipeline_metrics, and a last one on stop', async () => {
    const ch = fakeClickHouse();
    const metrics = busyMetrics();
    const recorder = startMetricsRecorder({
      clickhouse: ch.client,
      database: 'ps',
      metrics,
      logger: createLogger({ write: () => {} }),
      instance: 'i',
      intervalMs: 60_000,
      clock: () => NOW,
    });
    await recorder.record();
    metrics.stored.inc(undefined, 5);
    await recorder.stop();
    expect(ch.inserts.map((i) => i.table)).toEqual(['ps.pipeline_metrics', 'ps.pipeline_metrics']);
    const stored = ch.inserts.map((i) => i.values.find((r) => r.name === 'paysentinel_ingest_stored_total')?.value);
    expect(stored).toEqual([100, 105]);
  });

  test('an unreachable ClickHouse is logged once and never throws; recording resumes when it is back', async () => {
    const ch = fakeClickHouse();
    const lines: string[] = [];
    const recorder = startMetricsRecorder({
      clickhouse: ch.client,
      database: 'ps',
      metrics: busyMetrics(),
      logger: createLogger({ write: (l) => lines.push(l) }),
      instance: 'i',
      intervalMs: 60_000,
    });
    ch.state.down = true;
    await expect(recorder.record()).resolves.toBeUndefined();
    await expect(recorder.record()).resolves.toBeUndefined();
    expect(lines.filter((l) => l.includes('could not record pipeline metrics'))).toHaveLength(1);
    ch.state.down = false;
    await recorder.record();
    expect(ch.inserts).toHaveLength(1);
    await recorder.stop();
  });

  test('snapshots are taken on the interval', async () => {
    const ch = fakeClickHouse();
    const recorder = startMetricsRecorder({
      clickhouse: ch.client,
      database: 'ps',
      metrics: busyMetrics(),
      logger: createLogger({ write: () => {} }),
      instance: 'i',
      intervalMs: 20,
    });
    await expect.poll(() => ch.inserts.length, { timeout: 2_000 }).toBeGreaterThanOrEqual(2);
    await recorder.stop();
  });
});
