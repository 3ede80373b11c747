import { describe, expect, test } from 'vitest';
import type { Feature } from '../rules/schema.ts';
import { loadRuleSetOrThrow } from '../rules/index.ts';
import { ageThresholds, hotKeysQuery, newRowsQuery, stuckOrdersQuery, volumeFloor } from './source.ts';

const age = { id: 'order_processing_age_24h', entity: 'order', window: '24h', aggregation: 'age' } as unknown as Feature;
const count = { id: 'order_risk_blocked_24h', entity: 'order', window: '24h', aggregation: 'count' } as unknown as Feature;

describe('ageThresholds: the ages at which the stuck scan looks for attempts crossing them', () => {
  test('olderThan durations and numeric lower limits on age facts, nested anywhere, once each and in order', () => {
    const rules = [
      { conditions: { all: [{ fact: 'order_processing_age_24h', operator: 'olderThan', value: '30m' }] } },
      { conditions: { any: [{ all: [{ fact: 'order_processing_age_24h', operator: 'greaterThan', value: 900_000 }] }, { fact: 'order_risk_blocked_24h', operator: 'greaterThan', value: 5 }] } },
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
    const q = stuckOrdersQuery('db', 1000, [[500, 2000], [3000, 3010]]);
    expect(q).toContain("occurred_at >= toDateTime(1000, 'UTC') AND occurred_at < toDateTime(2000, 'UTC')");
    expect(q).toContain("occurred_at >= toDateTime(3000, 'UTC') AND occurred_at < toDateTime(3010, 'UTC')");
    expect(q).toContain("began < toDateTime(3010, 'UTC')");
    expect(stuckOrdersQuery('db', 1000, [])).toContain('WHERE (0)');
  });
});

describe('newRowsQuery', () => {
  test('takes, per partition, the offsets above the last seen one and every partition not seen, without NOT IN', () => {
    const q = newRowsQuery('db', 100, new Map([[3, 70], [0, 41]]));
    expect(q).toContain('(kafka_partition = 0 AND kafka_offset > 41) OR (kafka_partition = 3 AND kafka_offset > 70) OR kafka_partition < 0 OR (kafka_partition > 0 AND kafka_partition < 3) OR kafka_partition > 3');
    expect(q).not.toContain('NOT IN');
    expect(newRowsQuery('db', 100, new Map())).toContain('AND (1)');
  });
});

describe('volumeFloor: the fewest matching events an entity needs for one of its rules to hold', () => {
  test('the shipped rules: 15 payments for an IP, 5 technical failures for a device, 5 payments for a user; none for an order (a stuck attempt is one event)', async () => {
    const ruleSet = await loadRuleSetOrThrow();
    const features = [...ruleSet.catalog.facts.values()].filter((x) => x.kind === 'feature').map((x) => x.def as Feature);
    const floor = (entity: string) =>
      volumeFloor(
        ruleSet.rules.filter((r) => r.enabled && r.entity === entity),
        features.filter((f) => f.entity === entity),
      );
    expect({ ip: floor('ip'), device: floor('device'), user: floor('user'), order: floor('order') }).toEqual({
      ip: { feature: 'ip_attempts_10m', floor: 15, windowMs: 600_000, filter: { type: ['payment'] } },
      device: { feature: 'device_technical_failures_15m', floor: 5, windowMs: 900_000, filter: { type: ['payment'], failure_code: ['network_error', 'system_error', 'timeout'] } },
      user: { feature: 'user_max_attempts_per_order_1m', floor: 5, windowMs: 60_000, filter: { type: ['payment'] } },
      order: null,
    });
  });

  test('follows the rules: a feature every rule needs; none when a rule needs no counted event', async () => {
    const ruleSet = await loadRuleSetOrThrow();
    const features = [...ruleSet.catalog.facts.values()].filter((x) => x.kind === 'feature' && x.entity === 'ip').map((x) => x.def as Feature);
    const rule = (conditions: unknown) => ({ ...ruleSet.rules.find((r) => r.entity === 'ip')!, conditions }) as (typeof ruleSet.rules)[number];
    const atLeast = (fact: string, value: number) => ({ fact, operator: 'greaterThanInclusive', value });
    expect(volumeFloor([rule({ all: [atLeast('ip_attempts_10m', 40), atLeast('ip_distinct_users_10m', 9)] })], features)).toMatchObject({ feature: 'ip_attempts_10m', floor: 40 });
    expect(volumeFloor([rule({ all: [{ fact: 'ip_attempts_10m', operator: 'greaterThan', value: 20 }] })], features)).toMatchObject({ floor: 21 });
    // Two rules: only a feature both need gives a floor, at the lower of their thresholds.
    expect(volumeFloor([rule({ all: [atLeast('ip_attempts_10m', 40)] }), rule({ all: [atLeast('ip_attempts_10m', 9), atLeast('ip_distinct_users_10m', 30)] })], features)).toMatchObject({ feature: 'ip_attempts_10m', floor: 9 });
    expect(volumeFloor([rule({ all: [atLeast('ip_attempts_10m', 40)] }), rule({ all: [atLeast('ip_distinct_users_10m', 30)] })], features)).toBeNull();
    expect(volumeFloor([rule({ all: [atLeast('ip_attempts_10m', 40)] }), rule({ all: [{ fact: 'ip_failure_rate_10m', operator: 'greaterThan', value: 0.9 }] })], features)).toBeNull();
    expect(volumeFloor([rule({ all: [{ fact: 'ip_attempts_10m', operator: 'lessThan', value: 3 }] })], features)).toBeNull();
    expect(volumeFloor([rule({ all: [atLeast('ip_attempts_10m', 2)] })], features)).toBeNull();
    expect(volumeFloor([], features)).toBeNull();
  });
});

describe('hotKeysQuery', () => {
  test("counts every stored row of the window matching the floor feature's filter, whatever its position", () => {
    expect(hotKeysQuery('db', 'device', 1000, 3, { type: ['payment'], failure_code: ['timeout'] })).toBe(
      "SELECT device_id AS k FROM db.payment_events WHERE occurred_at >= toDateTime(1000, 'UTC') AND type IN ('payment') AND failure_code IN ('timeout') AND device_id != '' GROUP BY k HAVING count() >= 3 SETTINGS max_threads = 1",
    );
    expect(hotKeysQuery('db', 'ip', 1000, 8)).toContain("toDateTime(1000, 'UTC') AND 1 AND ip != ''");
  });
});
