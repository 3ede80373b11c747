import type { Config } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { classifyClickHouseError, clickhouseSettings } from './clickhouse.ts';
import { joinSql, sql, type SqlFragment } from './sql.ts';

/** A table sent along with a query as data (ClickHouse "external data"), not as SQL text. */
export interface ExternalTable {
  /** Name the query refers to, e.g. `ids` in `WHERE event_id IN ids`. */
  name: string;
  /** Column list in ClickHouse syntax, e.g. `event_id String`. */
  structure: string;
  /** Rows, serialised as JSONEachRow; or the table already encoded as RowBinary. */
  rows: readonly Record<string, unknown>[] | { rowBinary: Buffer<ArrayBuffer> };
}

/** Settings of one insert, sent in its URL: names and values are constants of the caller, never data. */
export type InsertSettings = Readonly<Record<string, string>>;

/**
 * Longest query text that may travel with external data. Such a query is a field of the
 * multipart body, and servers cap a field: 256 KiB on 18.16 (Poco's HTML form), 128 KiB by
 * default on current ones (`http_max_field_value_size`). Every statement sent this way has a
 * size that does not grow with the data (the data is the external table), so this is a guard
 * against a programming mistake, not a limit a batch can reach.
 */
export const MAX_EXTERNAL_QUERY_BYTES = 120 * 1024;

/**
 * Plain-HTTP paths to ClickHouse for the two things @clickhouse/client cannot do cheaply: a
 * SELECT with an external table, and an insert of pre-serialised JSONEachRow lines.
 *
 * `query` runs a SELECT with an external table over HTTP. Used where a query needs thousands of values
 * (the dedup look-up, detection's screens by id): sent as data they cost ClickHouse a fast
 * format parse instead of one SQL literal each, and they never pass through SQL text at all.
 * @clickhouse/client has no external-data support, hence the plain HTTP request. Nothing that
 * depends on the data is in the URL, which 18.16 refuses beyond about 16 KB: the query, the
 * table's structure and format are fields of the multipart body, before the table itself (the
 * server reads them in order); the URL carries only the fixed settings. Works on 18.16 and
 * current servers.
 */
export function createClickHouseHttp(
  config: Pick<Config, 'clickhouseUrl' | 'clickhouseUser' | 'clickhousePassword'>,
  /** signal: aborts every request in flight when it fires (a shutdown's deadline). */
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
) {
  const auth = 'Basic ' + Buffer.from(`${config.clickhouseUser}:${config.clickhousePassword}`).toString('base64');
  const timeoutMs = options.timeoutMs ?? 30_000;
  const abortOf = () => (options.signal ? AbortSignal.any([AbortSignal.timeout(timeoutMs), options.signal]) : AbortSignal.timeout(timeoutMs));

  async function post(url: URL, body: BodyInit, what: string, retryStaleSocket = false): Promise<string> {
    let response: Response;
    try {
      response = await fetch(url, { method: 'POST', headers: { authorization: auth }, body, signal: abortOf() });
    } catch (err) {
      // A kept-alive socket the server closed meanwhile fails at once with EPIPE/ECONNRESET; a
      // read-only query is simply sent again on a fresh one. Inserts are left to the caller's
      // retry, which repeats the dedup look-up first.
      const code = (err as { cause?: { code?: string } }).cause?.code;
      if (retryStaleSocket && (code === 'EPIPE' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET')) return post(url, body, what, false);
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw classifyClickHouseError(cause?.code ? Object.assign(new Error(cause.message ?? String(err)), { code: cause.code }) : err, what);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (err) {
      // The connection dropped while the answer was read (undici: "terminated"): the server may be going away.
      throw new PaysentinelError('CLICKHOUSE_UNAVAILABLE', `${what}: the answer was cut off (${(err as Error).message})`, { retriable: true, cause: err });
    }
    if (!response.ok) {
      const code = /Code: (\d+)/.exec(text)?.[1];
      throw classifyClickHouseError(Object.assign(new Error(text.trim().slice(0, 500) || `HTTP ${response.status}`), { code, status: response.status }), what);
    }
    return text;
  }

  async function query<T>(sqlText: string, table: ExternalTable, what: string): Promise<T[]> {
    const statement = `${sqlText} FORMAT JSONEachRow`;
    const bytes = Buffer.byteLength(statement);
    if (bytes > MAX_EXTERNAL_QUERY_BYTES) {
      throw new PaysentinelError(
        'CLICKHOUSE_QUERY_FAILED',
        `${what}: the statement is ${bytes} bytes; one sent with external data must stay under ${MAX_EXTERNAL_QUERY_BYTES} (values belong in ` +
          `the external table)`,
      );
    }
    const url = new URL(config.clickhouseUrl + '/');
    for (const [k, v] of Object.entries(clickhouseSettings)) url.searchParams.set(k, v);
    const body = new FormData();
    body.append('query', statement);
    const binary = 'rowBinary' in table.rows ? table.rows.rowBinary : null;
    body.append(`${table.name}_format`, binary ? 'RowBinary' : 'JSONEachRow');
    body.append(`${table.name}_structure`, table.structure);
    const rows = table.rows as readonly Record<string, unknown>[];
    body.append(table.name, new Blob([binary ?? rows.map((r) => JSON.stringify(r)).join('\n')]), table.name);
    const text = await post(url, body, what, true);
    return jsonLines<T>(text, what);
  }

  /** The URL of an insert: its statement and the insert's own settings (constants of the caller). */
  function insertUrl(statement: string, settings: InsertSettings): URL {
    const url = new URL(config.clickhouseUrl + '/');
    url.searchParams.set('query', statement);
    for (const [k, v] of Object.entries(settings)) url.searchParams.set(k, v);
    return url;
  }

  /** Inserts JSONEachRow lines (each a complete JSON object) into `table` (a checked identifier). */
  async function insertLines(table: SqlFragment, lines: readonly string[], what: string, settings: InsertSettings = {}): Promise<void> {
    if (lines.length === 0) return;
    await post(insertUrl(sql`INSERT INTO ${table} FORMAT JSONEachRow`, settings), lines.join('\n'), what);
  }

  /** Inserts RowBinary rows of `columns` (checked identifiers, in the rows' order) into `table`. */
  async function insertRowBinary(
    table: SqlFragment,
    columns: readonly SqlFragment[],
    body: Buffer<ArrayBuffer>,
    what: string,
    settings: InsertSettings = {},
  ): Promise<void> {
    if (body.length === 0) return;
    await post(insertUrl(sql`INSERT INTO ${table} (${joinSql(columns, ', ')}) FORMAT RowBinary`, settings), body, what);
  }

  /** Runs a SELECT without external data (a small, fixed statement) and returns its rows. */
  async function select<T>(sqlText: string, what: string): Promise<T[]> {
    const url = new URL(config.clickhouseUrl + '/');
    for (const [k, v] of Object.entries(clickhouseSettings)) url.searchParams.set(k, v);
    const text = await post(url, `${sqlText} FORMAT JSONEachRow`, what, true);
    return jsonLines<T>(text, what);
  }

  return { query, insertLines, insertRowBinary, select };
}
export type ClickHouseHttp = ReturnType<typeof createClickHouseHttp>;

/** The rows of a JSONEachRow answer. */
function jsonLines<T>(text: string, what: string): T[] {
  try {
    return text === ''
      ? []
      : text
          .trimEnd()
          .split('\n')
          .map((line) => JSON.parse(line) as T);
  } catch (err) {
    throw new PaysentinelError('CLICKHOUSE_QUERY_FAILED', `${what}: unreadable answer from ClickHouse`, { cause: err });
  }
}
