import { describe, expect, test } from 'vitest';
import type { Feature } from '../rules/schema.ts';
import { ageThresholds, stuckOrdersQuery } from './order-rechecks.ts';

const age = { id: 'order_processing_age_24h', entity: 'order', window: '24h', aggregation: 'age' } as unknown as Feature;
const count = { id: 'order_risk_blocked_24h', entity: 'order', window: '24h', aggregation: 'count' } as unknown as Feature;

describe('ageThresholds: the ages at which the stuck scan looks for attempts crossing them', () => {
  test('olderThan durations and numeric lower limits on age facts, nested anywhere, once each and in order', () => {
    const rules = [
      { conditions: { all: [{ fact: 'order_processing_age_24h', operator: 'olderThan', value: '30m' }] } },
      {
        conditions: {
          any: [
            { all: [{ fact: 'order_processing_age_24h', operator: 'greaterThan', value: 900_000 }] },
            { fact: 'order_risk_blocked_24h', operator: 'greaterThan', value: 5 },
          ],
        },
      },
      { conditions: { all: [{ fact: 'order_processing_age_24h', operator: 'olderThan', value: '30m' }] } },
    ];
    expect(ageThresholds(rules, [age, count])).toEqual([900_000, 1_800_000]);
  });

  test('no age fact, or an upper limit only, gives no threshold', () => {
    expect(ageThresholds([{ conditions: { all: [{ fact: 'order_risk_blocked_24h', operator: 'greaterThan', value: 1 }] } }], [age, count])).toEqual([]);
    expect(ageThresholds([{ conditions: { all: [{ fact: 'order_processing_age_24h', operator: 'lessThan', value: 60_000 }] } }], [age])).toEqual([]);
  });
});

describe('stuckOrdersQuery', () => {
  test('reads processing rows only inside the slices, never before the window, and no rows at all without a slice', () => {
    const q = stuckOrdersQuery('db', 1000, [
      [500, 2000],
      [3000, 3010],
    ]);
    expect(q).toContain("occurred_at >= toDateTime(1000, 'UTC') AND occurred_at < toDateTime(2000, 'UTC')");
    expect(q).toContain("occurred_at >= toDateTime(3000, 'UTC') AND occurred_at < toDateTime(3010, 'UTC')");
    expect(q).toContain("began < toDateTime(3010, 'UTC')");
    expect(stuckOrdersQuery('db', 1000, [])).toContain('WHERE (0)');
  });
});
