import { expect, test } from 'vitest';
import { formatPeriod, parsePeriod, periodInFileName } from './period.ts';

test.each([
  ['2026-11-25', '2026-11-25T00:00:00Z..2026-11-26T00:00:00Z'],
  ['2026-11-25..2026-11-27', '2026-11-25T00:00:00Z..2026-11-27T00:00:00Z'],
  ['2026-11-25T00:00:00+08:00..2026-11-26T00:00:00+08:00', '2026-11-24T16:00:00Z..2026-11-25T16:00:00Z'],
])('%s is %s', (text, expected) => {
  expect(formatPeriod(parsePeriod(text)!)).toBe(expected);
});

test.each(['', '2026-11-31', '25/11/2026', '2026-11-26..2026-11-25', '2026-11-25..', '2026-11-25T10:00:00', '2026-11-25T10:00:00Z', 'a..b..c'])(
  '%j is refused',
  (text) => {
    expect(parsePeriod(text)).toBeNull();
  },
);

test.each([
  ['balance_2026-11-25.csv', '2026-11-25T00:00:00Z..2026-11-26T00:00:00Z'],
  ['2026-11-25.csv', '2026-11-25T00:00:00Z..2026-11-26T00:00:00Z'],
  ['settled 2026-11-25..2026-11-27.csv', '2026-11-25T00:00:00Z..2026-11-27T00:00:00Z'],
  ['bank_2026-11-25+0800.csv', '2026-11-24T16:00:00Z..2026-11-25T16:00:00Z'],
  ['bank_2026-11-25..2026-11-27-0500.csv', '2026-11-25T05:00:00Z..2026-11-27T05:00:00Z'],
  ['2026-12-31.csv', '2026-12-31T00:00:00Z..2027-01-01T00:00:00Z'],
])('the inbox file %j covers %s', (name, expected) => {
  const r = periodInFileName(name);
  expect(r.ok && formatPeriod(r.period)).toBe(expected);
});

test.each([
  ['balance.csv', /does not say which period/],
  ['balance_20261125.csv', /does not say which period/],
  ['balance_2026-11-25_2026-11-26.csv', /more than one date .*ambiguous/],
  ['balance_2026-11-25_20261126.csv', /more than one date .*ambiguous/],
  ['balance_2026-11-31.csv', /not a valid period/],
  ['balance_2026-11-27..2026-11-25.csv', /not a valid period/],
])('the inbox file %j is refused', (name, reason) => {
  const r = periodInFileName(name);
  expect(r.ok ? '' : r.reason).toMatch(reason);
  expect(r.ok ? '' : r.reason).toContain('--period');
});
