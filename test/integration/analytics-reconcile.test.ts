import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readReconcile, run } from '../../analytics/reconcile.ts';
import { recentRuns } from '../../analytics/jobs.ts';
import { type EventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { command, insertRows } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { eventRow, nextOffset } from '../fixtures/events.ts';
import { services } from './helpers.ts';

/**
 * A hand-built hour on the real ClickHouse; the run is at 11:00 UTC, stuck after 15 minutes.
 *
 *  order  channel  events                                                         reported as
 *  s1     card     10:30 processing                                               stuck (30 min)
 *  s2     card     10:50 processing                                               not yet stuck (10 min)
 *  c1     alipay   10:10 processing, 10:10:02 succeeded, 10:40 failed (correction) changed after final
 *  c2     alipay   10:20 failed, 10:21 succeeded (late callback), redelivered      changed after final
 *  d1..d5 alipay   processing, then succeeded 1, 2, 3, 4, 5 s later                callback delays
 *  w1     wechat   processing, failed 10 s later                                   callback delay
 *  old    card     08:00 processing (3 h before the run, outside its 2-hour lookback)   not reported
 */
const at = (hh: number, mm: number, ss = 0, ms = 0) => Date.UTC(2026, 10, 25, hh, mm, ss, ms);
const NOW = new Date(at(11, 0));

function event(id: string, order: string, atMs: number, status: string, channel: string, code: string | null = null): EventRow {
  return eventRow(atMs, { event_id: id, order_id: order, status, channel, failure_code: code });
}

const c2late = event('c2b', 'c2', at(10, 21), 'succeeded', 'alipay');
const fixture: EventRow[] = [
  event('s1a', 's1', at(10, 30), 'processing', 'card'),
  event('s2a', 's2', at(10, 50), 'processing', 'card'),
  event('c1a', 'c1', at(10, 10), 'processing', 'alipay'),
  event('c1b', 'c1', at(10, 10, 2), 'succeeded', 'alipay'),
  event('c1c', 'c1', at(10, 40), 'failed', 'alipay', 'system_error'),
  event('c2a', 'c2', at(10, 20), 'failed', 'alipay', 'network_error'),
  c2late,
  ...[1, 2, 3, 4, 5].flatMap((s) => [
    event(`d${s}a`, `d${s}`, at(10, s), 'processing', 'alipay'),
    event(`d${s}b`, `d${s}`, at(10, s, s), 'succeeded', 'alipay'),
  ]),
  event('w1a', 'w1', at(10, 7, 0, 500), 'processing', 'wechat_pay'),
  event('w1b', 'w1', at(10, 7, 10, 500), 'failed', 'wechat_pay', 'timeout'),
  event('olda', 'old', at(8, 0), 'processing', 'card'),
];

const s = services();
const deps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger: silentLogger };
const events = ident(s.config.clickhouseDatabase, 'payment_events');

beforeAll(async () => {
  await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
  await command(s.clickhouse, `SYSTEM STOP MERGES ${events}`);
  await insertRows(s.clickhouse, events.text, fixture);
  await insertRows(s.clickhouse, events.text, [{ ...c2late, kafka_offset: nextOffset() }]);
});

afterAll(async () => {
  await command(s.clickhouse, `DROP DATABASE IF EXISTS ${ident(s.config.clickhouseDatabase)}`);
  await s.clickhouse.close();
});

describe('reconcile job on the real ClickHouse', () => {
  test('before any run there is nothing to read', async () => {
    expect(await readReconcile(deps)).toEqual({ version: 0, stuck: [], changed: [], delays: [] });
  });

  test('reports stuck attempts, changes after a final status and callback delay percentiles', async () => {
    const result = await run(deps, NOW, { lookbackMs: 2 * 3_600_000 });
    expect(result.status).toBe('ok');
    const report = await readReconcile(deps);
    expect(result.rows).toBe(report.stuck.length + report.changed.length + report.delays.length);

    expect(report.stuck.map((a) => [a.orderId, a.channel, a.outcome, a.ageSeconds])).toEqual([['s1', 'card', 'processing', 1800]]);
    expect(report.changed.map((a) => [a.orderId, a.firstFinal, a.outcome, a.finalStatuses])).toEqual([
      ['c1', 'succeeded', 'failed', 2],
      ['c2', 'failed', 'succeeded', 2],
    ]);

    const byChannel = Object.fromEntries(report.delays.map((d) => [d.channel, d]));
    expect(Object.keys(byChannel).sort()).toEqual(['', 'alipay', 'wechat_pay']);
    // alipay: c1 (2 s) and d1..d5 (1..5 s): 6 attempts with a processing and a final event.
    expect(byChannel.alipay).toMatchObject({ attempts: 6, max: 5000 });
    expect(byChannel.alipay!.p50).toBeGreaterThanOrEqual(2000);
    expect(byChannel.alipay!.p50).toBeLessThanOrEqual(3000);
    expect(byChannel.wechat_pay).toMatchObject({ attempts: 1, p50: 10_000, p99: 10_000, max: 10_000 });
    expect(byChannel['']).toMatchObject({ attempts: 7, max: 10_000 });
    expect((await recentRuns(deps, 'reconcile', 1))[0]).toMatchObject({ status: 'ok' });
  });

  test('a later run replaces the report: once s2 is stuck too, both are listed', async () => {
    await run(deps, new Date(at(11, 10)), { lookbackMs: 2 * 3_600_000 });
    const report = await readReconcile(deps);
    expect(report.stuck.map((a) => [a.orderId, a.ageSeconds])).toEqual([
      ['s1', 2400],
      ['s2', 1200],
    ]);
  });
});
