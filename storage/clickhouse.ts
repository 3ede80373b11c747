import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import type { Config, JobPriority } from '../config/index.ts';
import { PaysentinelError } from '../errors/index.ts';

export type { ClickHouseClient };

/**
 * Settings every statement runs with. Chosen to behave the same on ClickHouse 18.16 and current
 * versions: the statements with lists (the case look-up's 2,000 keys, the demo's ids) need a
 * larger max_query_size than the 256 KiB default.
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
 * The rates job's priority by RATES_PRIORITY: `above-jobs` sits between ingest's and detection's
 * (1) and the other jobs' (BACKGROUND_PRIORITY), so its statements still pause for ingest's and
 * detection's, and reconcile's or the baselines' pause for a rates run. ClickHouse pauses a
 * statement only between the blocks it reads, for up to a second at a time.
 */
export const RATES_PRIORITIES: Readonly<Record<JobPriority, number>> = { foreground: 1, 'above-jobs': 5, background: BACKGROUND_PRIORITY };

/**
 * How long one of a job's statements may run, scheduled or by hand: a 24-hour window at a high
 * rate, or one that spills to disk (JOBS_SPILL_BYTES), takes minutes, far past the usual 30 s.
 * The server stops the statement then too (`max_execution_time`): it does not stop an INSERT ...
 * SELECT when the client hangs up, so abandoned statements would pile up.
 */
export const JOB_STATEMENT_TIMEOUT_MS = 600_000;

/**
 * When the server stops a job's statement (`max_execution_time`), given the client's timeout: 15 s
 * before it, so the server's own error (TIMEOUT_EXCEEDED) is what the job records, not a socket
 * timeout. The server checks it between the blocks it reads; the final merge of a grouping that
 * spilled to disk is not interrupted, so such a statement may still outlive its client.
 */
export const serverStopSec = (requestTimeoutMs: number): number => Math.max(1, Math.ceil(requestTimeoutMs / 1000) - 15);

/**
 * JOBS_SPILL_BYTES resolved: `auto` is half the per-query memory limit the server applies to
 * this user (`max_memory_usage`; ClickHouse advises spilling at half of it, as the merge of the
 * spilled parts needs the other half); null when it has none, so that the server's own settings
 * apply (ClickHouse 25.1 and later spill at half the available memory by default). A number is
 * taken as it is, 0 included.
 */
export async function resolveSpillBytes(
  config: Pick<Config, 'clickhouseUrl' | 'clickhouseUser' | 'clickhousePassword' | 'jobsSpillBytes'>,
): Promise<number | null> {
  if (config.jobsSpillBytes !== 'auto') return config.jobsSpillBytes;
  const probe = createClickHouse(config);
  try {
    const [row] = await queryRows<{ value: string }>(probe, "SELECT value FROM system.settings WHERE name = 'max_memory_usage'", 'read the memory limit');
    const limit = Number(row?.value ?? 0);
    return Number.isSafeInteger(limit) && limit > 0 ? Math.floor(limit / 2) : null;
  } finally {
    await probe.close();
  }
}

/**
 * The scheduled jobs' clients: one thread per query, the jobs at BACKGROUND_PRIORITY and the rates
 * job at RATES_PRIORITIES[config.ratesPriority] (the same client when that is the jobs' own); their
 * groupings spill at JOBS_SPILL_BYTES (resolveSpillBytes), and the server stops a statement just
 * before the client would give up on it (serverStopSec).
 */
export async function createJobsClickHouse(
  config: Pick<Config, 'clickhouseUrl' | 'clickhouseUser' | 'clickhousePassword' | 'ratesPriority' | 'jobsSpillBytes'>,
  options: { requestTimeoutMs: number; logQueries?: boolean },
): Promise<{ jobs: ClickHouseClient; rates: ClickHouseClient; spillBytes: number | null; close(): Promise<void> }> {
  const spillBytes = await resolveSpillBytes(config);
  const shared = { ...options, maxThreads: 1, spillBytes: spillBytes ?? undefined, maxExecutionSec: serverStopSec(options.requestTimeoutMs) };
  const jobs = createClickHouse(config, { ...shared, priority: BACKGROUND_PRIORITY });
  const priority = RATES_PRIORITIES[config.ratesPriority];
  const rates = priority === BACKGROUND_PRIORITY ? jobs : createClickHouse(config, { ...shared, priority });
  return {
    jobs,
    rates,
    spillBytes,
    close: async () => {
      try {
        await jobs.close();
      } finally {
        if (rates !== jobs) await rates.close();
      }
    },
  };
}

