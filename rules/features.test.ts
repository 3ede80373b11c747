import { describe, expect, test } from 'vitest';
import type { PaymentEvent } from '../contract/index.ts';
import { createTrafficGenerator } from '../simulator/generate.ts';
import { scenarioNames } from '../simulator/scenarios.ts';
import { createRuleEvaluator } from './evaluate.ts';
import { computeFacts, computeFeature, timed, type TimedEvent } from './features.ts';
import { loadRuleSetOrThrow } from './load.ts';
import { entityKeyField, type EntityType, type Feature } from './schema.ts';

const T0 = Date.UTC(2026, 10, 25, 10, 0, 0);
let seq = 0;
/** A payment event `sec` seconds after T0. */
function ev(sec: number, fields: Partial<PaymentEvent> = {}): PaymentEvent {
  return {
    event_id: `e${++seq}`,
    occurred_at: new Date(T0 + sec * 1000).toISOString(),
    type: 'payment',
    status: 'succeeded',
    order_id: 'o1',
    attempt: 1,
    amount_minor: 100,
    currency: 'CNY',
    channel: 'alipay',
    merchant_id: 'm1',
    ip: '198.51.100.1',
    device_id: 'd1',
    user_id: 'u1',
    ...fields,
  };
}
const feature = (f: Partial<Feature>): Feature => ({ id: 'f', description: 'f', entity: 'ip', window: '10m', aggregation: 'count', ...f });
const value = (f: Partial<Feature>, events: PaymentEvent[], nowSec: number, id = '198.51.100.1') =>
  computeFeature(feature(f), id, timed(events), T0 + nowSec * 1000);

describe('computeFeature (reference semantics of features.json)', () => {
  test('count: events of the entity inside (now - window, now], each event_id once', () => {
    const a = ev(0);
    const events = [a, a, ev(10), ev(20, { ip: '203.0.113.9' }), ev(700), ev(-1)];
    // At 600 s: the event at 0 s is exactly one window old (excluded), 10 s is in, 700 s is in the future.
    expect(value({}, events, 600)).toBe(1);
    expect(value({}, events, 599)).toBe(2);
    expect(value({}, events, 30)).toBe(3);
  });

  test('filter: every listed field must match', () => {
    const events = [
      ev(1, { status: 'failed', failure_code: 'card_declined' }),
      ev(2, { status: 'failed', failure_code: 'network_error' }),
      ev(3, { type: 'refund' }),
    ];
    expect(value({ filter: { status: ['failed'] } }, events, 60)).toBe(2);
    expect(value({ filter: { status: ['failed'], failure_code: ['network_error', 'timeout'] } }, events, 60)).toBe(1);
    expect(value({ filter: { type: ['payment'] } }, events, 60)).toBe(2);
  });

  test('distinct_count with one field and with a composite key', () => {
    const events = [
      ev(1, { amount_minor: 101 }),
      ev(2, { amount_minor: 101, status: 'processing' }),
      ev(3, { amount_minor: 102, attempt: 2 }),
      ev(4, { order_id: 'o2', amount_minor: 103 }),
    ];
    expect(value({ aggregation: 'distinct_count', field: 'amount_minor' }, events, 60)).toBe(3);
    expect(value({ aggregation: 'distinct_count', field: ['order_id', 'attempt'] }, events, 60)).toBe(3);
    // Events without the field do not count as a value.
    expect(value({ aggregation: 'distinct_count', field: 'transaction_id' }, events, 60)).toBe(0);
  });

  test('sum', () => {
    expect(value({ aggregation: 'sum', field: 'amount_minor' }, [ev(1, { amount_minor: 250 }), ev(2, { amount_minor: 750 })], 60)).toBe(1000);
  });

  test('rate over keys: share of attempts with a failure, an attempt counted once', () => {
    const events = [
      ev(1, { status: 'processing' }),
      ev(2, { status: 'timeout', failure_code: 'timeout' }),
      ev(3, { status: 'succeeded', attempt: 2 }),
      ev(4, { status: 'succeeded', attempt: 3 }),
      ev(5, { status: 'failed', failure_code: 'network_error', attempt: 4 }),
    ];
    const rate = {
      aggregation: 'rate' as const,
      field: ['order_id', 'attempt'] as ('order_id' | 'attempt')[],
      filter: { status: ['succeeded', 'failed', 'timeout'] },
      numerator: { status: ['failed', 'timeout'] },
    };
    expect(value(rate, events, 60)).toBe(0.5);
    expect(value({ aggregation: 'rate', numerator: { status: ['processing'] } }, events, 60)).toBe(0.2);
    expect(value(rate, [], 60)).toBe(0);
  });

  test('followed_by: a failure of an attempt later reported succeeded', () => {
    const f = {
      entity: 'order' as const,
      window: '24h' as const,
      aggregation: 'followed_by' as const,
      field: 'attempt' as const,
      filter: { status: ['failed', 'timeout'] },
      followed_by: { status: ['succeeded'] },
    };
    const chargedButFailed = [ev(0, { status: 'processing' }), ev(30, { status: 'timeout', failure_code: 'timeout' }), ev(900, { status: 'succeeded' })];
    expect(value(f, chargedButFailed, 1000, 'o1')).toBe(1);
    // Succeeded first, a stale timeout afterwards: not this pattern.
    expect(value(f, [ev(0, { status: 'succeeded' }), ev(30, { status: 'timeout', failure_code: 'timeout' })], 1000, 'o1')).toBe(0);
    // A retry (another attempt) succeeding is normal.
    expect(value(f, [ev(0, { status: 'failed', failure_code: 'network_error' }), ev(60, { attempt: 2 })], 1000, 'o1')).toBe(0);
  });

  test('age: time since the first event of the oldest attempt whose latest status matches', () => {
    const f = { entity: 'order' as const, window: '24h' as const, aggregation: 'age' as const, field: 'attempt' as const, latest: { status: ['processing'] } };
    const stuck = [ev(0, { status: 'processing' }), ev(600, { status: 'processing', source: 'status_query' })];
    expect(value(f, stuck, 2700, 'o1')).toBe(2_700_000);
    expect(value(f, [...stuck, ev(900, { status: 'succeeded' })], 2700, 'o1')).toBe(0);
    expect(value(f, [], 2700, 'o1')).toBe(0);
  });

  test('group_by keeps the largest group: most attempts on one order', () => {
    const events = [ev(1, { attempt: 1 }), ev(2, { attempt: 2 }), ev(3, { attempt: 3 }), ev(4, { order_id: 'o2' }), ev(5, { order_id: 'o3' })];
    expect(value({ entity: 'user', window: '1m', aggregation: 'distinct_count', field: 'attempt', group_by: 'order_id' }, events, 30, 'u1')).toBe(3);
    expect(value({ entity: 'user', window: '1m', aggregation: 'distinct_count', field: 'attempt', group_by: 'order_id' }, events, 300, 'u1')).toBe(0);
  });
});

