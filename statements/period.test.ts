import { expect, test } from 'vitest';
import { formatPeriod, parsePeriod } from './period.ts';

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
