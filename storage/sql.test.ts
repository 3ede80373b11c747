import { describe, expect, test } from 'vitest';
import { ident, quoteString, sql, sqlLiteral } from './sql.ts';

describe('sql escaping', () => {
  test.each([
    ['plain', 'abc', "'abc'"],
    ['single quote', "O'Brien", "'O\\'Brien'"],
    ['backslash', 'a\\b', "'a\\\\b'"],
    ['injection', "'; DROP TABLE x; --", "'\\'; DROP TABLE x; --'"],
    ['NUL', 'a\0b', "'a\\0b'"],
    ['newline and tab', 'a\nb\tc\r', "'a\\nb\\tc\\r'"],
    ['other control bytes', '\x01\x1f\x7f', "'\\x01\\x1f\\x7f'"],
    ['multi-byte', '支付 ✓ 😀', "'支付 ✓ 😀'"],
  ])('quotes %s', (_name, input, expected) => {
    expect(quoteString(input)).toBe(expected);
  });

  test('the tag escapes every value and builds IN lists', () => {
    expect(sql`SELECT 1 WHERE a = ${"x'y"} AND b IN ${['p', 'q']} AND c = ${42} AND d = ${null}`).toBe(
      "SELECT 1 WHERE a = 'x\\'y' AND b IN ('p', 'q') AND c = 42 AND d = NULL",
    );
  });

  test('dates become UTC DateTime literals', () => {
    expect(sqlLiteral(new Date('2026-11-25T10:15:00.999Z'))).toBe("toDateTime('2026-11-25 10:15:00', 'UTC')");
  });

  test('refuses values it cannot represent safely', () => {
    expect(() => sqlLiteral(Number.NaN)).toThrow(/Non-finite/);
    expect(() => sqlLiteral([])).toThrow(/empty list/);
    expect(() => sqlLiteral({} as never)).toThrow(/Unsupported/);
  });

  test('identifiers are checked, never quoted', () => {
    expect(ident('paysentinel', 'payment_events').text).toBe('paysentinel.payment_events');
    expect(() => ident('x; DROP TABLE y')).toThrow(/Not a safe SQL identifier/);
    expect(() => ident('a`b')).toThrow();
  });
});
