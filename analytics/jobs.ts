import { randomUUID } from 'node:crypto';
import type { Logger } from '../log/index.ts';
import type { JobMetrics } from '../metrics/registry.ts';
import { insertRows, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, toDateTimeText } from '../storage/sql.ts';
import { lastRunQuery, recentRunsQuery } from './queries.ts';

/** What every analytics job receives; nothing is read from globals or the environment. */
export interface AnalyticsDeps {
  clickhouse: ClickHouseClient;
  /** Database holding payment_events, payment_rates and job_runs. */
  database: string;
  logger: Logger;
  /** Counts every run by job and status (paysentinel_job_runs_total); optional for one-off runs. */
  metrics?: JobMetrics;
  /** Folder the daily report is written to (REPORTS_DIR). @default 'reports' under the working directory */
  reportsDir?: string;
  /** The statements job's inbox (STATEMENTS_DIR, '' = none), grace and size limit; without it the job only reconciles, with the defaults. */
  statements?: { dir: string; graceMs: number; maxBytes: number };
}

/**
 * A job and when it runs; `run` is the plain function of (dependencies, now) the scheduler calls.
 * Each job module declares its own next to its `run`; analytics/schedule.ts lists them. `D` is
 * what the job needs beyond AnalyticsDeps (the retry policy: its publisher).
 */
export interface ScheduledJob<D extends AnalyticsDeps = AnalyticsDeps> {
  name: string;
  /** node-cron expression, evaluated in UTC. */
  cron: string;
  run(deps: D, now: Date): Promise<unknown>;
  /**
   * Its scheduled runs are bounded in time (a budget per run, cut into slices): the scheduler runs
   * them on `boundedClickhouse` when it has one (one thread, at RATES_PRIORITY: by default above
   * the other jobs', below ingest's and detection's) instead of the jobs' background client
   * (docs/adr/0003). Only the rates job is marked: RATES_PRIORITY is its setting.
   */
  bounded?: boolean;
  /** How `paysentinel analytics run NAME` runs it once, by hand. */
  byHand?: ManualRun<JobRun, D>;
}

/** A run by hand: the options it takes, the run itself, and what it prints. */
export interface ManualRun<R extends JobRun = JobRun, D extends AnalyticsDeps = AnalyticsDeps> {
  /** It takes --from and --to (else neither). */
  window: boolean;
  /** It publishes what it stores (the CLI passes a Kafka publisher unless --no-publish). */
  publishes?: boolean;
  run(deps: D, now: Date, window: { from?: Date; to?: Date }): Promise<R>;
  /** What the terminal shows of a finished run. */
  text(result: R, published: boolean): string;
  /** What --json prints of it. @default the result itself */
  json?(result: R): unknown;
}

// Failures runJob has already logged and counted, so the scheduler does not report them twice.
const reported = new WeakSet<object>();

/** True when `err` was logged and counted by runJob. */
export const alreadyReported = (err: unknown): boolean => typeof err === 'object' && err !== null && reported.has(err);

/**
 * Logs and counts a run that failed outside runJob (e.g. while planning its window), unless runJob
 * already did. The scheduler calls this for every failed tick.
 */
export function reportJobFailure(deps: Pick<AnalyticsDeps, 'logger' | 'metrics'>, job: string, err: unknown): void {
  if (alreadyReported(err)) return;
  deps.metrics?.runs.inc({ job, status: 'failed' });
  deps.logger.error('job failed', { job, err });
  if (typeof err === 'object' && err !== null) reported.add(err);
}

/** The outcome of one recorded job run. */
export interface JobRun {
  job: string;
  runId: string;
  from: Date;
  to: Date;
  startedAt: Date;
  finishedAt: Date;
  status: 'ok' | 'failed';
  rows: number;
  error?: string;
}

const runRow = (
  r: { job: string; runId: string; from: Date; to: Date; startedAt: Date; finishedAt: Date | null; status: string; rows: number; error: string },
  version: number,
) => ({
  job: r.job,
  run_id: r.runId,
  window_from: toDateTimeText(r.from.getTime()),
  window_to: toDateTimeText(r.to.getTime()),
  started_at: toDateTimeText(r.startedAt.getTime()),
  finished_at: r.finishedAt === null ? null : toDateTimeText(r.finishedAt.getTime()),
  status: r.status,
  rows: r.rows,
  error: r.error,
  version,
});

