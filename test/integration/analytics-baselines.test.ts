import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ALL_HOURS, baselineFacts, readBaselines, run } from '../../analytics/baselines.ts';
import { recentRuns } from '../../analytics/jobs.ts';
import { type EventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { command, insertRows } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { eventRow } from '../fixtures/events.ts';
import { scalar, services } from './helpers.ts';

/**
 * A hand-built week on the real ClickHouse. The run is at 2026-11-25 10:20 UTC, so its window is
 * [2026-11-18 10:00, 2026-11-25 10:00); a baseline needs at least 4 decided attempts here.
 *
 *  alipay, 2026-11-24 09:xx   10 decided: 2 network_error, 1 timeout (code timeout), 1 insufficient_funds,
 *                             6 succeeded (one of them only after a processing event); 1 still processing
 *                             (not decided). Technical 3/10 = 0.3; failed or timed out 4/10 = 0.4.
 *                             Device dev-a: the 2 network_error attempts and 3 of the succeeded: 2/5 = 0.4.
 *  alipay, 2026-11-23 14:xx   2 decided: 1 system_error (a succeeded later corrected by reconciliation,
 *                             stored twice), 1 succeeded. Below 4: no 14:00 row.
 *  alipay, all hours          12 decided, technical 4: 1/3.
 *  wechat_pay, 2026-11-24 10:xx  5 decided: 1 network_error, 4 succeeded: 0.2 at 10:00 and over all hours.
 *  card, 2026-11-20 10:xx     3 decided: a timeout without a code (technical), 2 succeeded. Below 4 everywhere.
 *  outside the window         alipay network_error at 2026-11-18 09:59 and at 2026-11-25 10:05: not counted.
 *  all                        20 decided, technical 6: 0.3; failed or timed out 7: 0.35.
 */
const day = (d: number, hh: number, mm: number, ss = 0) => Date.UTC(2026, 10, d, hh, mm, ss);
const NOW = new Date(day(25, 10, 20));

let seq = 0;
/** Attempt 1 of `order`; a failed or timed-out event has the code network_error unless `patch` says otherwise. */
function ev(order: string, atMs: number, status: string, channel: string, patch: Partial<EventRow> = {}): EventRow {
  seq++;
  const failure_code = status === 'failed' || status === 'timeout' ? 'network_error' : null;
  return eventRow(atMs, { event_id: `e${seq}`, order_id: order, status, channel, failure_code, ...patch });
}

const corrected = ev('a14-1', day(23, 14, 40), 'failed', 'alipay', { failure_code: 'system_error', source: 'reconciliation' });
const fixture: EventRow[] = [
  // alipay 09:xx on the 24th
  ev('a9-1', day(24, 9, 1), 'failed', 'alipay', { device_id: 'dev-a' }),
  ev('a9-2', day(24, 9, 2), 'failed', 'alipay', { device_id: 'dev-a' }),
  ev('a9-3', day(24, 9, 3), 'timeout', 'alipay', { failure_code: 'timeout' }),
  ev('a9-4', day(24, 9, 4), 'failed', 'alipay', { failure_code: 'insufficient_funds' }),
  ev('a9-5', day(24, 9, 5), 'processing', 'alipay', { device_id: 'dev-a' }),
  ev('a9-5', day(24, 9, 5, 4), 'succeeded', 'alipay'),
  ev('a9-6', day(24, 9, 6), 'succeeded', 'alipay', { device_id: 'dev-a' }),
  ev('a9-7', day(24, 9, 7), 'succeeded', 'alipay', { device_id: 'dev-a' }),
  ev('a9-8', day(24, 9, 8), 'succeeded', 'alipay'),
  ev('a9-9', day(24, 9, 9), 'succeeded', 'alipay'),
  ev('a9-10', day(24, 9, 10), 'succeeded', 'alipay'),
  ev('a9-11', day(24, 9, 11), 'processing', 'alipay'),
  // alipay 14:xx on the 23rd
  ev('a14-1', day(23, 14, 10), 'succeeded', 'alipay'),
  corrected,
  ev('a14-2', day(23, 14, 20), 'succeeded', 'alipay'),
  // wechat_pay 10:xx on the 24th
  ev('w10-1', day(24, 10, 1), 'failed', 'wechat_pay'),
  ...[2, 3, 4, 5].map((i) => ev(`w10-${i}`, day(24, 10, i), 'succeeded', 'wechat_pay')),
  // card 10:xx on the 20th
  ev('c10-1', day(20, 10, 1), 'timeout', 'card', { failure_code: null }),
  ev('c10-2', day(20, 10, 2), 'succeeded', 'card'),
  ev('c10-3', day(20, 10, 3), 'succeeded', 'card'),
  // outside the window
  ev('early', day(18, 9, 59), 'failed', 'alipay'),
  ev('late', day(25, 10, 5), 'failed', 'alipay'),
];

const s = services();
const deps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger: silentLogger };
const events = ident(s.config.clickhouseDatabase, 'payment_events');

