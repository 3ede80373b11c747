import { afterAll, describe, expect, test } from 'vitest';
import { decodeEvent } from '../../contract/index.ts';
import { positionRange } from '../../detection/positions.ts';
import { entityEventsQuery, entityScreenQuery, screenBounds, screenHaving, screenPlan, toTimedEvent, type EventRowOut } from '../../detection/screen.ts';
import { anyMayHold } from '../../rules/evaluate.ts';
import { toEventRow, type EventRow } from '../../ingest/records.ts';
import { computeFeature, loadRuleSetOrThrow } from '../../rules/index.ts';
import type { Feature } from '../../rules/schema.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import { scenarioNames } from '../../simulator/scenarios.ts';
import { insertRows, queryRows } from '../../storage/clickhouse.ts';
import { createClickHouseHttp } from '../../storage/http.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident, toDateTimeText } from '../../storage/sql.ts';
import { silentLogger } from '../../log/index.ts';
import { services } from './helpers.ts';

const s = services();
afterAll(() => s.cleanup());

/**
 * Detection only computes exact features for entities the SQL screen lets through, so the screen
 * must never understate: for every entity on simulator traffic (attacks, retries, late callbacks,
 * refunds, and rows stored twice as a redelivery can leave them before a merge), an exact column
 * equals the reference computation and an upper bound is at least it.
 */
