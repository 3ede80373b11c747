import { describe, expect, test } from 'vitest';
import { ident, identList, joinSql, quoteString, raw, sql, sqlFragment, sqlLiteral, SqlFragment } from './sql.ts';

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

describe('nested templates', () => {
  const evil = "x' OR 1 = 1 --\\";

  test('a fragment is embedded as it is, its values escaped once where it was built', () => {
    const recent = sqlFragment`occurred_at >= ${new Date('2026-11-25T10:00:00Z')} AND merchant_id = ${evil}`;
    expect(recent).toBeInstanceOf(SqlFragment);
    expect(sql`SELECT count() FROM ${ident('db', 't')} WHERE ${recent} AND channel IN ${['card']}`).toBe(
      "SELECT count() FROM db.t WHERE occurred_at >= toDateTime('2026-11-25 10:00:00', 'UTC') AND merchant_id = 'x\\' OR 1 = 1 --\\\\' AND channel IN ('card')",
    );
  });

  test('fragments nest at any depth, and a plain string is always a quoted value, never SQL', () => {
    const inner = sqlFragment`SELECT order_id FROM t WHERE status = ${'failed'}`;
    const middle = sqlFragment`SELECT order_id FROM (${inner}) AS i WHERE order_id != ${evil}`;
    expect(sql`SELECT count() FROM (${middle}) AS m`).toBe(
      "SELECT count() FROM (SELECT order_id FROM (SELECT order_id FROM t WHERE status = 'failed') AS i WHERE order_id != 'x\\' OR 1 = 1 --\\\\') AS m",
    );
    // The text of a built statement passed back in is data, not SQL.
    const text = sql`SELECT 1 WHERE a = ${'b'}`;
    expect(sql`SELECT ${text}`).toBe("SELECT 'SELECT 1 WHERE a = \\'b\\''");
  });

  test('joinSql joins fragments with a fixed separator; fragments and raw keywords mix in a list', () => {
    const where = joinSql([sqlFragment`a = ${1}`, sqlFragment`b = ${'two'}`], ' AND ');
    expect(sql`SELECT * FROM t WHERE ${where} ORDER BY a ${raw('DESC')}`).toBe("SELECT * FROM t WHERE a = 1 AND b = 'two' ORDER BY a DESC");
    expect(sql`SELECT ${[sqlFragment`x + ${1}`, 'y']}`).toBe("SELECT (x + 1, 'y')");
  });

  test('identList checks every name and joins them as a column list', () => {
    expect(sql`INSERT INTO t (${identList(['a', 'b_2'])}) SELECT ${identList(['x'])}`).toBe('INSERT INTO t (a, b_2) SELECT x');
    expect(() => identList(['a', "b' OR 1"])).toThrow(/Not a safe SQL identifier/);
  });

  test('an empty fragment adds nothing, so an optional condition is a fragment too', () => {
    const upper = (to: number | null) => (to === null ? sqlFragment`` : sqlFragment` AND t < ${to}`);
    expect(sql`SELECT 1 WHERE a = 1${upper(null)}`).toBe('SELECT 1 WHERE a = 1');
    expect(sql`SELECT 1 WHERE a = 1${upper(5)}`).toBe('SELECT 1 WHERE a = 1 AND t < 5');
  });
});
