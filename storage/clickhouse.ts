import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import type { Config } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';

export type { ClickHouseClient };

/**
 * Settings every statement runs with. Chosen to behave the same on ClickHouse 18.16 and current
 * versions: long IN lists (dedup look-ups) need a larger max_query_size than the 256 KiB default.
 * `priority` 1 is the highest: ingest, detection and the CLI run at it, and a query of a lower
 * priority (BACKGROUND_PRIORITY) pauses while one of theirs runs.
 */
export const clickhouseSettings = {
  max_query_size: '16777216',
  priority: '1',
} as const;

/**
 * The scheduled jobs' priority: while a query of a higher one (ingest, detection) runs, theirs
 * pause, so a rates run that holds a thread for minutes does not slow the ticks; the jobs take
 * longer instead (how much shows in job_runs).
 */
export const BACKGROUND_PRIORITY = 10;

/**
 * Creates a client for the configured server. Does not connect until the first request.
 * `maxThreads` caps the threads each of its queries may use and `priority` sets how its
 * queries yield (background work leaves the cores to ingest and detection).
 */
export function createClickHouse(
  config: Pick<Config, 'clickhouseUrl' | 'clickhouseUser' | 'clickhousePassword'>,
  options: { requestTimeoutMs?: number; maxThreads?: number; priority?: number; logQueries?: boolean } = {},
): ClickHouseClient {
  const settings: Record<string, string> = { ...clickhouseSettings };
  // Each query in system.query_log (rows read, duration): what the analytics bench reports.
  if (options.logQueries) settings.log_queries = '1';
  if (options.maxThreads !== undefined) settings.max_threads = String(options.maxThreads);
  if (options.priority !== undefined) settings.priority = String(options.priority);
  return createClient({
    url: config.clickhouseUrl,
    username: config.clickhouseUser,
    password: config.clickhousePassword,
    request_timeout: options.requestTimeoutMs ?? 30_000,
    clickhouse_settings: settings as never,
    compression: { request: false, response: false },
    keep_alive: { enabled: true },
    // Failures are classified and logged by the caller (classifyClickHouseError); the client's own log would repeat them.
    log: { level: ClickHouseLogLevel.OFF },
  });
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET']);

/**
 * Wraps a ClickHouse failure: network failures, timeouts and server overload are retriable;
 * a rejected statement (syntax, types) is not, since repeating it cannot help.
 */
export function classifyClickHouseError(err: unknown, what: string): PaysentinelError {
  if (err instanceof PaysentinelError) return err;
  const e = err as { code?: string; message?: string; type?: string };
  const message = e?.message ?? String(err);
  const network = (e?.code !== undefined && NETWORK_CODES.has(e.code)) || /timeout|socket hang up|ECONNREFUSED|ECONNRESET|other side closed/i.test(message);
  // Server-side codes that mean "try again later": TOO_MANY_PARTS (252), TOO_MANY_SIMULTANEOUS_QUERIES (202), MEMORY_LIMIT_EXCEEDED (241), NETWORK/ABORTED.
  const transientServer = e?.code !== undefined && ['252', '202', '241', '210', '209', '159'].includes(String(e.code));
  const retriable = network || transientServer;
  return new PaysentinelError(retriable ? 'CLICKHOUSE_UNAVAILABLE' : 'CLICKHOUSE_QUERY_FAILED', `${what}: ${message}`, { retriable, cause: err });
}

/**
 * Server error codes that say the statement or its target is wrong, not the rows it carries:
 * unknown table, database or column, syntax (our statements are fixed text), read-only or full
 * server, authentication and access. Repeating such a write helps once someone fixes the cause;
 * dead-lettering its rows would empty the topic into the DLQ for a configuration mistake.
 */
const ENVIRONMENT_CODES = new Set(['8', '16', '47', '60', '62', '81', '115', '164', '192', '193', '194', '195', '201', '218', '242', '243', '497', '516']);

/**
 * What a failed write means for the rows it carried:
 * - `unavailable`: the server could not be reached or is overloaded; retry the same rows later;
 * - `environment`: the statement or its target is wrong (see ENVIRONMENT_CODES, or HTTP 401/403/404); retry later too;
 * - `rows`: the server refused this request's data (a value it cannot parse or store, a request
 *   too large): some rows are at fault, and writing fewer at a time finds them.
 */
export type WriteFailureKind = 'unavailable' | 'environment' | 'rows';

export function writeFailureKind(err: unknown): WriteFailureKind {
  if (err instanceof PaysentinelError && err.retriable) return 'unavailable';
  const cause = (err instanceof PaysentinelError ? err.cause : err) as { code?: unknown; status?: unknown } | undefined;
  if (cause?.code !== undefined && ENVIRONMENT_CODES.has(String(cause.code))) return 'environment';
  if (cause?.status === 401 || cause?.status === 403 || cause?.status === 404) return 'environment';
  if (!(err instanceof PaysentinelError) && classifyClickHouseError(err, '').retriable) return 'unavailable';
  return 'rows';
}

/** Runs a query and returns its rows as objects. */
export async function queryRows<T = Record<string, unknown>>(client: ClickHouseClient, query: string, what = 'ClickHouse query'): Promise<T[]> {
  try {
    const result = await client.query({ query, format: 'JSONEachRow' });
    return (await result.json()) as T[];
  } catch (err) {
    throw classifyClickHouseError(err, what);
  }
}

/** Runs a statement without output (DDL, INSERT ... SELECT). */
export async function command(client: ClickHouseClient, query: string, what = 'ClickHouse statement'): Promise<void> {
  try {
    await client.command({ query });
  } catch (err) {
    throw classifyClickHouseError(err, what);
  }
}

/** Inserts rows as JSONEachRow, the format both 18.16 and current servers accept. */
export async function insertRows(client: ClickHouseClient, table: string, rows: readonly object[], what = `insert into ${table}`): Promise<void> {
  if (rows.length === 0) return;
  try {
    await client.insert({ table, values: rows as object[], format: 'JSONEachRow' });
  } catch (err) {
    throw classifyClickHouseError(err, what);
  }
}

/** True when the server answers /ping. */
export async function pingClickHouse(client: ClickHouseClient): Promise<boolean> {
  try {
    const result = await client.ping();
    return result.success;
  } catch {
    return false;
  }
}
