import { Operator } from 'json-rules-engine';
import { gammaln } from 'simple-statistics';
import { parseDuration } from './duration.ts';

/**
 * Operators json-rules-engine lacks, plus what the loader needs to check operator values
 * before a rule ever runs. Documented for rule authors in rules/README.md.
 */

/** P(X >= k) for X ~ Binomial(n, p): how surprising k or more successes out of n are at rate p. */
export function binomialTail(k: number, n: number, p: number): number {
  if (!(n >= 0) || !(p >= 0 && p <= 1) || !Number.isFinite(k)) return Number.NaN;
  if (k <= 0) return 1;
  if (k > n) return 0;
  if (p === 0) return 0;
  if (p === 1) return 1;
  // Summed in log space from k upwards: the terms underflow long before their sum matters.
  const logN = gammaln(n + 1),
    logP = Math.log(p),
    logQ = Math.log1p(-p);
  let total = 0;
  for (let x = Math.ceil(k); x <= n; x++) {
    const term = Math.exp(logN - gammaln(x + 1) - gammaln(n - x + 1) + x * logP + (n - x) * logQ);
    total += term;
    if (term < total * 1e-16 && x > n * p) break;
  }
  return Math.min(1, total);
}

/** The value of a `binomial` derived fact. */
export interface BinomialStats {
  successes: number;
  trials: number;
  /** successes / trials, 0 without trials. */
  rate: number;
  baseline: number;
  /** P(X >= successes) under the baseline rate. */
  p_value: number;
  /** (successes - trials * baseline) / sqrt(trials * baseline * (1 - baseline)); 0 when undefined. */
  z_score: number;
}

/** Binomial test of `successes` out of `trials` against the rate `baseline`. */
export function binomialStats(successes: number, trials: number, baseline: number): BinomialStats {
  const rate = trials > 0 ? successes / trials : 0;
  const sd = Math.sqrt(trials * baseline * (1 - baseline));
  const z = sd > 0 ? (successes - trials * baseline) / sd : 0;
  return { successes, trials, rate, baseline, p_value: binomialTail(successes, trials, baseline), z_score: z };
}

/** `significantlyAbove` compare value. */
export interface SignificanceTest {
  /** Largest p-value still called significant, e.g. 0.001. */
  alpha: number;
  /** Fewer trials than this never count: 2 failures out of 2 attempts is not a spike. */
  min_trials: number;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** True when the observation has enough trials, a rate above its baseline, and a binomial tail <= alpha. */
export function significantlyAbove(stats: unknown, test: unknown): boolean {
  if (!isRecord(stats) || !isRecord(test)) return false;
  const { successes, trials, baseline } = stats;
  if (!isNumber(successes) || !isNumber(trials) || !isNumber(baseline) || !isNumber(test.alpha) || !isNumber(test.min_trials)) return false;
  if (trials < test.min_trials || trials <= 0 || successes / trials <= baseline) return false;
  return binomialTail(successes, trials, baseline) <= test.alpha;
}

/** True when the fact, an age in milliseconds, is strictly longer than the duration (e.g. "30m"). */
export function olderThan(ageMs: unknown, duration: unknown): boolean {
  if (!isNumber(ageMs) || typeof duration !== 'string') return false;
  const limit = parseDuration(duration);
  return limit !== null && ageMs > limit;
}

/**
 * Checks a compare value at load time. Returns null when it is fine, otherwise what is wrong
 * and how to fix it. A `{ "fact": ... }` reference is checked by the loader instead.
 */
export type ValueCheck = (value: unknown) => string | null;

const numberValue: ValueCheck = (v) => (isNumber(v) ? null : 'needs a number, e.g. 10');
const arrayValue: ValueCheck = (v) => (Array.isArray(v) ? null : 'needs an array of values, e.g. ["risk_blocked"]');
const anyValue: ValueCheck = () => null;

export const durationValue: ValueCheck = (v) =>
  typeof v === 'string' && /^[1-9][0-9]*(s|m|h|d)$/.test(v) ? null : 'needs a duration such as "30m", "2h" or "1d"';

const significanceValue: ValueCheck = (v) => {
  if (!isRecord(v)) return 'needs { "alpha": 0.001, "min_trials": 10 }';
  const extra = Object.keys(v).filter((k) => k !== 'alpha' && k !== 'min_trials');
  if (extra.length) return `has unknown key(s) ${extra.join(', ')}; only alpha and min_trials are allowed`;
  if (!isNumber(v.alpha) || v.alpha <= 0 || v.alpha >= 1) return 'needs "alpha" between 0 and 1 (exclusive), e.g. 0.001';
  if (!isNumber(v.min_trials) || !Number.isInteger(v.min_trials) || v.min_trials < 1) return 'needs "min_trials", an integer >= 1, e.g. 10';
  return null;
};

/** The paysentinel operators, registered on every engine. */
export const customOperators: readonly Operator[] = [new Operator('significantlyAbove', significantlyAbove), new Operator('olderThan', olderThan)];

/** Value checks for every operator a rule may name (built-in and custom). */
export const operatorValueChecks: ReadonlyMap<string, ValueCheck> = new Map<string, ValueCheck>([
  ['equal', anyValue],
  ['notEqual', anyValue],
  ['in', arrayValue],
  ['notIn', arrayValue],
  ['contains', anyValue],
  ['doesNotContain', anyValue],
  ['lessThan', numberValue],
  ['lessThanInclusive', numberValue],
  ['greaterThan', numberValue],
  ['greaterThanInclusive', numberValue],
  ['significantlyAbove', significanceValue],
  ['olderThan', durationValue],
]);

/** json-rules-engine's operator decorators, written before the operator: `not:equal`, `someFact:in`. */
export const operatorDecorators: readonly string[] = ['someFact', 'someValue', 'everyFact', 'everyValue', 'swap', 'not'];

/**
 * Splits `not:swap:in` into decorators and the base operator; null when a part is unknown.
 * Value checks are skipped when decorators reshape the operands (someValue, everyValue, swap).
 */
export function resolveOperator(name: string): { base: string; check: ValueCheck } | null {
  const parts = name.split(':');
  const base = parts.pop()!;
  if (!parts.every((d) => operatorDecorators.includes(d))) return null;
  const check = operatorValueChecks.get(base);
  if (!check) return null;
  const reshaped = parts.some((d) => d === 'someValue' || d === 'everyValue' || d === 'swap');
  return { base, check: reshaped ? anyValue : check };
}
