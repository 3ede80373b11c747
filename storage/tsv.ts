import { Readable } from 'node:stream';
import { retry } from '../errors/index.ts';
import { classifyClickHouseError, type ClickHouseClient } from './clickhouse.ts';

/**
 * TabSeparated in and out, for the bulk paths (statement lines, reconciliation reads and
 * results): ClickHouse parses and writes it about twice as fast as JSONEachRow on both 18.16 and
 * current versions, and so does Node. Escaping follows ClickHouse's TabSeparated rules exactly,
 * so any string (quotes, backslashes, tabs, newlines, NUL, any Unicode) round-trips as data.
 */

/** A TSV cell value: strings are escaped, null is \N. */
export type TsvValue = string | number | bigint | null;

const escapes: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\0': '\\0', '\b': '\\b', '\f': '\\f' };
const unescapes: Record<string, string> = { '\\': '\\', t: '\t', n: '\n', r: '\r', '0': '\0', b: '\b', f: '\f', "'": "'", a: '\x07', v: '\v' };

/** One field as ClickHouse's TabSeparated input reads it. */
export function tsvEscape(value: TsvValue): string {
  if (value === null) return '\\N';
  if (typeof value !== 'string') return String(value);
  return value.replace(/[\\\t\n\r\0\b\f]/g, (c) => escapes[c]!);
}

/** One field of ClickHouse's TabSeparated output back to its string (\N is null). */
export function tsvUnescape(field: string): string | null {
  if (field === '\\N') return null;
  if (!field.includes('\\')) return field;
  return field.replace(/\\(.)/gs, (_, c: string) => unescapes[c] ?? c);
}

/** Runs a SELECT and returns its rows as arrays of unescaped fields, in column order. */
export async function queryTsv(client: ClickHouseClient, query: string, what: string): Promise<(string | null)[][]> {
  return queryTsvMap(client, query, what, (cells) => cells);
}

/**
 * Runs a SELECT and maps each row (its unescaped fields, in column order) as it is read: at a
 * million rows, the cells of one row die young instead of all rows' cells living until the end,
 * which kept the garbage collector busier than the work itself (bench:statements).
 */
export async function queryTsvMap<T>(client: ClickHouseClient, query: string, what: string, map: (cells: (string | null)[]) => T): Promise<T[]> {
  // A read can always be sent again: a kept-alive socket the server closed meanwhile is retried.
  const text = await retry(
    async () => {
      try {
        const result = await client.query({ query, format: 'TabSeparated' });
        return await result.text();
      } catch (err) {
        throw classifyClickHouseError(err, what);
      }
    },
    { retries: 3 },
  );
  const out: T[] = [];
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const cells: (string | null)[] = text.slice(start, end).split('\t');
    for (let i = 0; i < cells.length; i++) cells[i] = tsvUnescape(cells[i]!);
    out.push(map(cells));
    start = end + 1;
  }
  return out;
}

/**
 * Inserts rows (values in `columns` order) as TabSeparated, streamed in the request body. A
 * retriable failure (a kept-alive socket closed by the server, a timeout) is retried with a fresh
 * stream, so the rows may be written twice: only for tables that fold an exact re-insert
 * (ReplacingMergeTree on the rows' key) and whose readers use FINAL.
 */
export async function insertTsv(
  client: ClickHouseClient,
  table: string,
  columns: readonly string[],
  rows: readonly (readonly TsvValue[])[],
  what: string,
): Promise<void> {
  if (rows.length === 0) return;
  // Built in slices so a million rows never become one giant string.
  const slice = 50_000;
  const chunks = function* () {
    for (let i = 0; i < rows.length; i += slice) {
      let out = '';
      for (const row of rows.slice(i, i + slice)) out += row.map(tsvEscape).join('\t') + '\n';
      yield out;
    }
  };
  await insertTsvText(client, table, columns, chunks, what);
}

/**
 * Inserts TabSeparated text that the caller built (escaped with `tsvEscape`, one `\n`-ended line
 * per row), for bulk paths where building it directly saves an array per row. `chunks` is called
 * afresh for each attempt; the same retry and duplicate rules as insertTsv apply.
 */
export async function insertTsvText(
  client: ClickHouseClient,
  table: string,
  columns: readonly string[],
  chunks: () => Iterable<string>,
  what: string,
): Promise<void> {
  await retry(
    async () => {
      try {
        await client.insert({
          table,
          values: Readable.from(chunks(), { objectMode: false }),
          format: 'TabSeparated',
          columns: [...columns] as [string, ...string[]],
        });
      } catch (err) {
        throw classifyClickHouseError(err, what);
      }
    },
    { retries: 3 },
  );
}
