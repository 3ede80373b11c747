import { expect, test } from 'vitest';
import { tsvEscape, tsvUnescape } from './tsv.ts';

test.each(["it's", 'b\\c', 'tab\there', 'new\nline', 'cr\rlf', 'nul\0byte', '\\N', '\\t literally', '支付 🙂', '', "'; DROP TABLE x; --", '"quoted",comma'])(
  '%j round-trips',
  (s) => {
    expect(tsvEscape(s)).not.toMatch(/[\t\n]/);
    expect(tsvUnescape(tsvEscape(s))).toBe(s);
  },
);

test('null is \\N and numbers are plain', () => {
  expect([tsvEscape(null), tsvEscape(12), tsvEscape(-3n)]).toEqual(['\\N', '12', '-3']);
  expect(tsvUnescape('\\N')).toBeNull();
  // What ClickHouse writes for a single quote.
  expect(tsvUnescape("it\\'s")).toBe("it's");
});