describe('SQL screen of touched entities', () => {
  test('exact columns equal the reference features and bounds contain them, for every entity', async () => {
    const database = s.config.clickhouseDatabase;
    await migrate(s.clickhouse, database, silentLogger);
    const ruleSet = await loadRuleSetOrThrow();
    const features = [...ruleSet.catalog.facts.values()].filter((f) => f.kind === 'feature').map((f) => f.def as Feature);
    const nowMs = Date.now();
    const generator = createTrafficGenerator({ seed: 5, rate: 100, durationMs: 120_000, startMs: nowMs - 150_000, scenarios: scenarioNames });
    const rows: EventRow[] = [];
    const ingestedAt = toDateTimeText(nowMs - 1000);
    for (let item = generator.next(); item; item = generator.next()) {
      const decoded = decodeEvent(item.value, 65_536);
      if (!decoded.ok) continue;
      rows.push(toEventRow(decoded.value, 0, rows.length, ingestedAt));
    }
    // Rows stored twice (a redelivery racing the dedup look-up, before ReplacingMergeTree merges).
    const twice = rows.filter((_, i) => i % 37 === 0);
    await insertRows(s.clickhouse, ident(database, 'payment_events').text, [...rows, ...twice]);
    const http = createClickHouseHttp(s.config);
    const position = positionRange(new Map(), new Map([[0, rows.length - 1]]));
    const sinceSec = Math.floor(nowMs / 1000) - 600;

    let compared = 0;
    let keptTotal = 0;
    for (const entity of ['ip', 'device', 'user', 'order'] as const) {
      const own = features.filter((f) => f.entity === entity);
      const columns = screenPlan(own);
      expect(columns.length).toBeGreaterThan(0);
      const screened = await queryRows<Record<string, string | number>>(s.clickhouse, entityScreenQuery(database, entity, columns, nowMs, sinceSec, position));
      const keyField = { ip: 'ip', device: 'device_id', user: 'user_id', order: 'order_id' }[entity] as keyof EventRow;
      const touched = new Set(rows.map((r) => r[keyField]).filter((v): v is string => typeof v === 'string' && v !== ''));
      // An entity whose events all lie outside every window (a callback dated after now) has no row: its features are all 0.
      const byKey = new Map(screened.map((r) => [String(r.entity_key), r]));
      expect([...byKey.keys()].filter((k) => !touched.has(k))).toEqual([]);

      // The HAVING form of the pre-check lets through every entity the pre-check keeps (and, on
      // this traffic with its attacks, some: otherwise this would prove nothing).
      // Live detection screens only the rules on events (rules on statement breaks are evaluated
      // when breaks are found: detection/prepared.ts).
      const rules = ruleSet.rules.filter((r) => r.enabled && r.entity === entity && r.source === 'events');
      const kept = screened
        .filter((r) => anyMayHold(rules, screenBounds(columns, r, nowMs)))
        .map((r) => String(r.entity_key))
        .sort();
      const having = await queryRows<{ entity_key: string }>(
        s.clickhouse,
        entityScreenQuery(database, entity, columns, nowMs, sinceSec, position, undefined, screenHaving(rules, columns, nowMs)),
      );
      const returned = new Set(having.map((r) => String(r.entity_key)));
      expect(kept.filter((k) => !returned.has(k))).toEqual([]);
      expect(returned.size).toBeLessThan(screened.length / 4);
      keptTotal += kept.length;

      const events = await http.query<EventRowOut>(
        entityEventsQuery(database, entity, Math.floor((nowMs - 86_400_000) / 1000)),
        {
          name: 'entity_ids',
          structure: 'id String',
          rows: [...touched].map((id) => ({ id })),
        },
        `${entity} events`,
      );
      const byEntity = new Map<string, ReturnType<typeof toTimedEvent>[]>();
      for (const r of events) {
        const id = String(r[keyField as keyof EventRowOut]);
        byEntity.set(id, [...(byEntity.get(id) ?? []), toTimedEvent(r)]);
      }
      for (const id of touched) {
        const row = byKey.get(id);
        const bounds = row ? screenBounds(columns, row, nowMs) : null;
        for (const { feature, kind } of columns) {
          const reference = computeFeature(feature, id, byEntity.get(id) ?? [], nowMs);
          const b = bounds ? bounds.get(feature.id)! : { value: 0 };
          if (kind === 'exact' || !bounds)
            expect({ entity, id, feature: feature.id, value: 'value' in b ? b.value : b }).toEqual({ entity, id, feature: feature.id, value: reference });
          else
            expect({ entity, id, feature: feature.id, within: 'lo' in b && b.lo <= reference && reference <= b.hi }).toEqual({
              entity,
              id,
              feature: feature.id,
              within: true,
            });
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(10_000);
    expect(keptTotal).toBeGreaterThan(0);
  });

  test('an ordinary retry is not a failed-then-succeeded candidate; the same attempt reported both ways is', async () => {
    const database = s.config.clickhouseDatabase;
    await migrate(s.clickhouse, database, silentLogger);
    const ruleSet = await loadRuleSetOrThrow();
    const feature = ruleSet.catalog.facts.get('order_failed_then_succeeded_24h')!.def as Feature;
    const nowMs = Date.now();
    const ingestedAt = toDateTimeText(nowMs - 1000);
    let offset = 1_000_000;
    const report = (order: string, attempt: number, status: 'failed' | 'succeeded', at: number): EventRow => {
      const decoded = decodeEvent(
        Buffer.from(
          JSON.stringify({
            event_id: `${order}-${attempt}-${status}`,
            occurred_at: new Date(at).toISOString(),
            type: 'payment',
            status,
            ...(status === 'failed' ? { failure_code: 'timeout' } : { transaction_id: `${order}-tx${attempt}` }),
            order_id: order,
            attempt,
            amount_minor: 500,
            currency: 'CNY',
            channel: 'card',
            merchant_id: 'm-retry',
          }),
        ),
        65_536,
      );
      if (!decoded.ok) throw new Error(decoded.reason);
      return toEventRow(decoded.value, 1, offset++, ingestedAt);
    };
    const first = offset;
    await insertRows(s.clickhouse, ident(database, 'payment_events').text, [
      report('retry-ok', 1, 'failed', nowMs - 60_000),
      report('retry-ok', 2, 'succeeded', nowMs - 50_000),
      report('charged-anyway', 1, 'failed', nowMs - 60_000),
      report('charged-anyway', 1, 'succeeded', nowMs - 30_000),
    ]);
    const columns = screenPlan([feature]);
    const position = positionRange(new Map([[1, first - 1]]), new Map([[1, offset - 1]]));
    const rows = await queryRows<Record<string, string | number>>(
      s.clickhouse,
      entityScreenQuery(database, 'order', columns, nowMs, Math.floor(nowMs / 1000) - 600, position),
    );
    const bound = Object.fromEntries(rows.map((r) => [String(r.entity_key), Number(r[columns[0]!.column])]));
    expect(bound).toEqual({ 'retry-ok': 0, 'charged-anyway': 1 });
  });
});