/**
 * Runs `work` as one recorded run of `job` over [from, to): a `running` row in job_runs before,
 * an `ok` or `failed` row (rows written, error message) after. A failure is logged, recorded and
 * re-thrown, so a scheduler or the CLI sees it too. `work` receives the run's id and start (so
 * what it stores can name the run job_runs records) and returns the number of rows it wrote.
 */
export async function runJob(
  deps: AnalyticsDeps,
  job: string,
  window: { from: Date; to: Date },
  work: (run: { runId: string; startedAt: Date }) => Promise<number>,
  clock: () => Date = () => new Date(),
): Promise<JobRun> {
  const table = ident(deps.database, 'job_runs').text;
  const startedAt = clock();
  // Sorts by start time to the millisecond, which started_at (DateTime, seconds) cannot.
  const runId = `${startedAt.toISOString()}-${randomUUID().slice(0, 8)}`;
  const base = { job, runId, from: window.from, to: window.to, startedAt };
  const log = deps.logger.child({ job, run_id: runId, window_from: window.from.toISOString(), window_to: window.to.toISOString() });
  const fail = (err: unknown): never => {
    deps.metrics?.runs.inc({ job, status: 'failed' });
    if (typeof err === 'object' && err !== null) reported.add(err);
    throw err;
  };
  try {
    await insertRows(deps.clickhouse, table, [runRow({ ...base, finishedAt: null, status: 'running', rows: 0, error: '' }, 1)], 'record job start');
  } catch (err) {
    // ClickHouse unreachable: the run cannot even be recorded, so the log and the counter are all there is.
    log.error('job failed: could not record its start in job_runs', { err });
    return fail(err);
  }
  let rows = 0;
  let error: unknown;
  deps.metrics?.running(job, true);
  try {
    rows = await work({ runId, startedAt });
  } catch (err) {
    error = err;
  } finally {
    deps.metrics?.running(job, false);
  }
  const finishedAt = clock();
  const message = error === undefined ? '' : error instanceof Error ? error.message : String(error);
  const status = error === undefined ? 'ok' : 'failed';
  const duration_ms = finishedAt.getTime() - startedAt.getTime();
  deps.metrics?.duration.set(duration_ms / 1000, { job });
  try {
    await insertRows(deps.clickhouse, table, [runRow({ ...base, finishedAt, status, rows, error: message }, 2)], 'record job end');
  } catch (err) {
    log.error('job failed: could not record its end in job_runs', { err, work_error: message || undefined, duration_ms });
    return fail(error ?? err);
  }
  if (error !== undefined) {
    log.error('job failed', { err: error, duration_ms });
    return fail(error);
  }
  deps.metrics?.runs.inc({ job, status: 'ok' });
  deps.metrics?.lastSuccess.set(finishedAt.getTime() / 1000, { job });
  log.info('job finished', { rows, duration_ms });
  return { ...base, finishedAt, status, rows };
}

/** End of the window of the job's latest successful run, or null when it never succeeded. */
export async function lastSuccessfulWindowEnd(deps: AnalyticsDeps, job: string): Promise<Date | null> {
  const rows = await queryRows<{ n: string | number; t: number }>(deps.clickhouse, lastRunQuery(deps.database, job), 'read last job run');
  const row = rows[0];
  return row && Number(row.n) > 0 ? new Date(Number(row.t) * 1000) : null;
}

/** The job's runs, newest first, each in its latest state (running, ok or failed). */
export async function recentRuns(deps: Pick<AnalyticsDeps, 'clickhouse' | 'database'>, job: string, limit = 20): Promise<JobRunRow[]> {
  return queryRows<JobRunRow>(deps.clickhouse, recentRunsQuery(deps.database, job, limit), 'read job runs');
}

/** One job_runs row as ClickHouse prints it (DateTime as 'YYYY-MM-DD hh:mm:ss' UTC). */
export interface JobRunRow {
  run_id: string;
  status: 'running' | 'ok' | 'failed';
  rows: string;
  window_from: string;
  window_to: string;
  started_at: string;
  finished_at: string | null;
  error: string;
}
