import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { computeRates, readStoredRates, run, type RateRow } from '../../analytics/rates.ts';
import { recentRuns } from '../../analytics/jobs.ts';
import { type EventRow } from '../../ingest/records.ts';
import { createLogger, silentLogger } from '../../log/index.ts';
import { command, insertRows } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import type { PaymentEvent } from '../../contract/index.ts';
import { eventRow, nextOffset, rowOfEvent } from '../fixtures/events.ts';
import { scalar, services } from './helpers.ts';

/**
 * A hand-built day of payments on the real ClickHouse, with every number below worked out by
 * hand from the definitions in analytics/DEFINITIONS.md. Window: 10:00-11:00 UTC.
 *
 *  order  channel     merchant  attempts (first occurred_at: outcome)
 *  o1     alipay      m1        1 (10:00:01.100 processing -> 10:00:03.200 succeeded, redelivered); refund 1000 (redelivered)
 *  o2     alipay      m1        1 (10:01 failed network_error), 2 (10:05:10 succeeded); a refund still processing
 *  o3     wechat_pay  m2        1 (10:02 timeout)
 *  o4     wechat_pay  m2        1 (10:06 failed insufficient_funds)
 *  o5     card        m1        1 (10:07 succeeded, corrected at 10:30 to failed system_error)
 *  o6     card        m2        1 (10:08 processing, never answered)
 *  o7     alipay      m2        1 (10:09 succeeded), partial refund 2500 (redelivered)
 *  o8     alipay      m1        1 (09:58 failed user_cancelled), 2 (10:01:30 succeeded): order outside the window
 *  o9     alipay      m1        1 (11:05 succeeded): outside the window
 */
const at = (hh: number, mm: number, ss = 0, ms = 0) => Date.UTC(2026, 10, 25, hh, mm, ss, ms);
const FROM = new Date(at(10, 0));
const TO = new Date(at(11, 0));

const amounts: Record<string, number> = { o1: 1000, o2: 2000, o3: 3000, o4: 4000, o5: 5000, o6: 6000, o7: 10_000, o8: 8000, o9: 9000 };
const channels: Record<string, string> = {
  o1: 'alipay',
  o2: 'alipay',
  o3: 'wechat_pay',
  o4: 'wechat_pay',
  o5: 'card',
  o6: 'card',
  o7: 'alipay',
  o8: 'alipay',
  o9: 'alipay',
};
const merchants: Record<string, string> = { o1: 'm1', o2: 'm1', o3: 'm2', o4: 'm2', o5: 'm1', o6: 'm2', o7: 'm2', o8: 'm1', o9: 'm1' };

function event(id: string, order: string, atMs: number, status: string, patch: Partial<EventRow> = {}): EventRow {
  return eventRow(atMs, {
    event_id: id,
    order_id: order,
    status,
    transaction_id: `tx-${order}`,
    amount_minor: amounts[order]!,
    channel: channels[order]!,
    merchant_id: merchants[order]!,
    user_id: `u-${order}`,
    ...patch,
  });
}

