import { describe, expect, test } from 'vitest';
import type { Feature } from '../rules/schema.ts';
import { loadRuleSetOrThrow } from '../rules/index.ts';
import { ageThresholds, growParked, hotKeysQuery, mayMatch, newRowsQuery, parkable, parkedBounds, parkedFrom, screenPlan, stuckOrdersQuery, volumeFloor } from './source.ts';
import { anyMayHold } from '../rules/evaluate.ts';

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

describe('parked keys: bounds on a screened key from the rows since', () => {
  const attempts = { id: 'ip_attempts_10m', entity: 'ip', window: '10m', aggregation: 'distinct_count', field: ['order_id', 'attempt'], filter: { type: ['payment'] } } as unknown as Feature;
  const rate = {
    id: 'ip_failure_rate_10m',
    entity: 'ip',
    window: '10m',
    aggregation: 'rate',
    field: ['order_id', 'attempt'],
    filter: { type: ['payment'], status: ['succeeded', 'failed', 'timeout'] },
    numerator: { status: ['failed', 'timeout'] },
  } as unknown as Feature;
  const columns = screenPlan([attempts, rate]);
  const rules = [{ id: 'r', entity: 'ip', conditions: { all: [{ fact: 'ip_attempts_10m', operator: 'greaterThanInclusive', value: 15 }, { fact: 'ip_failure_rate_10m', operator: 'greaterThanInclusive', value: 0.5 }] } }] as never;
  const row = (status: string, type = 'payment') => ({ ip: '203.0.113.9', type, status, failure_code: null });

  test('mayMatch rules a row out only on a field it has', () => {
    expect(mayMatch(row('failed'), { status: ['failed'] })).toBe(true);
    expect(mayMatch(row('succeeded'), { status: ['failed'] })).toBe(false);
    expect(mayMatch(row('failed', 'refund'), { type: ['payment'] })).toBe(false);
    expect(mayMatch(row('failed'), { failure_code: ['timeout'] })).toBe(false);
    // A field the row lacks may match.
    expect(mayMatch(row('failed'), { source: ['callback'] })).toBe(true);
    expect(mayMatch({ ...row('failed'), source: 'api' }, { source: ['callback'] })).toBe(false);
  });

  test('a busy address far below the failure rate stays parked through successes and is released by enough failures', () => {
    expect(parkable(columns)).toBe(true);
    // 40 attempts, 2 failed; 36 attempts still in every window until the horizon; no row after now.
    const p = parkedFrom(columns, { entity_key: '203.0.113.9', f0: 40, f1_n: 2, f1_d: 40, f1_dh: 36, fut: 0 }, 0, 30_000);
    expect(p.until).toBe(30_000);
    expect(anyMayHold(rules, parkedBounds(columns, p))).toBe(false);
    for (let i = 0; i < 50; i++) growParked(columns, p, row('succeeded'));
    growParked(columns, p, row('failed', 'refund'));
    // Successes and refunds add attempts but no failure: the rate bound stays 2/36.
    expect(parkedBounds(columns, p).get('ip_failure_rate_10m')).toEqual({ lo: 0, hi: 2 / 36 });
    expect(parkedBounds(columns, p).get('ip_attempts_10m')).toEqual({ lo: 0, hi: 40 + 50 });
    expect(anyMayHold(rules, parkedBounds(columns, p))).toBe(false);
    for (let i = 0; i < 15; i++) growParked(columns, p, row('failed'));
    expect(anyMayHold(rules, parkedBounds(columns, p))).toBe(false);
    growParked(columns, p, row('timeout'));
    // 18 failures against at least 36 attempts: the rule may hold again.
    expect(parkedBounds(columns, p).get('ip_failure_rate_10m')).toEqual({ lo: 0, hi: 0.5 });
    expect(anyMayHold(rules, parkedBounds(columns, p))).toBe(true);
  });

  test('rows after the screen count from the start, and no attempt kept until the horizon bounds the rate by 1', () => {
    const p = parkedFrom(columns, { entity_key: 'x', f0: 40, f1_n: 2, f1_d: 40, f1_dh: 0, fut: 3 }, 0, 30_000);
    expect(parkedBounds(columns, p).get('ip_attempts_10m')).toEqual({ lo: 0, hi: 43 });
    expect(parkedBounds(columns, p).get('ip_failure_rate_10m')).toEqual({ lo: 0, hi: 1 });
    expect(anyMayHold(rules, parkedBounds(columns, p))).toBe(true);
  });

  test('ages grow with time, not rows: a type with one is not parked', () => {
    expect(parkable(screenPlan([{ ...age, field: ['order_id', 'attempt'] } as Feature, count]))).toBe(false);
    expect(parkable(screenPlan([count]))).toBe(true);
  });
});
