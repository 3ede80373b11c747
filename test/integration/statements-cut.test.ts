import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { validateEvent } from '../../contract/validate.ts';
import { toEventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { importStatement } from '../../statements/import.ts';
import { breaksQuery } from '../../statements/reconcile-queries.ts';
import { periodsToReconcile, reconcilePeriod } from '../../statements/reconcile.ts';
import type { StatementLineOut } from '../../statements/simulated.ts';
import { writeStatement } from '../../statements/write.ts';
import { command, createClickHouse, insertRows, queryRows, type ClickHouseClient } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident, toDateTimeText } from '../../storage/sql.ts';
import { configFor, isolatedEnv, makeEvent } from './helpers.ts';

/**
 * WeChat Pay's bills cut at 00:00 Beijing time (16:00 UTC). Our clock and the platform's differ by
 * seconds, so an attempt near the cut is on one day in our records and on the next (or previous)
 * day's bill. Neither day may report it as recorded but not settled.
 */
const config = configFor(isolatedEnv());
const database = config.clickhouseDatabase;
let clickhouse: ClickHouseClient;
const deps = () => ({ clickhouse, database, logger: silentLogger });
const dir = mkdtempSync(join(tmpdir(), 'statements-cut-'));
const GRACE = 30 * 60_000;
const HOUR = 3_600_000;
const cut = Date.UTC(2026, 10, 25, 16); // 2026-11-26 00:00 Beijing
const day1 = { fromMs: cut - 24 * HOUR, toMs: cut };
const day2 = { fromMs: cut, toMs: cut + 24 * HOUR };
const now = new Date(day2.toMs + GRACE + 60_000);

// [order, our succeeded time, the platform's time]
const attempts: [string, number, number][] = [
  ['o-before', cut - 10_000, cut + 5_000], // ours 23:59:50, the platform's 00:00:05 (next bill)
  ['o-after', cut + 3_000, cut - 2_000], // ours 00:00:03, the platform's 23:59:58 (previous bill)
  ['o-day1', cut - 6 * HOUR, cut - 6 * HOUR],
  ['o-day2', cut + 6 * HOUR, cut + 6 * HOUR],
];

const line = ([order, , platformMs]: [string, number, number]): StatementLineOut => ({
  transactionId: `wx-${order}`,
  orderId: order,
  type: 'payment',
  amountMinor: 12_900,
  currency: 'CNY',
  occurredAtMs: platformMs,
  refundId: '',
});
const bill = (p: typeof day1) => attempts.filter((a) => a[2] >= p.fromMs && a[2] < p.toMs).map(line);

beforeAll(async () => {
  clickhouse = createClickHouse(config);
  await migrate(clickhouse, database, silentLogger);
  const rows = attempts.flatMap(([order, ourMs], i) =>
    [
      { status: 'processing', occurred_at: new Date(ourMs - 20_000).toISOString(), transaction_id: undefined },
      { status: 'succeeded', occurred_at: new Date(ourMs).toISOString(), transaction_id: `wx-${order}` },
    ].map((patch, j) => {
      const valid = validateEvent(makeEvent(i * 2 + j, { ...patch, order_id: order, attempt: 1, amount_minor: 12_900, channel: 'wechat_pay' }));
      if (!valid.ok) throw new Error(valid.reason);
      return toEventRow(valid.value, 0, i * 2 + j, toDateTimeText(now.getTime()));
    }),
  );
  await insertRows(clickhouse, ident(database, 'payment_events').text, rows);
  writeFileSync(join(dir, 'day1.csv'), writeStatement('wechat', bill(day1), day1));
  writeFileSync(join(dir, 'day2.csv'), writeStatement('wechat', bill(day2), day2));
});
afterAll(async () => {
  await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await clickhouse.close();
});

const breaks = async () =>
  (
    await queryRows<Record<string, unknown>>(
      clickhouse,
      breaksQuery(database, { fromMs: day1.fromMs - 86_400_000, toMs: day2.toMs + 86_400_000, channel: 'wechat_pay', limit: 1000 }),
    )
  ).map((b) => `${b.kind} ${b.order_id}`);

const reconcileDue = async () => {
  const due = await periodsToReconcile(deps(), day1.fromMs - 7 * 86_400_000);
  for (const key of due) expect(await reconcilePeriod(deps(), key, { graceMs: GRACE, now })).toMatchObject({ status: 'reconciled' });
  return due.map((k) => k.period.fromMs);
};

describe("attempts at WeChat Pay's 00:00 Beijing cut", () => {
  test('the day 1 bill alone: the attempt the platform put on day 2 is not settled yet, the one it put on day 1 matches', async () => {
    expect(await importStatement(deps(), { path: join(dir, 'day1.csv'), format: 'wechat', maxBytes: 1 << 30 })).toMatchObject({
      status: 'imported',
      file: { period: day1 },
    });
    expect(await reconcileDue()).toEqual([day1.fromMs]);
    expect(await breaks()).toEqual(['recorded_not_settled o-before']);
  });

  test('once the day 2 bill is imported, the job reconciles day 2 and runs day 1 again: no break on either side of the cut', async () => {
    expect(await importStatement(deps(), { path: join(dir, 'day2.csv'), format: 'wechat', maxBytes: 1 << 30 })).toMatchObject({
      status: 'imported',
      file: { period: day2 },
    });
    expect((await reconcileDue()).sort()).toEqual([day1.fromMs, day2.fromMs]);
    expect(await breaks()).toEqual([]);
    // Both days are now settled: nothing is due again.
    expect(await reconcileDue()).toEqual([]);
  });

  test('outside the grace the cut is not bridged: both sides are breaks again', async () => {
    // Re-running day 1 with a grace of one second: the gaps of 15 s and 5 s at the cut are now outside it.
    await reconcilePeriod(deps(), { channel: 'wechat_pay', period: day1 }, { graceMs: 1000, now });
    expect((await breaks()).sort()).toEqual(['charged_not_recorded o-after', 'recorded_not_settled o-before']);
  });
});