const o1Succeeded = event('e1b', 'o1', at(10, 0, 3, 200), 'succeeded');
const o1Refund = event('r1', 'o1', at(10, 20), 'succeeded', { type: 'refund' });
const o7Refund = event('r7', 'o7', at(10, 40), 'succeeded', { type: 'refund', amount_minor: 2500 });
const fixture: EventRow[] = [
  event('e1a', 'o1', at(10, 0, 1, 100), 'processing', { source: 'client' }),
  o1Succeeded,
  o1Refund,
  event('e2a', 'o2', at(10, 1), 'failed', { failure_code: 'network_error', source: 'client' }),
  event('e2b', 'o2', at(10, 5, 10), 'succeeded', { attempt: 2 }),
  event('r2', 'o2', at(10, 50), 'processing', { type: 'refund', attempt: 2 }),
  event('e3a', 'o3', at(10, 2), 'timeout', { failure_code: 'timeout' }),
  event('e4a', 'o4', at(10, 6), 'failed', { failure_code: 'insufficient_funds' }),
  event('e5a', 'o5', at(10, 7), 'succeeded'),
  event('e5b', 'o5', at(10, 30), 'failed', { failure_code: 'system_error', source: 'reconciliation' }),
  event('e6a', 'o6', at(10, 8), 'processing', { source: 'client' }),
  event('e7a', 'o7', at(10, 9), 'succeeded'),
  o7Refund,
  event('e8a', 'o8', at(9, 58), 'failed', { failure_code: 'user_cancelled' }),
  event('e8b', 'o8', at(10, 1, 30), 'succeeded', { attempt: 2 }),
  event('e9a', 'o9', at(11, 5), 'succeeded'),
];
// Redeliveries: the same events stored a second time (as two racing consumers could), each in
// its own insert so they sit in separate parts until a merge folds them.
const redelivered = [o1Succeeded, o1Refund, o7Refund].map((e) => ({ ...e, kafka_offset: nextOffset() }));

const s = services();
const deps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger: silentLogger };
const events = ident(s.config.clickhouseDatabase, 'payment_events');

beforeAll(async () => {
  await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
  // Keep the duplicate rows unmerged so the test proves the queries fold them themselves.
  await command(s.clickhouse, `SYSTEM STOP MERGES ${events}`);
  await insertRows(s.clickhouse, events.text, fixture);
  for (const row of redelivered) await insertRows(s.clickhouse, events.text, [row]);
});

// This test creates no Kafka topics: dropping its database is all the cleanup it needs (the shared
// cleanup also deletes topics through a Kafka admin connection, which costs seconds for nothing here).
afterAll(async () => {
  await command(s.clickhouse, `DROP DATABASE IF EXISTS ${ident(s.config.clickhouseDatabase)}`);
  await s.clickhouse.close();
});

const pick = (row: RateRow | undefined) => {
  const { bucketStart: _b, ...rest } = row ?? ({} as RateRow);
  return rest;
};