/**
 * The simulator's scenarios replayed through the reference features and the shipped rules,
 * evaluating each event's entities at the stream's event-time watermark, as the live stage
 * would. Every scenario must yield its rule on its entity, and benign traffic nothing.
 */
describe('simulated traffic through the shipped rules', () => {
  test('each scenario is caught on the right entity, and nothing else fires', async () => {
    const ruleSet = await loadRuleSetOrThrow();
    const evaluator = createRuleEvaluator(ruleSet);
    const generator = createTrafficGenerator({ seed: 11, rate: 100, durationMs: 40_000, startMs: T0, scenarios: scenarioNames });
    const events = [...generator].flatMap((i) => (i.event ? [i.event] : []));
    const entities: EntityType[] = ['ip', 'device', 'user', 'order'];
    const history = new Map<string, TimedEvent[]>();
    const channelFacts = new Map<string, Record<string, number>>();
    const fired = new Set<string>();
    let watermark = 0;
    for (const t of timed(events)) {
      watermark = Math.max(watermark, t.occurredAtMs);
      for (const entity of [...entities, 'channel' as const]) {
        const id = (t.event as Record<string, unknown>)[entityKeyField[entity]];
        if (typeof id !== 'string') continue;
        const key = `${entity}:${id}`;
        if (!history.has(key)) history.set(key, []);
        history.get(key)!.push(t);
      }
      // Channel features change slowly: once per second per channel is plenty here.
      const channelKey = `${t.event.channel}@${Math.floor(watermark / 1000)}`;
      if (!channelFacts.has(channelKey)) {
        channelFacts.set(
          channelKey,
          computeFacts(ruleSet.catalog, { entity: 'channel', entityId: t.event.channel }, history.get(`channel:${t.event.channel}`)!, watermark),
        );
      }
      for (const entity of entities) {
        const id = (t.event as Record<string, unknown>)[entityKeyField[entity]];
        if (typeof id !== 'string') continue;
        const own = computeFacts(ruleSet.catalog, { entity, entityId: id }, history.get(`${entity}:${id}`)!, watermark);
        for (const hit of await evaluator.evaluate(entity, id, { ...own, ...channelFacts.get(channelKey)! })) fired.add(`${hit.ruleId} ${entity}:${id}`);
      }
    }
    const expected = generator.labels().scenarios.map((l) => `${l.rule_id} ${l.entity_type}:${l.entity_id}`);
    expect(expected).toHaveLength(scenarioNames.length);
    expect([...fired].sort()).toEqual(expected.sort());
  }, 60_000);
});