beforeAll(async () => {
  await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
  await command(s.clickhouse, `SYSTEM STOP MERGES ${events}`);
  await insertRows(s.clickhouse, events.text, fixture);
  // The correction redelivered: stored twice, counted once.
  await insertRows(s.clickhouse, events.text, [{ ...corrected, kafka_offset: 999 }]);
});

afterAll(async () => {
  await command(s.clickhouse, `DROP DATABASE IF EXISTS ${ident(s.config.clickhouseDatabase)}`);
  await s.clickhouse.close();
});

const pick = (b: {
  entityType: string;
  entityId: string;
  hourOfDay: number;
  decided: number;
  technicalFailures: number;
  technicalFailureRate: number;
  failureRate: number;
}) => [b.entityType, b.entityId, b.hourOfDay, b.decided, b.technicalFailures, b.technicalFailureRate, b.failureRate];

describe('baselines job on the real ClickHouse', () => {
  test('before any run there are no baselines, so the rules use their defaults', async () => {
    expect(await readBaselines(deps)).toEqual([]);
    expect(await baselineFacts(s.clickhouse, s.config.clickhouseDatabase, NOW.getTime())).toEqual(new Map());
  });

  test('per channel and device, per hour of day and over all hours, only with enough volume', async () => {
    const result = await run(deps, NOW, { minDecided: 4 });
    expect(result).toMatchObject({ status: 'ok', from: new Date(day(18, 10, 0)), to: new Date(day(25, 10, 0)) });
    const rows = await readBaselines(deps);
    expect(result.rows).toBe(rows.length);
    expect(rows.map(pick)).toEqual([
      ['all', '', ALL_HOURS, 20, 6, 0.3, 7 / 20],
      ['channel', 'alipay', 9, 10, 3, 0.3, 0.4],
      ['channel', 'alipay', ALL_HOURS, 12, 4, 4 / 12, 5 / 12],
      ['channel', 'wechat_pay', 10, 5, 1, 0.2, 0.2],
      ['channel', 'wechat_pay', ALL_HOURS, 5, 1, 0.2, 0.2],
      ['device', 'dev-a', 9, 5, 2, 0.4, 0.4],
      ['device', 'dev-a', ALL_HOURS, 5, 2, 0.4, 0.4],
    ]);
    expect(rows[1]).toMatchObject({ failed: 3, timedOut: 1, window: { from: new Date(day(18, 10, 0)), to: new Date(day(25, 10, 0)) } });
    expect((await recentRuns(deps, 'baselines', 1))[0]).toMatchObject({ status: 'ok', window_from: '2026-11-18 10:00:00', window_to: '2026-11-25 10:00:00' });
  });

  test('baselineFacts: the hour of day when it had enough volume, else all hours, else nothing', async () => {
    const facts = (hh: number) => baselineFacts(s.clickhouse, s.config.clickhouseDatabase, day(26, hh, 30));
    expect(await facts(9)).toEqual(
      new Map([
        ['channel|alipay', { channel_technical_failure_rate_baseline: 0.3 }],
        ['channel|wechat_pay', { channel_technical_failure_rate_baseline: 0.2 }],
      ]),
    );
    // 14:00 had only 2 decided alipay attempts: the all-hours rate. card never had enough: no entry.
    expect(await facts(14)).toEqual(
      new Map([
        ['channel|alipay', { channel_technical_failure_rate_baseline: 4 / 12 }],
        ['channel|wechat_pay', { channel_technical_failure_rate_baseline: 0.2 }],
      ]),
    );
  });

  test('every run appends a version; readers see the latest, the older ones stay as history', async () => {
    // Two more hours: the window now starts at 12:00 on the 18th and ends at 12:00 on the 25th, so
    // the 10:05 failure on the 25th is in it (alipay 13 decided, 5 technical).
    await run(deps, new Date(day(25, 12, 3)), { minDecided: 4 });
    const alipay = (await readBaselines(deps, { entityType: 'channel' })).find((b) => b.entityId === 'alipay' && b.hourOfDay === ALL_HOURS)!;
    expect([alipay.decided, alipay.technicalFailures]).toEqual([13, 5]);
    expect(await scalar(s.clickhouse, `SELECT uniqExact(version) FROM ${ident(s.config.clickhouseDatabase, 'failure_baselines')}`)).toBe(2);
  });
});