describe('rates on the real ClickHouse', () => {
  test('the fixture really holds duplicate rows', async () => {
    expect(await scalar(s.clickhouse, `SELECT count() FROM ${events}`)).toBe(fixture.length + redelivered.length);
  });

  test('whole window, all payments: every count and rate equals the hand computation', async () => {
    const rows = await computeRates(deps, { from: FROM, to: TO });
    expect(rows).toHaveLength(1);
    expect(rows[0]!.bucketStart).toEqual(FROM);
    expect(pick(rows[0])).toEqual({
      value: '',
      // o1, o2#1, o2#2, o3, o4, o5, o6, o7 and o8#2 (o8#1 and o9 start outside the window)
      attempts: 9,
      succeeded: 4, // o1, o2#2, o7, o8#2
      failed: 3, // o2#1, o4, o5 (its late correction wins)
      timeout: 1, // o3
      processing: 1, // o6
      retry_attempts: 2, // o2#2, o8#2
      orders: 7, // o1..o7
      orders_retried: 1, // o2
      orders_first_not_succeeded: 5, // o2, o3, o4, o5, o6
      orders_recovered: 1, // o2
      orders_paid: 3, // o1, o2, o7
      orders_refunded: 2, // o1, o7 (o2's refund never succeeded)
      paid_amount_minor: 13_000,
      refunded_amount_minor: 3500, // 1000 + 2500, each refund once although stored twice
      success_rate: 4 / 9,
      failure_rate: 3 / 9,
      timeout_rate: 1 / 9,
      retry_rate: 2 / 9,
      orders_needing_retry_rate: 1 / 7,
      recovered_by_retry_rate: 1 / 5,
      refund_rate: 2 / 3,
      refund_amount_rate: 3500 / 13_000,
    });
  });

  test('by channel', async () => {
    const rows = await computeRates(deps, { from: FROM, to: TO, by: 'channel' });
    const byValue = Object.fromEntries(rows.map((r) => [r.value, r]));
    expect(Object.keys(byValue).sort()).toEqual(['alipay', 'card', 'wechat_pay']);
    expect(byValue.alipay).toMatchObject({
      attempts: 5,
      succeeded: 4,
      failed: 1,
      retry_attempts: 2,
      orders: 3,
      orders_recovered: 1,
      orders_paid: 3,
      orders_refunded: 2,
      refunded_amount_minor: 3500,
    });
    expect(byValue.wechat_pay).toMatchObject({
      attempts: 2,
      failed: 1,
      timeout: 1,
      orders: 2,
      orders_first_not_succeeded: 2,
      orders_paid: 0,
      refund_rate: 0,
      failure_rate: 0.5,
    });
    expect(byValue.card).toMatchObject({ attempts: 2, failed: 1, processing: 1, succeeded: 0, orders: 2, success_rate: 0 });
  });

  test("by merchant and by failure code (the outcome's code; orders by their first attempt's)", async () => {
    const merchants = Object.fromEntries((await computeRates(deps, { from: FROM, to: TO, by: 'merchant' })).map((r) => [r.value, r]));
    expect(merchants.m1).toMatchObject({ attempts: 5, succeeded: 3, failed: 2, orders: 3 }); // o1, o2#1, o2#2, o5, o8#2
    expect(merchants.m2).toMatchObject({ attempts: 4, succeeded: 1, failed: 1, timeout: 1, processing: 1, orders: 4 });
    const codes = Object.fromEntries((await computeRates(deps, { from: FROM, to: TO, by: 'failure_code' })).map((r) => [r.value, r]));
    expect(Object.keys(codes).sort()).toEqual(['', 'insufficient_funds', 'network_error', 'system_error', 'timeout']);
    expect(codes['']).toMatchObject({ attempts: 5, succeeded: 4, processing: 1, orders: 3 });
    expect(codes.network_error).toMatchObject({
      attempts: 1,
      failed: 1,
      orders: 1,
      orders_first_not_succeeded: 1,
      orders_recovered: 1,
      recovered_by_retry_rate: 1,
    });
    expect(codes.system_error).toMatchObject({ attempts: 1, failed: 1 });
  });

  test("5-minute and hour buckets go by the attempt's first occurred_at", async () => {
    const fiveMin = await computeRates(deps, { from: FROM, to: TO, bucket: '5m' });
    expect(fiveMin.map((r) => [r.bucketStart.toISOString(), r.attempts, r.orders])).toEqual([
      ['2026-11-25T10:00:00.000Z', 4, 3], // o1, o2#1, o3, o8#2; orders o1, o2, o3
      ['2026-11-25T10:05:00.000Z', 5, 4], // o2#2, o4, o5, o6, o7; orders o4..o7
    ]);
    const hours = await computeRates(deps, { from: new Date(at(9, 0)), to: new Date(at(12, 0)), bucket: 'hour' });
    expect(hours.map((r) => [r.bucketStart.toISOString(), r.attempts, r.orders, r.orders_recovered])).toEqual([
      ['2026-11-25T09:00:00.000Z', 1, 1, 1], // o8#1; o8 recovered by its retry
      ['2026-11-25T10:00:00.000Z', 9, 7, 1],
      ['2026-11-25T11:00:00.000Z', 1, 1, 0], // o9
    ]);
  });

  test('the rates job writes closed buckets, re-running replaces them, job_runs records each run', async () => {
    const now = new Date(at(12, 2, 30));
    const first = await run(deps, now);
    expect(first.status).toBe('ok');
    // A first run starts at the day of the earliest event and ends at the last closed 5 minutes.
    expect(first.from).toEqual(new Date(at(0, 0)));
    expect(first.to).toEqual(new Date(at(12, 0)));
    expect(first.rows).toBeGreaterThan(0);
    const read = () => readStoredRates(deps, { from: new Date(at(0, 0)), to: new Date(at(13, 0)), bucket: 'hour' });
    const expected = await computeRates(deps, { from: new Date(at(9, 0)), to: new Date(at(12, 0)), bucket: 'hour' });
    expect(await read()).toEqual(expected);
    expect((await readStoredRates(deps, { from: FROM, to: TO, bucket: '5m', by: 'channel' })).length).toBe(5);

    // Same buckets again (a restart, or a backfill by hand): still one set of numbers.
    const again = await run(deps, now, { from: new Date(at(0, 0)) });
    expect(again.rows).toBe(first.rows);
    expect(await read()).toEqual(expected);

    // A late answer for o6 arrives two hours on; a run that restates the last three hours takes it in.
    await insertRows(s.clickhouse, events.text, [event('e6b', 'o6', at(12, 3), 'succeeded')]);
    const later = await run(deps, new Date(at(12, 6)), { restateMs: 3 * 3_600_000 });
    expect(later.from).toEqual(new Date(at(9, 5)));
    const tenOClock = (await read()).find((r) => r.bucketStart.getTime() === at(10, 0))!;
    expect(tenOClock).toMatchObject({ attempts: 9, succeeded: 5, processing: 0, orders_paid: 4 });

    // Down from 12:06 to 15:07; an order paid at 13:30 meanwhile. The next run catches up the gap.
    await insertRows(s.clickhouse, events.text, [event('e10a', 'o10', at(13, 30), 'succeeded', { channel: 'card', amount_minor: 700 })]);
    const afterGap = await run(deps, new Date(at(15, 7)));
    expect([afterGap.from, afterGap.to]).toEqual([new Date(at(12, 5)), new Date(at(15, 5))]);
    const gap = await readStoredRates(deps, { from: new Date(at(12, 0)), to: new Date(at(16, 0)), bucket: '5m', by: 'channel' });
    expect(gap.map((r) => [r.bucketStart.toISOString(), r.value, r.attempts, r.succeeded])).toEqual([['2026-11-25T13:30:00.000Z', 'card', 1, 1]]);

    const runs = await recentRuns(deps, 'rates');
    expect(runs.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(runs[0]).toMatchObject({ window_from: '2026-11-25 12:05:00', window_to: '2026-11-25 15:05:00', finished_at: expect.any(String), error: '' });
  });

  test('a failing run is recorded as failed, with its error, and does not count as caught up', async () => {
    const broken = { ...deps, database: s.config.clickhouseDatabase };
    await command(s.clickhouse, `RENAME TABLE ${events} TO ${ident(s.config.clickhouseDatabase, 'payment_events_away')}`);
    try {
      await expect(run(broken, new Date(at(15, 30)), { from: new Date(at(15, 0)) })).rejects.toThrow(/payment_events/);
    } finally {
      await command(s.clickhouse, `RENAME TABLE ${ident(s.config.clickhouseDatabase, 'payment_events_away')} TO ${events}`);
    }
    const [last] = await recentRuns(deps, 'rates', 1);
    expect(last).toMatchObject({ status: 'failed', window_from: '2026-11-25 15:00:00', window_to: '2026-11-25 15:30:00' });
    expect(last!.error).toMatch(/payment_events/);
    // Catch-up still starts at the end of the last successful run.
    const next = await run(deps, new Date(at(15, 31)), { restateMs: 0 });
    expect(next.from).toEqual(new Date(at(15, 5)));
  });
});

describe('a long backfill goes hour by hour', () => {
  test('one chunk per hour with progress logged, hours and days summed from smaller buckets, same numbers as one pass', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', write: (l) => lines.push(l) });
    const dayStart = new Date(at(0, 0));
    const nextDay = new Date(at(24, 0));
    const result = await run({ ...deps, logger }, new Date(at(24, 30)), { from: dayStart });
    expect(result.status).toBe('ok');
    const progress = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'rates chunk written');
    // 24 hours of the 25th, then 00:00-00:30 of the 26th (5-minute buckets only).
    expect(progress).toHaveLength(25);
    expect(progress.map((l) => l.chunk_from)).toEqual(Array.from({ length: 25 }, (_, h) => new Date(at(h, 0)).toISOString()));
    expect(progress.at(-1)).toMatchObject({ chunk: 25, chunks: 25 });
    expect(lines.filter((l) => /"day rates written from hours"/.test(l))).toHaveLength(1);

    // Hour buckets (summed from their 5-minute buckets) and the day bucket (summed from its hours)
    // equal the hours and the day computed in one pass.
    for (const by of ['all', 'channel', 'merchant', 'failure_code'] as const) {
      for (const bucket of ['hour', 'day'] as const) {
        const stored = await readStoredRates(deps, { from: dayStart, to: nextDay, bucket, by });
        const direct = await computeRates(deps, { from: dayStart, to: nextDay, bucket, by });
        expect(stored, `${bucket} by ${by}`).toEqual(direct);
      }
    }
    const [day] = await readStoredRates(deps, { from: dayStart, to: nextDay, bucket: 'day' });
    // o1..o7, o8 (first attempt 09:58), o9 (11:05), o10 (13:30).
    expect(day).toMatchObject({ orders: 10, attempts: 12 });
  });
});

