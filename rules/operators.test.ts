import { Engine } from 'json-rules-engine';
import { binomialDistribution } from 'simple-statistics';
import { describe, expect, test } from 'vitest';
import { binomialStats, binomialTail, customOperators, olderThan, resolveOperator, significantlyAbove } from './operators.ts';
import { formatDuration, placeholders, renderTemplate } from './render.ts';

describe('binomialTail', () => {
  test('matches exact values', () => {
    expect(binomialTail(8, 10, 0.5)).toBeCloseTo(56 / 1024, 12);
    expect(binomialTail(10, 10, 0.5)).toBeCloseTo(1 / 1024, 12);
    expect(binomialTail(2, 2, 0.1)).toBeCloseTo(0.01, 12);
  });

  test('agrees with the tail of simple-statistics binomialDistribution', () => {
    for (const [n, p] of [
      [20, 0.1],
      [50, 0.3],
      [12, 0.05],
    ] as const) {
      const pmf = binomialDistribution(n, p)!;
      for (let k = 1; k < pmf.length; k++) {
        const tail = pmf.slice(k).reduce((a, b) => a + b, 0);
        // binomialDistribution stops once the cumulative mass is within 1e-4 of 1.
        expect(Math.abs(binomialTail(k, n, p) - tail)).toBeLessThan(2e-4);
      }
    }
  });

  test('edge cases', () => {
    expect(binomialTail(0, 5, 0.2)).toBe(1);
    expect(binomialTail(6, 5, 0.2)).toBe(0);
    expect(binomialTail(1, 5, 0)).toBe(0);
    expect(binomialTail(5, 5, 1)).toBe(1);
    expect(binomialTail(1, 5, 2)).toBeNaN();
    // Far in the tail the value stays positive and tiny instead of underflowing to garbage.
    const far = binomialTail(900, 1000, 0.1);
    expect(far).toBeGreaterThanOrEqual(0);
    expect(far).toBeLessThan(1e-300);
  });

  test('binomialStats gives rate, p-value and z-score', () => {
    const s = binomialStats(26, 30, 0.1);
    expect(s.rate).toBeCloseTo(26 / 30);
    expect(s.z_score).toBeCloseTo((26 - 3) / Math.sqrt(30 * 0.1 * 0.9));
    expect(s.p_value).toBeLessThan(1e-15);
    expect(binomialStats(0, 0, 0.1)).toMatchObject({ rate: 0, z_score: 0, p_value: 1 });
  });
});

describe('significantlyAbove', () => {
  const test_ = { alpha: 0.001, min_trials: 10 };
  test.each([
    { name: '26 of 30 at a 10% baseline', stats: binomialStats(26, 30, 0.1), expected: true },
    { name: '2 of 2 is below the minimum volume', stats: binomialStats(2, 2, 0.1), expected: false },
    { name: '3 of 12 is ordinary variation', stats: binomialStats(3, 12, 0.1), expected: false },
    { name: 'a rate below the baseline', stats: binomialStats(1, 50, 0.1), expected: false },
    { name: 'not a statistics object', stats: 0.9, expected: false },
  ])('$name -> $expected', ({ stats, expected }) => {
    expect(significantlyAbove(stats, test_)).toBe(expected);
  });
});

describe('olderThan', () => {
  test('compares an age in ms with a duration, strictly', () => {
    expect(olderThan(45 * 60_000, '30m')).toBe(true);
    expect(olderThan(30 * 60_000, '30m')).toBe(false);
    expect(olderThan(2 * 86_400_000, '1d')).toBe(true);
    expect(olderThan('45m', '30m')).toBe(false);
    expect(olderThan(10, 'soon')).toBe(false);
  });

  test('works inside json-rules-engine, decorated with not:', async () => {
    const engine = new Engine([], { allowUndefinedFacts: true });
    for (const op of customOperators) engine.addOperator(op);
    engine.addRule({ name: 'stuck', conditions: { all: [{ fact: 'age', operator: 'olderThan', value: '30m' }] }, event: { type: 'stuck' } });
    engine.addRule({ name: 'fresh', conditions: { all: [{ fact: 'age', operator: 'not:olderThan', value: '5m' }] }, event: { type: 'fresh' } });
    const names = async (age: number) => (await engine.run({ age })).results.map((r) => r.name).sort();
    expect(await names(45 * 60_000)).toEqual(['stuck']);
    expect(await names(60_000)).toEqual(['fresh']);
  });
});

describe('resolveOperator', () => {
  test('knows built-in, custom and decorated operators', () => {
    expect(resolveOperator('greaterThan')?.base).toBe('greaterThan');
    expect(resolveOperator('not:olderThan')?.base).toBe('olderThan');
    expect(resolveOperator('someFact:in')?.base).toBe('in');
    expect(resolveOperator('greaterThen')).toBeNull();
    expect(resolveOperator('nope:equal')).toBeNull();
  });

  test('checks values, except where a decorator reshapes them', () => {
    expect(resolveOperator('greaterThan')!.check('10')).toMatch(/needs a number/);
    expect(resolveOperator('greaterThan')!.check(10)).toBeNull();
    expect(resolveOperator('swap:greaterThan')!.check('10')).toBeNull();
    expect(resolveOperator('olderThan')!.check('30 min')).toMatch(/duration/);
    expect(resolveOperator('significantlyAbove')!.check({ alpha: 2, min_trials: 10 })).toMatch(/alpha/);
    expect(resolveOperator('significantlyAbove')!.check({ alpha: 0.01, min_trials: 10, extra: 1 })).toMatch(/unknown key/);
  });
});

describe('recommended_action placeholders', () => {
  const facts = { ip_attempts_10m: 42, ip_failure_rate_10m: 0.857, age: 2_730_000, stats: { p_value: 0.0000123 }, tiny: 0.5 };
  const render = (t: string) => renderTemplate(t, { entityType: 'ip', entityId: '203.0.113.7', facts });

  test.each([
    { template: 'IP {entity_id} ({entity_type})', expected: 'IP 203.0.113.7 (ip)' },
    { template: '{ip_attempts_10m} attempts', expected: '42 attempts' },
    { template: '{ip_failure_rate_10m|percent} failed', expected: '85.7% failed' },
    { template: '{ip_failure_rate_10m}', expected: '0.857' },
    { template: 'for {age|duration}', expected: 'for 45m 30s' },
    { template: 'p = {stats.p_value}', expected: 'p = 1.2e-5' },
    { template: '{missing} and {stats.nope}', expected: 'unknown and unknown' },
    { template: 'literal {not a placeholder}', expected: 'literal {not a placeholder}' },
  ])('$template', ({ template, expected }) => {
    expect(render(template)).toBe(expected);
  });

  test('durations read naturally', () => {
    expect(formatDuration(45 * 60_000)).toBe('45m');
    expect(formatDuration(3_900_000)).toBe('1h 5m');
    expect(formatDuration(30_000)).toBe('30s');
    expect(formatDuration(2 * 86_400_000 + 3_600_000)).toBe('2d 1h');
  });

  test('parsing separates fact, keys and format', () => {
    expect(placeholders('{a_b.c.d|percent} {x} {bad one}')).toEqual([
      { raw: 'a_b.c.d|percent', name: 'a_b', keys: ['c', 'd'], format: 'percent', valid: true },
      { raw: 'x', name: 'x', keys: [], format: undefined, valid: true },
      { raw: 'bad one', name: '', keys: [], format: undefined, valid: false },
    ]);
  });
});
