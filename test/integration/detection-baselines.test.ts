import { afterAll, describe, expect, test } from 'vitest';
import { validateEvent } from '../../contract/index.ts';
import { decideCases, type Case } from '../../detection/cases.ts';
import { createDetector } from '../../detection/detector.ts';
import { toDateTimeText, toEventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { loadRuleSetOrThrow } from '../../rules/index.ts';
import { insertRows } from '../../storage/clickhouse.ts';
import { createClickHouseHttp } from '../../storage/http.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { services } from './helpers.ts';

const s = services();
afterAll(() => s.cleanup());

describe('baselines from history reach the spike rule', () => {
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

    const run = async (baselines?: Map<string, Record<string, number>>) => {
      const opened: Case[] = [];
      const detector = createDetector({
        clickhouse: s.clickhouse,
        http: createClickHouseHttp(s.config),
        database,
        ruleSet: await loadRuleSetOrThrow(),
        logger: silentLogger,
        isLeader: () => true,
        baselines: baselines ? async () => baselines : undefined,
        cases: {
          async applyHits(hits, at) {
            const result = decideCases(hits, new Map(), at);
            opened.push(...result.opened);
            return result;
          },
        },
      });
      await detector.tick();
      return opened.filter((c) => c.rule_id === 'device_failure_spike').map((c) => ({ entity: c.entity_id, baseline: c.evidence.channel_technical_failure_rate_baseline }));
    };
    expect(await run()).toEqual([{ entity: 'dev-spike', baseline: 0.05 }]);
    expect(await run(new Map([['channel|flaky_pay', { channel_technical_failure_rate_baseline: 0.9 }]]))).toEqual([]);
    expect(await run(new Map([['channel|flaky_pay', { channel_technical_failure_rate_baseline: 0.1 }]]))).toEqual([{ entity: 'dev-spike', baseline: 0.1 }]);
  });
});
