import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { createRuleEvaluator } from './evaluate.ts';
import { defaultFixturesPath, parseFixture, runFixtures, type ResolvedCase } from './fixtures.ts';
import { loadRuleSetOrThrow, parseRuleSet } from './load.ts';

const ruleSet = await loadRuleSetOrThrow();
const evaluator = createRuleEvaluator(ruleSet);

const fixtureFiles = readdirSync(defaultFixturesPath)
  .filter((n) => n.endsWith('.json'))
  .sort();
const cases: (ResolvedCase & { file: string })[] = fixtureFiles.flatMap((file) => {
  const parsed = parseFixture(file, readFileSync(new URL(`./tests/${file}`, import.meta.url), 'utf8'), ruleSet);
  if (!parsed.ok) throw new Error(`fixture ${file} is invalid: ${JSON.stringify(parsed.problems)}`);
  return parsed.fixture.cases.map((c) => ({ ...c, file }));
});

describe('shipped fixtures', () => {
  test('every shipped rule has a case where it fires and one where it must not', () => {
    for (const rule of ruleSet.rules) {
      const own = cases.filter((c) => c.file === `${rule.id}.json`);
      expect(
        own.some((c) => c.expect.includes(rule.id)),
        `${rule.id} positive`,
      ).toBe(true);
      expect(
        own.some((c) => c.expect.length === 0),
        `${rule.id} negative`,
      ).toBe(true);
    }
  });

  test.each(cases)('$file: $name', async (c) => {
    const hits = await evaluator.evaluate(c.entity, c.entityId, c.facts);
    expect(hits.map((h) => h.ruleId)).toEqual(c.expect);
    for (const [id, text] of Object.entries(c.expectRecommendedAction)) {
      expect(hits.find((h) => h.ruleId === id)?.recommendedAction).toContain(text);
    }
  });
});

