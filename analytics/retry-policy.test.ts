import { describe, expect, test } from 'vitest';
import { decide, peakHours, wilson, type DecideInput } from './retry-policy.ts';

const noPeak = { hours: [], rates: [], mean: 0.1 };
const input = (patch: Partial<DecideInput>): DecideInput => ({
  channel: 'alipay',
  failureCode: 'network_error',
  steps: [],
  succeededRetries: 0,
  medianDelaySeconds: 0,
  peak: noPeak,
  previous: null,
  ...patch,
});
const step = (k: number, retried: number, succeeded: number) => ({ k, failures: retried, retried, succeeded });

describe('wilson', () => {
  test('matches the closed form at known points', () => {
    const half = wilson(50, 100);
    expect(half.p).toBe(0.5);
    expect(half.low).toBeCloseTo(0.4038, 4);
    expect(half.high).toBeCloseTo(0.5962, 4);
    const none = wilson(0, 91);
    expect(none.low).toBe(0);
    expect(none.high).toBeCloseTo(3.8415 / (91 + 3.8415), 4); // z² / (n + z²) when nothing succeeded
    expect(wilson(0, 0)).toEqual({ p: 0, low: 0, high: 0 });
  });
});

describe('decide', () => {
  test('retries while the interval is above 10%, and stops at the first step that is not', () => {
    const e = decide(input({ steps: [step(1, 100, 70), step(2, 40, 27), step(3, 40, 1)], succeededRetries: 97, medianDelaySeconds: 59.6 }));
    expect(e).toMatchObject({ action: 'retry', retry: true, maxAttempts: 3, backoffSeconds: 60, change: 'new' });
    expect(e.evidence.steps.map((s) => s.k)).toEqual([1, 2, 3]);
  });

  test('never retries the non-transient codes, risk_blocked goes to manual review', () => {
    for (const code of ['insufficient_funds', 'invalid_account', 'user_cancelled']) {
      expect(decide(input({ failureCode: code, steps: [step(1, 100, 90)] }))).toMatchObject({ action: 'no_retry', maxAttempts: 1, peakMaxAttempts: 1 });
    }
    expect(decide(input({ failureCode: 'risk_blocked', steps: [step(1, 100, 90)] }))).toMatchObject({ action: 'manual_review', retry: false, maxAttempts: 1 });
  });

  test('too little evidence: no retry at first, the previous decision later', () => {
    expect(decide(input({ steps: [step(1, 10, 9)] }))).toMatchObject({ action: 'no_retry', maxAttempts: 1 });
    const previous = decide(input({ steps: [step(1, 100, 70), step(2, 100, 70)] }));
    const kept = decide(input({ steps: [step(1, 10, 0)], previous }));
    expect(kept).toMatchObject({ action: 'retry', maxAttempts: 3, change: 'unchanged' });
    expect(kept.reason).toMatch(/only 10 retried failures .*previous decision kept/);
  });

  test('hysteresis: an interval straddling 10% keeps the previous decision, either way', () => {
    const straddling = [step(1, 131, 16)]; // 12.2%, 95% CI about 7.7%-19%
    expect(decide(input({ steps: straddling }))).toMatchObject({ action: 'retry' });
    const wasNo = decide(input({ steps: [step(1, 91, 0)] }));
    expect(decide(input({ steps: straddling, previous: wasNo }))).toMatchObject({ action: 'no_retry', change: 'unchanged' });
    const wasYes = decide(input({ steps: [step(1, 100, 50)] }));
    expect(decide(input({ steps: [step(1, 131, 11)], previous: wasYes }))).toMatchObject({ action: 'retry', change: 'unchanged' });
    // Clear evidence does change it.
    expect(decide(input({ steps: [step(1, 200, 2)], previous: wasYes }))).toMatchObject({ action: 'no_retry', change: 'changed' });
  });

  test('peak hours: one attempt fewer and twice the backoff, said in the reason', () => {
    const e = decide(
      input({ steps: [step(1, 100, 70), step(2, 40, 27)], succeededRetries: 97, medianDelaySeconds: 60, peak: { hours: [12], rates: [0.55], mean: 0.17 } }),
    );
    expect(e).toMatchObject({ maxAttempts: 3, peakMaxAttempts: 2, backoffSeconds: 60, peakBackoffSeconds: 120, peakHours: [12] });
    expect(e.reason).toMatch(/at peak hours \(UTC 12h 55% failing vs 17% mean\) only 2 attempts, 120 s apart\.$/);
  });
});

describe('peakHours', () => {
  const hours = (rates: Record<number, number>) =>
    Array.from({ length: 24 }, (_, h) => ({ hour: h, attempts: 100, unsuccessful: Math.round(100 * (rates[h] ?? 0.1)) }));

  test('an hour whose failure rate is clearly above the mean is a peak hour; noise is not', () => {
    expect(peakHours(hours({ 12: 0.5, 3: 0.16 }), []).hours).toEqual([12]);
  });

  test('a previous peak hour stays while it is above 1.2 x the mean', () => {
    const h = hours({ 12: 0.17 }); // mean ~0.103: 17% is above 1.2 x mean, below the entry bar
    expect(peakHours(h, []).hours).toEqual([]);
    expect(peakHours(h, [12]).hours).toEqual([12]);
  });
});
