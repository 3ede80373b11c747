import { describe, expect, test } from 'vitest';
import type { Feature } from '../rules/schema.ts';
import { anyMayHold } from '../rules/evaluate.ts';
import { growParked, parkable, parkedBounds, parkedFrom } from './parked-keys.ts';
import { mayMatch } from './positions.ts';
import { screenPlan } from './screen.ts';

const age = { id: 'order_processing_age_24h', entity: 'order', window: '24h', aggregation: 'age' } as unknown as Feature;
const count = { id: 'order_risk_blocked_24h', entity: 'order', window: '24h', aggregation: 'count' } as unknown as Feature;

describe('parked keys: bounds on a screened key from the rows since', () => {
  const attempts = {
    id: 'ip_attempts_10m',
    entity: 'ip',
    window: '10m',
    aggregation: 'distinct_count',
    field: ['order_id', 'attempt'],
    filter: { type: ['payment'] },
  } as unknown as Feature;
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
  const rules = [
    {
      id: 'r',
      entity: 'ip',
      conditions: {
        all: [
          { fact: 'ip_attempts_10m', operator: 'greaterThanInclusive', value: 15 },
          { fact: 'ip_failure_rate_10m', operator: 'greaterThanInclusive', value: 0.5 },
        ],
      },
    },
  ] as never;
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

describe('parked keys of a live detector, fed with screen rows and new rows', async () => {
  const { createParkedKeys } = await import('./parked-keys.ts');
  const { prepare } = await import('./prepared.ts');
  const { loadRuleSetOrThrow } = await import('../rules/index.ts');
  const ruleSet = await loadRuleSetOrThrow();
  const now = Date.UTC(2026, 10, 25, 10, 0, 0);

  function setup() {
    let rules = prepare(ruleSet);
    const parked = createParkedKeys({ current: () => rules });
    const columns = rules.screens.get('ip')!;
    const col = (id: string) => columns.find((c) => c.feature.id === id)!.column;
    /** A screen row by id of an IP (screen.ts with `park`): its attempts, amounts, failures, and attempts still in the window at the horizon. */
    const screened = (ip: string, attempts: number, amounts: number, failed: number, kept: number) => ({
      entity_key: ip,
      [col('ip_attempts_10m')]: attempts,
      [col('ip_distinct_amounts_10m')]: amounts,
      [`${col('ip_failure_rate_10m')}_n`]: failed,
      [`${col('ip_failure_rate_10m')}_d`]: attempts,
      [`${col('ip_failure_rate_10m')}_dh`]: kept,
      fut: 0,
    });
    /** A new row (positions.ts newKeysQuery) of an IP. */
    const row = (ip: string, status: string) => ({
      ip,
      device_id: null,
      user_id: null,
      order_id: 'o',
      type: 'payment',
      status,
      failure_code: null,
      source: null,
    });
    const park = (...rows: ReturnType<typeof screened>[]) => {
      const p = parked.parker('ip', rules.rulesOf('ip'), columns, now, 30_000);
      for (const r of rows) p.park(r.entity_key, r);
      p.done();
    };
    const stays = (ip: string, atMs = now + 1_000) => parked.stays('ip', rules.rulesOf('ip'), columns, atMs)?.(ip) ?? false;
    return { parked, park, stays, row, screened, rules: () => rules, swapRules: () => (rules = prepare(ruleSet)) };
  }

  test('a busy address far below the failure rate stays parked through successes and is unparked by enough failures', () => {
    const { parked, park, stays, row, screened, rules } = setup();
    // 40 attempts, 2 failed, 36 of them still in the window at the horizon; and one that may hit.
    park(screened('203.0.113.9', 40, 12, 2, 36), screened('198.51.100.7', 40, 12, 30, 36));
    expect(parked.count()).toBe(1);
    expect(stays('203.0.113.9')).toBe(true);
    expect(stays('198.51.100.7')).toBe(false);
    parked.grow(
      Array.from({ length: 50 }, () => row('203.0.113.9', 'succeeded')),
      rules(),
      true,
    );
    expect(stays('203.0.113.9')).toBe(true);
    parked.grow(
      Array.from({ length: 15 }, () => row('203.0.113.9', 'failed')),
      rules(),
      true,
    );
    expect(stays('203.0.113.9')).toBe(true);
    // 18 failures against at least 36 attempts: the rule may hold again, and the key is screened.
    parked.grow([row('203.0.113.9', 'timeout')], rules(), true);
    expect(stays('203.0.113.9')).toBe(false);
    expect(parked.count()).toBe(0);
  });

  test('a key stays parked only between its screen and its horizon; expired keys are dropped', () => {
    const { parked, park, stays, screened } = setup();
    park(screened('a', 40, 12, 2, 36), screened('b', 40, 12, 2, 36));
    expect(stays('a', now - 1)).toBe(false);
    expect(stays('b', now + 30_000)).toBe(false);
    expect(parked.count()).toBe(0);
    park(screened('c', 40, 12, 2, 36));
    parked.dropExpired(now + 29_999);
    expect(parked.count()).toBe(1);
    parked.dropExpired(now + 30_000);
    expect(parked.count()).toBe(0);
  });

  test('rows not counted, another rule set or a new leadership drop every parked key', () => {
    const { parked, park, stays, row, screened, rules, swapRules } = setup();
    park(screened('a', 40, 12, 2, 36));
    parked.grow([row('a', 'succeeded')], rules(), false);
    expect(parked.count()).toBe(0);
    park(screened('a', 40, 12, 2, 36));
    const before = rules();
    swapRules();
    parked.grow([row('a', 'succeeded')], before, true);
    expect(parked.count()).toBe(1);
    parked.grow([row('a', 'succeeded')], rules(), true);
    expect(parked.count()).toBe(0);
    park(screened('a', 40, 12, 2, 36));
    parked.reset();
    expect(stays('a')).toBe(false);
    expect(parked.count()).toBe(0);
  });

  test('a screen that would park more than 30,000 keys of a type parks none', () => {
    const { parked, park, screened } = setup();
    park(...Array.from({ length: 30_000 }, (_, i) => screened(`k${i}`, 40, 12, 2, 36)));
    expect(parked.count()).toBe(30_000);
    park(screened('one more', 40, 12, 2, 36));
    expect(parked.count()).toBe(0);
  });
});
