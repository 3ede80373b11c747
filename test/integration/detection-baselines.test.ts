import { afterAll, describe, expect, test } from 'vitest';
import { validateEvent } from '../../contract/index.ts';
import { createCaseBook } from '../../cases/index.ts';
import { createDetector } from '../../detection/detector.ts';
import { toEventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { loadRuleSetOrThrow } from '../../rules/index.ts';
import { insertRows } from '../../storage/clickhouse.ts';
import { createClickHouseHttp } from '../../storage/http.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident, toDateTimeText } from '../../storage/sql.ts';
import { services } from './helpers.ts';
import { run as runReconcile } from '../../analytics/reconcile.ts';

const s = services();
afterAll(() => s.cleanup());

/** One tick of a fresh detector (as after a restart) with the shipped rules; returns the cases it opened. */
async function detectOnce(baselines?: Map<string, Record<string, number>>) {
  const book = createCaseBook();
  const detector = createDetector({
    clickhouse: s.clickhouse,
    http: createClickHouseHttp(s.config),
    database: s.config.clickhouseDatabase,
    ruleSet: await loadRuleSetOrThrow(),
    logger: silentLogger,
    isLeader: () => true,
    baselines: baselines ? async () => baselines : undefined,
    cases: book,
  });
  await detector.tick();
  return book.opened;
}

describe('analytics results reach the rules', () => {
  test('a device failing 10 of 10 attempts is a spike against the default 5% baseline, not against a channel whose baseline is 90%', async () => {
    const database = s.config.clickhouseDatabase;
    await migrate(s.clickhouse, database, silentLogger);
    const nowMs = Date.now();
    const rows = Array.from({ length: 10 }, (_, i) => {
      const checked = validateEvent({
        event_id: `spike-${i}`,
        occurred_at: new Date(nowMs - 60_000 + i * 1000).toISOString(),
        type: 'payment',
        status: 'failed',
        failure_code: 'network_error',
        order_id: `spike-order-${i % 5}`,
        attempt: 1 + Math.floor(i / 5),
        amount_minor: 5000,
        currency: 'CNY',
        channel: 'flaky_pay',
        merchant_id: 'm-1',
        user_id: `u-${i % 5}`,
        device_id: 'dev-spike',
        ip: `198.51.100.${i}`,
      });
      if (!checked.ok) throw new Error(checked.reason);
      return toEventRow(checked.value, 0, i, toDateTimeText(nowMs - 2000));
    });
    await insertRows(s.clickhouse, ident(database, 'payment_events').text, rows);

    const run = async (baselines?: Map<string, Record<string, number>>) =>
      (await detectOnce(baselines))
        .filter((c) => c.rule_id === 'device_failure_spike')
        .map((c) => ({ entity: c.entity_id, baseline: c.evidence.channel_technical_failure_rate_baseline }));
    expect(await run()).toEqual([{ entity: 'dev-spike', baseline: 0.05 }]);
    expect(await run(new Map([['channel|flaky_pay', { channel_technical_failure_rate_baseline: 0.9 }]]))).toEqual([]);
    expect(await run(new Map([['channel|flaky_pay', { channel_technical_failure_rate_baseline: 0.1 }]]))).toEqual([{ entity: 'dev-spike', baseline: 0.1 }]);
  });

  const title1 =
    'an order whose late callback the reconcile job found is evaluated even when ' +
    'its rows are older than the detector looks back: charged_but_failed opens';
  test(title1, async () => {
    const database = s.config.clickhouseDatabase;
    const nowMs = Date.now();
    const event = (i: number, status: string, at: number) => {
      const checked = validateEvent({
        event_id: `late-${i}`,
        occurred_at: new Date(at).toISOString(),
        type: 'payment',
        status,
        ...(status === 'failed' ? { failure_code: 'timeout' } : {}),
        order_id: 'late-order',
        attempt: 1,
        ...(status === 'succeeded' ? { transaction_id: 'tx-late' } : {}),
        amount_minor: 9900,
        currency: 'CNY',
        channel: 'alipay',
        merchant_id: 'm-1',
        user_id: 'u-late',
      });
      if (!checked.ok) throw new Error(checked.reason);
      // Written an hour ago: no detector started now looks back that far for new rows.
      return toEventRow(checked.value, 1, i, toDateTimeText(nowMs - 3_600_000));
    };
    await insertRows(s.clickhouse, ident(database, 'payment_events').text, [
      event(0, 'processing', nowMs - 3_700_000),
      event(1, 'failed', nowMs - 3_650_000),
      event(2, 'succeeded', nowMs - 3_610_000),
    ]);
    const tick = async () => (await detectOnce()).filter((c) => c.entity_id === 'late-order').map((c) => c.rule_id);
    expect(await tick()).toEqual([]);
    const run = await runReconcile({ clickhouse: s.clickhouse, database, logger: silentLogger }, new Date());
    expect(run.status).toBe('ok');
    expect(await tick()).toEqual(['charged_but_failed']);
  });

  const title2 =
    'an attempt that becomes stuck while no event arrives opens stuck_processing once, when it crosses the threshold; one that got its result does not';
  test(title2, async () => {
    const database = s.config.clickhouseDatabase;
    const startMs = Date.now();
    const event = (id: string, order: string, status: string, at: number) => {
      const checked = validateEvent({
        event_id: id,
        occurred_at: new Date(at).toISOString(),
        type: 'payment',
        status,
        order_id: order,
        attempt: 1,
        ...(status === 'succeeded' ? { transaction_id: `tx-${order}` } : {}),
        amount_minor: 12000,
        currency: 'CNY',
        channel: 'bank_transfer',
        merchant_id: 'm-1',
        user_id: `u-${order}`,
      });
      if (!checked.ok) throw new Error(checked.reason);
      return toEventRow(checked.value, 2, 0, toDateTimeText(at));
    };
    await insertRows(s.clickhouse, ident(database, 'payment_events').text, [
      event('hang-1', 'hang-order', 'processing', startMs - 29 * 60_000),
      event('done-1', 'done-order', 'processing', startMs - 29 * 60_000),
      event('done-2', 'done-order', 'succeeded', startMs - 28 * 60_000),
    ]);
    // One detector on a clock that moves; the rows are seen as new on its first tick, before
    // they are stuck (the rule's 30 minutes), so only the scan of attempts crossing the threshold can find it.
    let clock = startMs;
    const book = createCaseBook();
    const detector = createDetector({
      clickhouse: s.clickhouse,
      http: createClickHouseHttp(s.config),
      database,
      ruleSet: await loadRuleSetOrThrow(),
      logger: silentLogger,
      isLeader: () => true,
      cases: book,
      now: () => clock,
    });
    const stuckAt = async (ms: number) => {
      clock = startMs + ms;
      await detector.tick();
      return book.opened.filter((c) => c.rule_id === 'stuck_processing').map((c) => c.entity_id);
    };
    expect(await stuckAt(0)).toEqual([]);
    expect(await stuckAt(30_000)).toEqual([]);
    expect(await stuckAt(75_000)).toEqual(['hang-order']);
    const hits = detector.stats().hits;
    // Later scans look only at attempts crossing since: the same attempt is not hit again.
    expect(await stuckAt(90_000)).toEqual(['hang-order']);
    expect(detector.stats().hits).toBe(hits);
  });
});