/**
 * The definitions computed a second, independent way (plain TypeScript over the raw events) on
 * simulator traffic: retries, late callbacks, status queries, refunds and redeliveries.
 */
describe('rates equal an independent computation on simulator traffic', () => {
  const START = at(14, 0);
  const sim = services();
  const simDeps = { clickhouse: sim.clickhouse, database: sim.config.clickhouseDatabase, logger: silentLogger };
  const items = [...createTrafficGenerator({ seed: 7, rate: 40, durationMs: 12 * 60_000, startMs: START })].filter((i) => i.event);
  const stored: PaymentEvent[] = items.map((i) => i.event!);

  beforeAll(async () => {
    await migrate(sim.clickhouse, sim.config.clickhouseDatabase, silentLogger);
    const table = ident(sim.config.clickhouseDatabase, 'payment_events');
    await command(sim.clickhouse, `SYSTEM STOP MERGES ${table}`);
    // Redeliveries are stored as duplicate rows, as if the ReplacingMergeTree backstop had not merged yet.
    await insertRows(
      sim.clickhouse,
      table.text,
      stored.map((e) => rowOfEvent(e)),
    );
  });
  afterAll(async () => {
    await command(sim.clickhouse, `DROP DATABASE IF EXISTS ${ident(sim.config.clickhouseDatabase)}`);
    await sim.clickhouse.close();
  });

  test('the traffic exercises every definition', () => {
    expect(items.some((i) => i.kind === 'redelivery')).toBe(true);
    expect(stored.some((e) => e.type === 'refund')).toBe(true);
    expect(stored.some((e) => e.type === 'payment' && (e.attempt ?? 1) > 1 && e.status === 'succeeded')).toBe(true);
    expect(stored.some((e) => e.status === 'processing')).toBe(true);
  });

  test.each([
    ['whole window', { from: START + 2 * 60_000, to: START + 9 * 60_000 }],
    ['everything', { from: START - 60_000, to: START + 60 * 60_000 }],
  ])('%s, all and by channel', async (_name, w) => {
    const from = new Date(w.from);
    const to = new Date(w.to);
    const all = await computeRates(simDeps, { from, to });
    expect(counts(all[0])).toEqual(independent(unique(stored), w.from, w.to, () => ''));
    const byChannel = await computeRates(simDeps, { from, to, by: 'channel' });
    const channels = [...new Set(stored.map((e) => e.channel))].sort();
    for (const channel of channels) {
      const expected = independent(unique(stored), w.from, w.to, (e) => e.channel, channel);
      const row = byChannel.find((r) => r.value === channel);
      if (expected.attempts === 0) expect(row).toBeUndefined();
      else expect(counts(row)).toEqual(expected);
    }
  });

  test('5-minute buckets add up to the window and match bucket by bucket', async () => {
    const w = { from: START, to: START + 15 * 60_000 };
    const buckets = await computeRates(simDeps, { from: new Date(w.from), to: new Date(w.to), bucket: '5m' });
    expect(buckets.map((b) => b.bucketStart.getTime())).toEqual([START, START + 300_000, START + 600_000]);
    for (const b of buckets) {
      const start = b.bucketStart.getTime();
      expect(counts(b)).toEqual(independent(unique(stored), start, start + 300_000, () => ''));
    }
  });
});

