import { describe, expect, test } from 'vitest';
import { formatRatesTable, parseTime } from './format.ts';
import { insertRatesQuery, ratesQuery } from './queries.ts';
import { floorTo, planBuckets, planChunks, planStart, type RateRow } from './rates.ts';

const at = (hh: number, mm: number, ss = 0) => Date.UTC(2026, 10, 25, hh, mm, ss);
const HOUR = 3_600_000;

describe('which buckets a rates run writes', () => {
  test('only buckets that have ended, per size', () => {
    expect(planBuckets(at(9, 55), at(10, 7, 30)).map((p) => [p.bucket, new Date(p.fromMs).toISOString(), new Date(p.toMs).toISOString()])).toEqual([
      ['5m', '2026-11-25T09:55:00.000Z', '2026-11-25T10:05:00.000Z'],
      ['hour', '2026-11-25T09:00:00.000Z', '2026-11-25T10:00:00.000Z'],
    ]);
    expect(planBuckets(at(10, 1), at(10, 4))).toEqual([]);
    expect(planBuckets(at(23, 0) - 86_400_000, at(0, 30)).map((p) => p.bucket)).toEqual(['5m', 'hour', 'day']);
  });

  test('a run is split into one-hour chunks, so no statement covers more than an hour of attempts', () => {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString().slice(11, 16));
    // A routine run: the last hour restated, one closed hour bucket.
    const routine = planChunks(at(9, 55), at(10, 7, 30));
    expect(routine.chunks.map((c) => [iso(c.fiveMin.fromMs), iso(c.fiveMin.toMs), iso(c.hourStartMs)])).toEqual([
      ['09:55', '10:00', '09:00'],
      ['10:00', '10:05', null],
    ]);
    expect(routine.days).toEqual([]);
    // A backfill of two days and a half: one chunk per hour, each day summed from its hours.
    const backfill = planChunks(at(0, 0) - 2 * 86_400_000, at(12, 0));
    expect(backfill.chunks).toHaveLength(60);
    for (const c of backfill.chunks) {
      expect(c.fiveMin.toMs - c.fiveMin.fromMs).toBeLessThanOrEqual(HOUR);
      expect(c.hourStartMs).toBe(c.fiveMin.fromMs);
    }
    expect(backfill.days).toEqual([at(0, 0) - 2 * 86_400_000, at(0, 0) - 86_400_000]);
    // Nothing closed yet: nothing to do.
    expect(planChunks(at(10, 1), at(10, 4))).toEqual({ chunks: [], days: [] });
  });

  test('catch-up starts where the last successful run ended, restating recent buckets', () => {
    const now = at(12, 7);
    // Down for three hours: every missed bucket since the last run.
    expect(planStart(now, at(9, 0), null)).toBe(at(9, 0));
    // Running every minute: the last hour again, for late callbacks.
    expect(planStart(now, at(12, 5), null)).toBe(at(11, 5));
    expect(planStart(now, at(12, 5), null, 0)).toBe(at(12, 5));
    // First run ever: from the day of the earliest event; nothing stored yet: the restate window.
    expect(planStart(now, null, at(3, 14))).toBe(at(0, 0));
    expect(planStart(now, null, null)).toBe(now - (now % 300_000) - HOUR);
  });

  test('floorTo is UTC and exact on boundaries', () => {
    expect(floorTo(at(10, 5), '5m')).toBe(at(10, 5));
    expect(floorTo(at(10, 9, 59), '5m')).toBe(at(10, 5));
    expect(floorTo(at(23, 59), 'day')).toBe(at(0, 0));
  });
});