describe('createRuleEvaluator', () => {
  const spike = { device_technical_failures_15m: 26, device_attempts_15m: 30, device_distinct_orders_15m: 8, channel_technical_failure_rate_15m: 0.05 };

  test('a hit carries the rule, its version, the rendered advice and the evidence', async () => {
    const [hit] = await evaluator.evaluate('device', 'dev-1', spike);
    const rule = ruleSet.rules.find((r) => r.id === 'device_failure_spike')!;
    expect(hit).toMatchObject({
      ruleId: 'device_failure_spike',
      ruleVersion: rule.version,
      severity: 'medium',
      action: 'notify_support',
      entityType: 'device',
      entityId: 'dev-1',
      cooldownMs: 30 * 60_000,
      evidence: {
        device_technical_failures_15m: 26,
        device_attempts_15m: 30,
        channel_technical_failure_rate_baseline: 0.05,
        channel_technical_failure_ratio_15m: 1,
      },
    });
    expect(hit!.evidence.device_technical_failure_stats_15m).toMatchObject({ successes: 26, trials: 30, baseline: 0.05 });
    expect(hit!.recommendedAction).toMatch(
      /^Device dev-1 failed 26 of 30 attempts on 8 orders in 15 minutes with network or system errors \(channel baseline 5%, p = \d\.\de-\d+\)/,
    );
    expect(hit!.recommendedAction).not.toMatch(/[{}]/);
  });

  test('a baseline from history replaces the default', async () => {
    // 26/30 failing is normal for a channel that usually fails 80% of the time.
    expect(
      await evaluator.evaluate('device', 'dev-1', { ...spike, channel_technical_failure_rate_baseline: 0.8, channel_technical_failure_rate_15m: 0.8 }),
    ).toEqual([]);
  });

  test('only the rules about the entity type run', async () => {
    const orderFacts = { order_risk_blocked_24h: 1, ip_attempts_10m: 100, ip_distinct_amounts_10m: 100, ip_failure_rate_10m: 1 };
    expect((await evaluator.evaluate('order', 'o-1', orderFacts)).map((h) => h.ruleId)).toEqual(['risk_review']);
    expect(await evaluator.evaluate('merchant', 'm-1', orderFacts)).toEqual([]);
  });

  test('missing features make their conditions false instead of throwing', async () => {
    expect(await evaluator.evaluate('device', 'dev-new', {})).toEqual([]);
    expect(await evaluator.evaluate('device', 'dev-new', { device_technical_failures_15m: 26 })).toEqual([]);
  });

  test('several rules can hit one entity at once, in id order', async () => {
    const hits = await evaluator.evaluate('order', 'o-2', { order_succeeded_attempts_24h: 2, order_failed_then_succeeded_24h: 1, order_risk_blocked_24h: 0 });
    expect(hits.map((h) => h.ruleId)).toEqual(['charged_but_failed', 'duplicate_charge']);
  });

  test('disabled rules never fire', async () => {
    const rule = JSON.parse(readFileSync(new URL('./definitions/risk_review.json', import.meta.url), 'utf8'));
    const result = parseRuleSet([{ file: 'risk_review.json', text: JSON.stringify({ ...rule, enabled: false }) }], ruleSet.catalog);
    if (!result.ok) throw new Error('invalid');
    expect(await createRuleEvaluator(result.ruleSet).evaluate('order', 'o-3', { order_risk_blocked_24h: 1 })).toEqual([]);
  });

  test('resolve_when: the stuck order that got its final status is over, with the fact that shows it', async () => {
    const stuck = new Set(['stuck_processing']);
    expect(await evaluator.resolved('order', { order_processing_age_24h: 0 }, stuck)).toEqual(new Map([['stuck_processing', { order_processing_age_24h: 0 }]]));
    expect(await evaluator.resolved('order', { order_processing_age_24h: 45 * 60_000 }, stuck)).toEqual(new Map());
    // Only the rules asked about; a missing fact never resolves anything.
    expect(await evaluator.resolved('order', { order_processing_age_24h: 0 }, new Set(['duplicate_charge']))).toEqual(new Map());
    expect(await evaluator.resolved('order', {}, stuck)).toEqual(new Map());
  });

  test('a hit whose own resolve_when holds is not a case', async () => {
    const rule = JSON.parse(readFileSync(new URL('./definitions/risk_review.json', import.meta.url), 'utf8'));
    const over = { all: [{ fact: 'order_succeeded_attempts_24h', operator: 'greaterThanInclusive', value: 1 }] };
    const result = parseRuleSet([{ file: 'risk_review.json', text: JSON.stringify({ ...rule, resolve_when: over }) }], ruleSet.catalog);
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    const e = createRuleEvaluator(result.ruleSet);
    expect((await e.evaluate('order', 'o-4', { order_risk_blocked_24h: 1 })).map((h) => h.ruleId)).toEqual(['risk_review']);
    expect(await e.evaluate('order', 'o-4', { order_risk_blocked_24h: 1, order_succeeded_attempts_24h: 1 })).toEqual([]);
    // The resolving fact is part of the rule's evidence, so support sees it on the case.
    expect(result.ruleSet.rules[0]!.facts).toContain('order_succeeded_attempts_24h');
  });

  test('concurrent evaluations of one engine keep their facts apart', async () => {
    const runs = await Promise.all(
      Array.from({ length: 50 }, (_, i) => evaluator.evaluate('user', `u-${i}`, { user_max_attempts_per_order_1m: i % 2 === 0 ? 9 : 1 })),
    );
    runs.forEach((hits, i) => expect(hits.map((h) => h.entityId)).toEqual(i % 2 === 0 ? [`u-${i}`] : []));
  });

  test('runFixtures reports a wrong expectation as a readable failure', async () => {
    const parsed = parseFixture(
      't.json',
      JSON.stringify({ cases: [{ name: 'wrong', entity: 'order', entity_id: 'o', facts: { order_risk_blocked_24h: 1 }, expect: ['duplicate_charge'] }] }),
      ruleSet,
    );
    if (!parsed.ok) throw new Error('invalid');
    const report = await runFixtures(ruleSet, [parsed.fixture]);
    expect(report).toMatchObject({ passed: 0, failed: 1 });
    expect(report.results[0]!.failures).toEqual(['expected duplicate_charge to fire, but it did not', 'expected risk_review not to fire, but it did']);
  });

  test('fixtures with a misspelled fact are rejected rather than passing vacuously', () => {
    const parsed = parseFixture(
      't.json',
      JSON.stringify({ cases: [{ name: 'typo', entity: 'device', entity_id: 'd', facts: { device_technical_failure_15m: 2 }, expect: [] }] }),
      ruleSet,
    );
    expect(parsed).toMatchObject({
      ok: false,
      problems: [
        {
          file: 't.json',
          path: '$.cases[0].facts.device_technical_failure_15m',
          message: expect.stringMatching(/Did you mean "device_technical_failures_15m"/),
        },
      ],
    });
  });
});