const unique = (events: PaymentEvent[]) => [...new Map(events.map((e) => [e.event_id, e])).values()];

function counts(row: RateRow | undefined): Record<string, number> {
  const {
    bucketStart: _b,
    value: _v,
    success_rate: _1,
    failure_rate: _2,
    timeout_rate: _3,
    retry_rate: _4,
    orders_needing_retry_rate: _5,
    recovered_by_retry_rate: _6,
    refund_rate: _7,
    refund_amount_rate: _8,
    ...rest
  } = row!;
  return rest;
}

/** The definitions of analytics/DEFINITIONS.md (*Definitions*), written from the text, without SQL. */
function independent(events: PaymentEvent[], from: number, to: number, dim: (e: PaymentEvent) => string, value = ''): Record<string, number> {
  const t = (e: PaymentEvent) => Date.parse(e.occurred_at);
  const byAttempt = new Map<string, PaymentEvent[]>();
  for (const e of events)
    if (e.type === 'payment') byAttempt.set(`${e.order_id}\u0000${e.attempt}`, [...(byAttempt.get(`${e.order_id}\u0000${e.attempt}`) ?? []), e]);
  const attempts = [...byAttempt.values()].map((list) => {
    const sorted = [...list].sort((a, b) => t(a) - t(b));
    const last = sorted[sorted.length - 1]!;
    return { order: last.order_id, n: last.attempt!, first: t(sorted[0]!), outcome: last.status, amount: last.amount_minor, dim: dim(sorted[0]!) };
  });
  const inWindow = attempts.filter((a) => a.first >= from && a.first < to && a.dim === value);
  const count = (f: (a: (typeof attempts)[number]) => boolean) => inWindow.filter(f).length;
  const refunded = new Map<string, number>();
  for (const e of events) if (e.type === 'refund' && e.status === 'succeeded') refunded.set(e.order_id, (refunded.get(e.order_id) ?? 0) + e.amount_minor);
  const orders = new Map<string, (typeof attempts)[number][]>();
  for (const a of attempts) orders.set(a.order, [...(orders.get(a.order) ?? []), a]);
  const o = {
    orders: 0,
    orders_retried: 0,
    orders_first_not_succeeded: 0,
    orders_recovered: 0,
    orders_paid: 0,
    orders_refunded: 0,
    paid_amount_minor: 0,
    refunded_amount_minor: 0,
  };
  for (const [order, list] of orders) {
    const first = [...list].sort((a, b) => a.n - b.n)[0]!;
    if (!(first.first >= from && first.first < to && first.dim === value)) continue;
    const paid = list.filter((a) => a.outcome === 'succeeded');
    o.orders++;
    if (list.some((a) => a.n > 1)) o.orders_retried++;
    if (first.outcome !== 'succeeded') {
      o.orders_first_not_succeeded++;
      if (paid.length > 0) o.orders_recovered++;
    }
    if (paid.length > 0) {
      o.orders_paid++;
      o.paid_amount_minor += paid.reduce((sum, a) => sum + a.amount, 0);
      if (refunded.has(order)) {
        o.orders_refunded++;
        o.refunded_amount_minor += refunded.get(order)!;
      }
    }
  }
  return {
    attempts: inWindow.length,
    succeeded: count((a) => a.outcome === 'succeeded'),
    failed: count((a) => a.outcome === 'failed'),
    timeout: count((a) => a.outcome === 'timeout'),
    processing: count((a) => a.outcome === 'processing'),
    retry_attempts: count((a) => a.n > 1),
    ...o,
  };
}
