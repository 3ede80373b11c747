import { describe, expect, test } from 'vitest';
import { currencyExponent, decimalsEqual, formatMinor, parseDecimal, sumDecimals, toMinorUnits } from './money.ts';

describe('toMinorUnits', () => {
  test.each([
    ['12.50', 'CNY', 1250],
    ['12.5', 'CNY', 1250],
    ['12', 'CNY', 1200],
    ['0.01', 'USD', 1],
    ['1000', 'JPY', 1000],
    ['1000.00', 'JPY', 1000],
    ['1.234', 'KWD', 1234],
    ['-3.20', 'EUR', -320],
    ['9999999999999.99', 'CNY', 999_999_999_999_999],
  ])('%s %s -> %d', (text, currency, minor) => {
    expect(toMinorUnits(text, currency)).toEqual({ ok: true, value: minor });
  });

  test.each([
    ['10.005', 'USD', 'cannot be represented exactly: USD has 2 decimal places'],
    ['1.5', 'JPY', 'JPY has 0 decimal places'],
    ['1.2345', 'KWD', 'KWD has 3 decimal places'],
    ['12,5', 'CNY', 'not a plain decimal number'],
    ['1,250.00', 'CNY', 'not a plain decimal number'],
    ['1e3', 'CNY', 'not a plain decimal number'],
    ['+1.00', 'CNY', 'not a plain decimal number'],
    ['.5', 'CNY', 'not a plain decimal number'],
    ['', 'CNY', 'not a plain decimal number'],
    [' 1.00', 'CNY', 'not a plain decimal number'],
    ['NaN', 'CNY', 'not a plain decimal number'],
    ['1.00', 'XYZ', 'unknown currency "XYZ"'],
    ['1.00', 'cny', 'unknown currency'],
    ['10000000000000.01', 'CNY', 'out of range'],
  ])('%j %s is refused', (text, currency, reason) => {
    const r = toMinorUnits(text, currency);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain(reason);
  });

  test('exponents follow ISO 4217', () => {
    expect([currencyExponent('JPY'), currencyExponent('CNY'), currencyExponent('KWD'), currencyExponent('CLF'), currencyExponent('ABC')]).toEqual([
      0,
      2,
      3,
      4,
      undefined,
    ]);
  });
});

describe('decimals', () => {
  test('sums exactly at the largest scale (no float drift)', () => {
    const values = ['0.1', '0.2', '0.05940', '-0.05940'].map((t) => (parseDecimal(t) as { ok: true; value: { units: bigint; scale: number } }).value);
    const sum = sumDecimals(values);
    expect(decimalsEqual(sum, { units: 3n, scale: 1 })).toBe(true);
  });

  test('formatMinor writes major units back', () => {
    expect([formatMinor(1250, 'CNY'), formatMinor(5, 'USD'), formatMinor(1000, 'JPY'), formatMinor(-1234, 'KWD')]).toEqual(['12.50', '0.05', '1000', '-1.234']);
  });
});