/**
 * How long a migration statement may run: one that copies the stored history into a new table
 * (014, 015, 016) reads all of it, which takes minutes to hours on a large store. With the
 * usual 30 s the client gave up while the server went on, and the next start began another copy.
 */
export const MIGRATION_TIMEOUT_MS = 6 * 3_600_000;

/**
 * Creates a client for the configured server. Does not connect until the first request.
 * `maxThreads` caps the threads each of its queries may use and `priority` sets how its
 * queries yield (background work leaves the cores to ingest and detection). `spillBytes`
 * (JOBS_SPILL_BYTES, the jobs' clients): a GROUP BY or ORDER BY holding more than that continues
 * on disk instead of failing at the query's memory limit (0: not by this setting).
 * `maxExecutionSec`: the server stops a statement running longer (serverStopSec).
 */
export function createClickHouse(
  config: Pick<Config, 'clickhouseUrl' | 'clickhouseUser' | 'clickhousePassword'>,
  options: { requestTimeoutMs?: number; maxThreads?: number; priority?: number; logQueries?: boolean; spillBytes?: number; maxExecutionSec?: number } = {},
): ClickHouseClient {
  const settings: Record<string, string> = { ...clickhouseSettings };
  // Each query in system.query_log (rows read, duration): what the analytics bench reports.
  if (options.logQueries) settings.log_queries = '1';
  if (options.maxThreads !== undefined) settings.max_threads = String(options.maxThreads);
  if (options.priority !== undefined) settings.priority = String(options.priority);
  if (options.spillBytes !== undefined) {
    settings.max_bytes_before_external_group_by = String(options.spillBytes);
    settings.max_bytes_before_external_sort = String(options.spillBytes);
  }
  if (options.maxExecutionSec !== undefined) {
    settings.max_execution_time = String(options.maxExecutionSec);
    // Plain wall-clock time: ClickHouse 20 to 23 otherwise also stop a statement after 10 s when
    // its speed so far predicts it would pass the limit, and the jobs' pauses behind ingest's and
    // detection's statements (priority) make that prediction wrong.
    settings.timeout_before_checking_execution_speed = '0';
  }
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
 * Server error codes that say the request's data is at fault: a value the server cannot parse or
 * convert (6, 25, 26, 27, 38, 41, 53, 70, 72, 117), one a column cannot hold (69, 131), an
 * input cut short (32, 33), or a multipart field over the server's limit (1000, Poco's "Field
 * value too long"). Only these make ingest write a batch in parts to find the rows at fault.
 */
const DATA_CODES = new Set(['6', '25', '26', '27', '32', '33', '38', '41', '53', '69', '70', '72', '117', '131', '1000']);

/**
 * What a failed write means for the rows it carried:
 * - `unavailable`: the server could not be reached or is overloaded; retry the same rows later;
 * - `rows`: the server refused this request's data (DATA_CODES, or HTTP 400/413 without a code:
 *   a request too large): some rows are at fault, and writing fewer at a time finds them;
 * - `environment`: anything else: the statement or its target is wrong (unknown table, syntax,
 *   authentication, read-only, disk full), a proxy in front of the server answered, or a bug.
 *   Retried like `unavailable`: whatever is not known to be about the data must never send data
 *   to the dead-letter topic, where a configuration mistake would empty the stream into it.
 */
export type WriteFailureKind = 'unavailable' | 'environment' | 'rows';

export function writeFailureKind(err: unknown): WriteFailureKind {
  if (err instanceof PaysentinelError && err.retriable) return 'unavailable';
  const cause = (err instanceof PaysentinelError ? err.cause : err) as { code?: unknown; status?: unknown } | undefined;
  if (cause?.code !== undefined && DATA_CODES.has(String(cause.code))) return 'rows';
  if (cause?.code === undefined && (cause?.status === 400 || cause?.status === 413)) return 'rows';
  if (!(err instanceof PaysentinelError) && classifyClickHouseError(err, '').retriable) return 'unavailable';
  return 'environment';
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
