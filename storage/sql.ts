/**
 * The one place values become SQL text. Every value that reaches a ClickHouse statement goes
 * through `sqlLiteral` (usually via the `sql` tag); identifiers only through `ident`, and only
 * from constants or validated configuration. ClickHouse 18.16 has no query parameters
 * (`{name:Type}`), so escaping must be exact for both old and current servers.
 *
 * Templates nest, as in clickhouse-js's sql_template.ts: a fragment built with `sqlFragment`
 * (a subquery, a condition, a column list, a constant expression) is a value the templates
 * insert as it is, its own values already escaped, so SQL is composed without `raw()`; helpers
 * that build a piece of a statement return a SqlFragment. `sql` gives the finished statement's
 * text, the string the storage clients send: it stays a plain string, which the templates quote
 * as a value (a string cannot tell SQL from data), so a statement that is embedded elsewhere is
 * built with `sqlFragment` and its `.text` sent when it is used alone.
 */

/** A fragment of SQL that is already safe and is inserted verbatim by the `sql` and `sqlFragment` tags. */
export class SqlFragment {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export type SqlValue = string | number | bigint | boolean | null | undefined | Date | SqlFragment | readonly SqlValue[];

const escapes: Record<string, string> = {
  '\\': '\\\\',
  "'": "\\'",
  '\0': '\\0',
  '\b': '\\b',
  '\f': '\\f',
  '\r': '\\r',
  '\n': '\\n',
  '\t': '\\t',
};

/** Quotes a string as a ClickHouse string literal: backslash-escapes quotes, backslashes and control bytes. */
export function quoteString(value: string): string {
  // Control characters other than the named ones are written as \xHH so no raw byte below 0x20 reaches the parser.
  return "'" + value.replace(/[\\'\0\b\f\r\n\t]|[\x01-\x1f\x7f]/g, (ch) => escapes[ch] ?? '\\x' + ch.charCodeAt(0).toString(16).padStart(2, '0')) + "'";
}

/** 'YYYY-MM-DD hh:mm:ss' in UTC: the DateTime text both old and current ClickHouse parse without best_effort (in JSONEachRow rows and external data). */
export const toDateTimeText = (epochMs: number): string => new Date(epochMs).toISOString().slice(0, 19).replace('T', ' ');

/** Formats a Date as a UTC DateTime literal (second precision, what 18.16 stores). */
export function dateTimeLiteral(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new TypeError('Invalid Date cannot be used in SQL');
  return `toDateTime(${quoteString(date.toISOString().slice(0, 19).replace('T', ' '))}, 'UTC')`;
}

/** Turns one value into SQL text. Arrays become a parenthesised list for `IN (...)`. */
export function sqlLiteral(value: SqlValue): string {
  if (value === null || value === undefined) return 'NULL';
  if (value instanceof SqlFragment) return value.text;
  if (typeof value === 'string') return quoteString(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`Non-finite number ${value} cannot be used in SQL`);
    return String(value);
  }
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (value instanceof Date) return dateTimeLiteral(value);
  if (Array.isArray(value)) {
    if (value.length === 0) throw new TypeError('An empty list cannot be used in SQL IN (...)');
    return '(' + value.map((v) => sqlLiteral(v)).join(', ') + ')';
  }
  throw new TypeError(`Unsupported SQL value of type ${typeof value}`);
}

/**
 * Tagged template: sql`SELECT ... WHERE id = ${id}` with every interpolation escaped and every
 * fragment (sqlFragment, ident) inserted as it is; the statement's text.
 */
export function sql(strings: TemplateStringsArray, ...values: SqlValue[]): string {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += sqlLiteral(values[i]) + (strings[i + 1] ?? '');
  return out;
}

/**
 * The same template as `sql`, for a piece of a statement: the result is a fragment that `sql`
 * and `sqlFragment` embed without quoting, e.g.
 *   const recent = sqlFragment`occurred_at >= ${since}`;
 *   sql`SELECT count() FROM ${table} WHERE ${recent} AND channel = ${channel}`
 */
export function sqlFragment(strings: TemplateStringsArray, ...values: SqlValue[]): SqlFragment {
  return new SqlFragment(sql(strings, ...values));
}

/** Fragments joined by a separator, e.g. the conditions of a WHERE with ' AND '. */
export function joinSql(parts: readonly SqlFragment[], separator: ' AND ' | ' OR ' | ', '): SqlFragment {
  return new SqlFragment(parts.map((p) => p.text).join(separator));
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A database, table or column name; refuses anything that is not a plain identifier. */
export function ident(...parts: string[]): SqlFragment {
  for (const p of parts) if (!IDENT.test(p)) throw new TypeError(`Not a safe SQL identifier: ${JSON.stringify(p)}`);
  return new SqlFragment(parts.join('.'));
}

/** A list of plain identifiers (columns, aliases) from constants, e.g. a SELECT or INSERT column list. */
export function identList(names: readonly string[]): SqlFragment {
  return joinSql(
    names.map((n) => ident(n)),
    ', ',
  );
}

/**
 * Marks trusted SQL text for use inside the templates: identifiers and keywords from constants in
 * this codebase only. SQL built with values is composed with `sqlFragment`, never through raw().
 */
export const raw = (text: string): SqlFragment => new SqlFragment(text);