describe('rates SQL', () => {
  test('refuses an empty or inverted window', () => {
    expect(() => ratesQuery('db', { fromMs: at(11, 0), toMs: at(10, 0), dimension: 'all' })).toThrow(RangeError);
    expect(() => ratesQuery('db', { fromMs: at(10, 0), toMs: at(10, 0), dimension: 'all' })).toThrow(RangeError);
    expect(() => ratesQuery('db; DROP', { fromMs: at(10, 0), toMs: at(11, 0), dimension: 'all' })).toThrow(/identifier/);
  });

  test('keeps millisecond bounds exact and reads the whole order history', () => {
    const q = ratesQuery('db', { fromMs: at(10, 0) + 250, toMs: at(11, 0), dimension: 'channel', bucket: '5m' });
    expect(q).toContain(`a_first_ms >= ${at(10, 0) + 250} AND a_first_ms < ${at(11, 0)}`);
    expect(q).toContain('intDiv(toUInt32(a_first_at), 300) * 300');
    // Events of the window's orders are read without an upper time bound: late callbacks count.
    expect(q).toMatch(
      /FROM db\.payment_events_by_entity WHERE entity_type = 'order' AND entity_key IN \(SELECT order_id FROM db\.payment_events WHERE .*'UTC'\)\) AND type = 'payment'\n/,
    );
    expect(
      insertRatesQuery('db', { fromMs: at(10, 0), toMs: at(11, 0), dimension: 'merchant', bucket: 'hour', computedAt: new Date(at(11, 0)), version: 7 }),
    ).toMatch(
      /^INSERT INTO db\.payment_rates \(bucket_size, bucket_start, dimension, value, attempts,[^)]*computed_at, version\)\nSELECT 'hour', toDateTime\(bucket_start, 'UTC'\), 'merchant'/,
    );
  });
});

describe('CLI helpers', () => {
  const now = new Date(at(12, 0));
  test.each([
    ['2026-11-25T10:00:00Z', at(10, 0)],
    ['2026-11-25T18:00:00+08:00', at(10, 0)],
    ['2026-11-25 10:00:30.5Z', at(10, 0, 30) + 500],
    ['2026-11-25', at(0, 0)],
    ['now', at(12, 0)],
    ['now-90m', at(10, 30)],
    ['now-1d', at(12, 0) - 86_400_000],
  ])('parseTime(%s)', (raw, expected) => {
    expect(parseTime(raw, now)?.getTime()).toBe(expected);
  });

  test.each(['2026-11-25T10:00:00', 'yesterday', 'now-soon', '', '2026-13-40T00:00:00Z'])('parseTime(%j) is refused', (raw) => {
    expect(parseTime(raw, now)).toBeNull();
  });

  test('the table shows counts, percentages and the fractions behind the order rates', () => {
    const row = {
      bucketStart: new Date(at(10, 0)),
      value: '',
      attempts: 9,
      succeeded: 4,
      failed: 3,
      timeout: 1,
      processing: 1,
      retry_attempts: 2,
      orders: 7,
      orders_retried: 1,
      orders_first_not_succeeded: 5,
      orders_recovered: 1,
      orders_paid: 3,
      orders_refunded: 2,
      paid_amount_minor: 13_000,
      refunded_amount_minor: 3500,
      success_rate: 4 / 9,
      failure_rate: 3 / 9,
      timeout_rate: 1 / 9,
      retry_rate: 2 / 9,
      orders_needing_retry_rate: 1 / 7,
      recovered_by_retry_rate: 0.2,
      refund_rate: 2 / 3,
      refund_amount_rate: 3500 / 13_000,
    } satisfies RateRow;
    const text = formatRatesTable([row, { ...row, value: 'alipay' }], { by: 'channel', bucketed: true });
    const [head, first, second] = text.split('\n');
    expect(head).toMatch(/^bucket \(UTC\)\s+channel\s+attempts\s+succeeded/);
    expect(first).toMatch(
      /^2026-11-25 10:00\s+\(none\)\s+9\s+4\s+3\s+1\s+1\s+44\.4%\s+33\.3%\s+11\.1%\s+22\.2%\s+7\s+14\.3%\s+20\.0% \(1\/5\)\s+66\.7% \(2\/3\)\s+26\.9%$/,
    );
    expect(second).toContain('alipay');
    expect(formatRatesTable([], { by: 'all', bucketed: false })).toMatch(/No payment attempts/);
  });
});