describe('pre-check before the engine', () => {
  test('says false only when a plain numeric condition certainly fails', async () => {
    const { mayHold } = await import('./evaluate.ts');
    const rule = {
      all: [
        { fact: 'a', operator: 'greaterThanInclusive', value: 15 },
        { fact: 'b', operator: 'significantlyAbove', value: { alpha: 0.01 } },
      ],
    };
    expect(mayHold(rule, { a: 14 })).toBe(false);
    // Custom operators run exactly as in the engine: without stats for `b` the rule cannot hold.
    expect(mayHold(rule, { a: 15 })).toBe(false);
    expect(mayHold({ all: [{ fact: 'a', operator: 'contains', value: 1 }] }, { a: [1] })).toBeUndefined();
    expect(mayHold(rule, {})).toBe(false);
    expect(
      mayHold(
        {
          any: [
            { fact: 'a', operator: 'lessThan', value: 1 },
            { fact: 'c', operator: 'equal', value: 'x' },
          ],
        },
        { a: 5 },
      ),
    ).toBeUndefined();
    expect(
      mayHold(
        {
          any: [
            { fact: 'a', operator: 'lessThan', value: 1 },
            { fact: 'a', operator: 'greaterThan', value: 9 },
          ],
        },
        { a: 5 },
      ),
    ).toBe(false);
    expect(mayHold({ all: [{ fact: 'a', operator: 'greaterThan', value: 1, path: '$.x' }] }, { a: 0 })).toBeUndefined();
    expect(mayHold({ all: [{ fact: 'age', operator: 'olderThan', value: '30m' }] }, { age: 60_000 })).toBe(false);
    expect(mayHold({ all: [{ fact: 'age', operator: 'olderThan', value: '30m' }] }, { age: 3_600_000 })).toBe(true);
  });
});

describe('pre-check on bounds (screening entities before the exact computation)', () => {
  test('an interval decides a comparison only when both of its ends agree; an unknown fact never excludes', async () => {
    const { mayHoldWithin } = await import('./evaluate.ts');
    const atLeast15 = { all: [{ fact: 'a', operator: 'greaterThanInclusive', value: 15 }] };
    expect(mayHoldWithin(atLeast15, new Map([['a', { lo: 0, hi: 14 }]]))).toBe(false);
    expect(mayHoldWithin(atLeast15, new Map([['a', { lo: 0, hi: 15 }]]))).toBeUndefined();
    expect(mayHoldWithin(atLeast15, new Map([['a', { lo: 15, hi: 40 }]]))).toBe(true);
    expect(mayHoldWithin(atLeast15, new Map([['a', { value: 14 }]]))).toBe(false);
    expect(mayHoldWithin(atLeast15, new Map())).toBeUndefined();
    const below2 = { all: [{ fact: 'r', operator: 'lessThan', value: 2 }] };
    expect(mayHoldWithin(below2, new Map([['r', { lo: 3, hi: 9 }]]))).toBe(false);
    expect(mayHoldWithin(below2, new Map([['r', { lo: 0, hi: 9 }]]))).toBeUndefined();
    expect(mayHoldWithin(below2, new Map([['r', { lo: -Infinity, hi: 1 }]]))).toBe(true);
    // olderThan grows with the age, so an upper bound under the limit excludes.
    const stuck = { all: [{ fact: 'age', operator: 'olderThan', value: '30m' }] };
    expect(mayHoldWithin(stuck, new Map([['age', { lo: 0, hi: 60_000 }]]))).toBe(false);
    expect(mayHoldWithin(stuck, new Map([['age', { lo: 0, hi: 3_600_000 }]]))).toBeUndefined();
    // Other custom operators need the exact value.
    const spike = { all: [{ fact: 's', operator: 'significantlyAbove', value: { alpha: 0.01 } }] };
    expect(mayHoldWithin(spike, new Map([['s', { lo: 0, hi: 1 }]]))).toBeUndefined();
    // One branch of `any` that may hold keeps the entity.
    const either = {
      any: [
        { fact: 'a', operator: 'greaterThanInclusive', value: 2 },
        { fact: 'b', operator: 'greaterThanInclusive', value: 2 },
      ],
    };
    expect(
      mayHoldWithin(
        either,
        new Map([
          ['a', { lo: 0, hi: 1 }],
          ['b', { lo: 0, hi: 1 }],
        ]),
      ),
    ).toBe(false);
    expect(
      mayHoldWithin(
        either,
        new Map([
          ['a', { lo: 0, hi: 1 }],
          ['b', { lo: 0, hi: 3 }],
        ]),
      ),
    ).toBeUndefined();
  });
});
