import { describe, expect, test } from 'vitest';
import type { Feature } from '../rules/schema.ts';
import { loadRuleSetOrThrow } from '../rules/index.ts';
import { hotKeysQuery, volumeFloor } from './hot-sets.ts';

describe('volumeFloor: the fewest matching events an entity needs for one of its rules to hold', () => {
  const title =
    'the shipped rules: 15 payments for an IP, 5 technical failures for a device, 5 payments for a user; none for an order (a stuck attempt is one event)';
  test(title, async () => {
    const ruleSet = await loadRuleSetOrThrow();
    const features = [...ruleSet.catalog.facts.values()].filter((x) => x.kind === 'feature').map((x) => x.def as Feature);
    const floor = (entity: string) =>
      volumeFloor(
        ruleSet.rules.filter((r) => r.enabled && r.entity === entity),
        features.filter((f) => f.entity === entity),
      );
    expect({ ip: floor('ip'), device: floor('device'), user: floor('user'), order: floor('order') }).toEqual({
      ip: { feature: 'ip_attempts_10m', floor: 15, windowMs: 600_000, filter: { type: ['payment'] } },
      device: {
        feature: 'device_technical_failures_15m',
        floor: 5,
        windowMs: 900_000,
        filter: { type: ['payment'], failure_code: ['network_error', 'system_error', 'timeout'] },
      },
      user: { feature: 'user_max_attempts_per_order_1m', floor: 5, windowMs: 60_000, filter: { type: ['payment'] } },
      order: null,
    });
  });

  test('follows the rules: a feature every rule needs; none when a rule needs no counted event', async () => {
    const ruleSet = await loadRuleSetOrThrow();
    const features = [...ruleSet.catalog.facts.values()].filter((x) => x.kind === 'feature' && x.entity === 'ip').map((x) => x.def as Feature);
    const rule = (conditions: unknown) => ({ ...ruleSet.rules.find((r) => r.entity === 'ip')!, conditions }) as (typeof ruleSet.rules)[number];
    const atLeast = (fact: string, value: number) => ({ fact, operator: 'greaterThanInclusive', value });
    expect(volumeFloor([rule({ all: [atLeast('ip_attempts_10m', 40), atLeast('ip_distinct_users_10m', 9)] })], features)).toMatchObject({
      feature: 'ip_attempts_10m',
      floor: 40,
    });
    expect(volumeFloor([rule({ all: [{ fact: 'ip_attempts_10m', operator: 'greaterThan', value: 20 }] })], features)).toMatchObject({ floor: 21 });
    // Two rules: only a feature both need gives a floor, at the lower of their thresholds.
    expect(
      volumeFloor(
        [rule({ all: [atLeast('ip_attempts_10m', 40)] }), rule({ all: [atLeast('ip_attempts_10m', 9), atLeast('ip_distinct_users_10m', 30)] })],
        features,
      ),
    ).toMatchObject({ feature: 'ip_attempts_10m', floor: 9 });
    expect(volumeFloor([rule({ all: [atLeast('ip_attempts_10m', 40)] }), rule({ all: [atLeast('ip_distinct_users_10m', 30)] })], features)).toBeNull();
    expect(
      volumeFloor(
        [rule({ all: [atLeast('ip_attempts_10m', 40)] }), rule({ all: [{ fact: 'ip_failure_rate_10m', operator: 'greaterThan', value: 0.9 }] })],
        features,
      ),
    ).toBeNull();
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

describe('hot sets: which touched keys a live tick screens, fed with new rows', async () => {
  const { createHotSets } = await import('./hot-sets.ts');
  const { prepare } = await import('./prepared.ts');
  const { silentLogger } = await import('../log/index.ts');
  const ruleSet = await loadRuleSetOrThrow();
  const now = Date.UTC(2026, 10, 25, 10, 0, 0);
  /** A new row (positions.ts newKeysQuery) of an IP. */
  const row = (ip: string, type = 'payment') => ({
    ip,
    device_id: null,
    user_id: null,
    order_id: 'o',
    type,
    status: 'failed',
    failure_code: null,
    source: null,
  });
  const rows = (ip: string, n: number, type?: string) => Array.from({ length: n }, () => row(ip, type));
  const notParked = () => undefined;

  /** Hot sets for the shipped rules whose computation returns `inSet` IPs (and no other keys) when `release` is called. */
  function setup(inSet: string[]) {
    let rules = prepare(ruleSet);
    const reads: { entity: string; fromSec: number; atLeast: number; threads: number }[] = [];
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const hot = createHotSets({
      readKeys: async (entity, fromSec, atLeast, _filter, threads) => {
        reads.push({ entity, fromSec, atLeast, threads });
        await released;
        return entity === 'ip' ? inSet : [];
      },
      logger: silentLogger,
      current: () => rules,
    });
    return { hot, reads, release, rules: () => rules, swapRules: () => (rules = prepare(ruleSet)) };
  }

  test('without a set every touched entity is screened; the first one is computed on the first tick, rows or not, on two threads', async () => {
    const { hot, reads, release, rules } = setup(['10.0.0.1']);
    expect(hot.ready()).toBe(false);
    expect(hot.counting()).toBe(false);
    expect(hot.nearFloor(rows('10.0.0.1', 20), rules().floors, notParked)).toBeNull();
    expect(hot.due(now, false)).toBe(true);
    const done = hot.refresh(now);
    expect(hot.due(now + 60_000, true)).toBe(false);
    expect(hot.counting()).toBe(true);
    release();
    await done;
    expect(hot.ready()).toBe(true);
    // Shortest window first; each key needs half its floor: 15 payments in 10 minutes for an IP.
    expect(reads.map((r) => r.entity)).toEqual(['user', 'ip', 'device']);
    expect(reads.find((r) => r.entity === 'ip')).toEqual({ entity: 'ip', fromSec: Math.floor((now - 600_000) / 1000) - 1, atLeast: 8, threads: 2 });
    // A later one: every 10 s while rows come in, on one thread.
    expect(hot.due(now + 9_999, true)).toBe(false);
    expect(hot.due(now + 10_000, false)).toBe(false);
    expect(hot.due(now + 10_000, true)).toBe(true);
    await hot.refresh(now + 10_000);
    expect(reads.at(-1)).toMatchObject({ threads: 1 });
  });

  test('a key in the set is screened when touched; one outside it only once enough matching rows came since', async () => {
    const { hot, release, rules } = setup(['10.0.0.1']);
    const done = hot.refresh(now);
    // Rows taken while the set is computed count towards it.
    hot.count(rows('10.0.0.2', 4), rules().floors);
    release();
    await done;
    hot.count([...rows('10.0.0.2', 3), ...rows('10.0.0.2', 5, 'refund')], rules().floors);
    // 7 payments since: with at most 7 before, 14 is below the floor of 15.
    expect(hot.nearFloor([row('10.0.0.1'), row('10.0.0.2'), row('10.0.0.3'), row('10.0.0.1')], rules().floors, notParked)).toEqual({
      ids: new Map([
        ['ip', ['10.0.0.1']],
        ['device', []],
        ['user', []],
      ]),
      near: 1,
      skipped: 0,
    });
    hot.count(rows('10.0.0.2', 1), rules().floors);
    expect(hot.nearFloor([row('10.0.0.2')], rules().floors, notParked)?.ids.get('ip')).toEqual(['10.0.0.2']);
    // Parked keys are left out and counted as skipped.
    const parked = hot.nearFloor([row('10.0.0.1'), row('10.0.0.2')], rules().floors, (e) => (e === 'ip' ? (k) => k === '10.0.0.1' : undefined));
    expect(parked).toMatchObject({ near: 1, skipped: 1 });
    expect(parked?.ids.get('ip')).toEqual(['10.0.0.2']);
  });

  test('a set is used only for the rules it was computed for, and only by the leadership that started it', async () => {
    const a = setup(['10.0.0.1']);
    a.release();
    await a.hot.refresh(now);
    a.swapRules();
    expect(a.hot.ready()).toBe(false);
    a.hot.dropStale();
    expect(a.hot.nearFloor(rows('10.0.0.1', 1), a.rules().floors, notParked)).toBeNull();

    const b = setup(['10.0.0.1']);
    const done = b.hot.refresh(now);
    b.hot.reset();
    b.release();
    await done;
    expect(b.hot.ready()).toBe(false);
    expect(b.hot.counting()).toBe(false);
    expect(b.hot.due(now + 1_000, false)).toBe(false);
    expect(b.hot.due(now + 10_000, false)).toBe(true);
  });

  test('past 200,000 counted keys the set is dropped: every touched entity is screened until the next one', async () => {
    const { hot, release, rules } = setup(['10.0.0.1']);
    release();
    await hot.refresh(now);
    hot.count(
      Array.from({ length: 200_001 }, (_, i) => row(`10.1.${i}`)),
      rules().floors,
    );
    expect(hot.ready()).toBe(false);
    expect(hot.counting()).toBe(false);
    expect(hot.nearFloor(rows('10.0.0.1', 1), rules().floors, notParked)).toBeNull();
  });
});
