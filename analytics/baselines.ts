import { command, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, joinSql, sql, sqlFragment } from '../storage/sql.ts';
import { runJob, type AnalyticsDeps, type JobRun, type ScheduledJob } from './jobs.ts';
import { paymentsSince } from './queries.ts';
import { EARLIEST_KEY, LATEST_KEY } from '../storage/event-order.ts';

/**
 * The `baselines` job: failure-rate baselines per channel and per device, per hour of day (UTC)
 * and over all hours, computed in ClickHouse from the attempts of the last days. The rules read
 * the channel's technical failure rate as the fact `channel_technical_failure_rate_baseline`
 * (rules/features.json) through `baselineFacts`. Definitions: analytics/DEFINITIONS.md.
 */

export const BASELINES_JOB = 'baselines';

/** How far back a run looks, ending at the start of the current hour. @default 7 days */
export const DEFAULT_BASELINE_LOOKBACK_MS = 7 * 86_400_000;
/** Fewer decided attempts than this and a (entity, hour) rate is not stored. @default 100 */
export const DEFAULT_BASELINE_MIN_DECIDED = 100;
/** hour_of_day of the all-hours row. */
export const ALL_HOURS = 255;
/** Failure codes that are the platform's or the network's doing, not the payer's. */
export const TECHNICAL_FAILURE_CODES = ['network_error', 'system_error', 'timeout'] as const;

const HOUR_MS = 3_600_000;

export interface BaselineWrite {
  /** Attempts whose first event is at or after this (ms)... */
  fromMs: number;
  /** ... and before this. */
  toMs: number;
  minDecided: number;
  version: number;
  computedAt: Date;
}

/**
 * One INSERT ... SELECT: attempts (outcome = latest status, channel and device of the earliest
 * event, hour of day of the first event) first seen in [from, to) and decided (not processing),
 * each counted once per row it feeds (channel x hour, channel, device x hour, device, all) via
 * arrayJoin, so the events are read once. Rows under `minDecided` are left out, except `all`.
 */
export function insertBaselinesQuery(database: string, o: BaselineWrite): string {
  if (!(Number.isSafeInteger(o.fromMs) && Number.isSafeInteger(o.toMs) && o.fromMs >= 0 && o.fromMs < o.toMs)) {
    throw new RangeError(`Invalid window [${o.fromMs}, ${o.toMs})`);
  }
  const attempts = sqlFragment`SELECT
      order_id,
      ifNull(attempt, 0) AS attempt_no,
      min(toUInt64(occurred_at) * 1000 + occurred_ms) AS a_first_ms,
      toUInt8(toHour(min(occurred_at))) AS a_hour,
      argMax(toString(status), ${LATEST_KEY}) AS outcome,
      argMax(ifNull(failure_code, ''), ${LATEST_KEY}) AS a_code,
      argMin(channel, ${EARLIEST_KEY}) AS a_channel,
      argMin(ifNull(device_id, ''), ${EARLIEST_KEY}) AS a_device
    FROM ${paymentsSince(database, o.fromMs)}
    GROUP BY order_id, attempt_no
    HAVING a_first_ms >= ${o.fromMs} AND a_first_ms < ${o.toMs} AND outcome != 'processing'`;
  // A timeout outcome without a code counts as the code `timeout`, as in the retry policy.
  const technical = sqlFragment`(a_code IN ${[...TECHNICAL_FAILURE_CODES]} OR (outcome = 'timeout' AND a_code = '')) AND outcome != 'succeeded'`;
  const keys = sqlFragment`arrayJoin([
        tuple('channel', a_channel, a_hour), tuple('channel', a_channel, toUInt8(${ALL_HOURS})),
        tuple('device', a_device, a_hour), tuple('device', a_device, toUInt8(${ALL_HOURS})),
        tuple('all', '', toUInt8(${ALL_HOURS}))])`;
  const keyed = sqlFragment`SELECT outcome, ${technical} AS is_technical, ${keys} AS k
    FROM (${attempts}) AS a`;
  const rows = sqlFragment`SELECT tupleElement(k, 1) AS b_type, tupleElement(k, 2) AS b_id, tupleElement(k, 3) AS b_hour, outcome, is_technical
    FROM (${keyed}) AS keyed`;
  return sql`INSERT INTO ${ident(database, 'failure_baselines')}
  (version, computed_at, window_from, window_to, entity_type, entity_id, hour_of_day, decided, failed, timed_out, technical_failures, failure_rate,
    technical_failure_rate)
SELECT toUInt64(${o.version}), ${o.computedAt}, toDateTime(${Math.floor(o.fromMs / 1000)}, 'UTC'), toDateTime(${Math.floor(o.toMs / 1000)}, 'UTC'),
  b_type, b_id, b_hour, n_decided, n_failed, n_timeout, n_technical, (n_failed + n_timeout) / n_decided, n_technical / n_decided
FROM (
  SELECT b_type, b_id, b_hour, count() AS n_decided, countIf(outcome = 'failed') AS n_failed, countIf(outcome = 'timeout') AS n_timeout,
    countIf(is_technical) AS n_technical
  FROM (${rows}) AS r
  WHERE b_id != '' OR b_type = 'all'
  GROUP BY b_type, b_id, b_hour
  HAVING n_decided >= ${o.minDecided} OR b_type = 'all'
)`;
}

/**
 * The latest run's rows, optionally of one entity type and only some hours of day. The version is
 * looked up in the same statement, so a reader never mixes two runs.
 */
export function latestBaselinesQuery(database: string, filter: { entityType?: string; hours?: number[]; asOfMs?: number } = {}): string {
  const table = ident(database, 'failure_baselines');
  // Versions are run start times in microseconds; asOfMs picks the latest run started by then (a backtest).
  const asOf = filter.asOfMs === undefined ? sqlFragment`` : sqlFragment` WHERE version <= ${filter.asOfMs * 1000 + 999}`;
  const where = [sqlFragment`version = (SELECT max(version) FROM ${table}${asOf})`];
  if (filter.entityType !== undefined) where.push(sqlFragment`entity_type = ${filter.entityType}`);
  if (filter.hours !== undefined && filter.hours.length > 0) where.push(sqlFragment`hour_of_day IN ${filter.hours}`);
  return sql`SELECT entity_type, entity_id, hour_of_day, decided, failed, timed_out, technical_failures, failure_rate, technical_failure_rate,
    toUInt32(window_from) AS from_s, toUInt32(window_to) AS to_s, version
FROM ${table}
WHERE ${joinSql(where, ' AND ')}
ORDER BY entity_type, entity_id, hour_of_day`;
}

/** One stored baseline. */
export interface Baseline {
  entityType: 'channel' | 'device' | 'all';
  entityId: string;
  /** 0..23 (UTC), or ALL_HOURS. */
  hourOfDay: number;
  decided: number;
  failed: number;
  timedOut: number;
  technicalFailures: number;
  failureRate: number;
  technicalFailureRate: number;
  window: { from: Date; to: Date };
  version: number;
}

type Row = Record<string, unknown>;
const toBaseline = (r: Row): Baseline => ({
  entityType: String(r.entity_type) as Baseline['entityType'],
  entityId: String(r.entity_id),
  hourOfDay: Number(r.hour_of_day),
  decided: Number(r.decided),
  failed: Number(r.failed),
  timedOut: Number(r.timed_out),
  technicalFailures: Number(r.technical_failures),
  failureRate: Number(r.failure_rate),
  technicalFailureRate: Number(r.technical_failure_rate),
  window: { from: new Date(Number(r.from_s) * 1000), to: new Date(Number(r.to_s) * 1000) },
  version: Number(r.version),
});

/** The latest baselines (empty before the first run). */
export async function readBaselines(
  deps: Pick<AnalyticsDeps, 'clickhouse' | 'database'>,
  filter: { entityType?: Baseline['entityType']; hours?: number[]; asOfMs?: number } = {},
): Promise<Baseline[]> {
  return (await queryRows<Row>(deps.clickhouse, latestBaselinesQuery(deps.database, filter), 'read failure baselines')).map(toBaseline);
}

/**
 * Baseline facts for the rule engine, from the latest `baselines` run: `channel|<id>` ->
 * `{ channel_technical_failure_rate_baseline }`, the channel's technical failure rate at the hour of
 * day (UTC) of `nowMs` when that hour had enough decided attempts, else its all-hours rate; no
 * entry when neither had (the engine then uses the catalog's default). With `asOf`, from the latest
 * run that had started by `nowMs` (a backtest sees what live detection saw then).
 */
export async function baselineFacts(
  client: ClickHouseClient,
  database: string,
  nowMs: number,
  options: { asOf?: boolean } = {},
): Promise<Map<string, Record<string, number>>> {
  const hour = new Date(nowMs).getUTCHours();
  const rows = await readBaselines(
    { clickhouse: client, database },
    { entityType: 'channel', hours: [hour, ALL_HOURS], asOfMs: options.asOf ? nowMs : undefined },
  );
  const out = new Map<string, Record<string, number>>();
  // Rows come sorted by hour_of_day, so the hour's own rate (0..23) is seen before ALL_HOURS.
  for (const r of rows) {
    const key = `channel|${r.entityId}`;
    if (!out.has(key)) out.set(key, { channel_technical_failure_rate_baseline: r.technicalFailureRate });
  }
  return out;
}

export interface BaselinesRunOptions {
  /** @default DEFAULT_BASELINE_LOOKBACK_MS */
  lookbackMs?: number;
  /** @default DEFAULT_BASELINE_MIN_DECIDED */
  minDecided?: number;
}

/**
 * Runs the job over the `lookbackMs` before the start of `now`'s hour: appends the baselines under
 * one new version. Recorded in job_runs; the row count is the number of baselines written.
 */
export async function run(deps: AnalyticsDeps, now: Date, options: BaselinesRunOptions = {}): Promise<JobRun> {
  const toMs = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS;
  const fromMs = toMs - (options.lookbackMs ?? DEFAULT_BASELINE_LOOKBACK_MS);
  return runJob(deps, BASELINES_JOB, { from: new Date(fromMs), to: new Date(toMs) }, async () => {
    const version = Date.now() * 1000 + Math.floor(Math.random() * 1000);
    await command(
      deps.clickhouse,
      insertBaselinesQuery(deps.database, { fromMs, toMs, minDecided: options.minDecided ?? DEFAULT_BASELINE_MIN_DECIDED, version, computedAt: new Date() }),
      'write failure baselines',
    );
    const rows = await queryRows<{ n: string }>(deps.clickhouse, baselineRowsQuery(deps.database, version), 'count written baselines');
    return Number(rows[0]?.n ?? 0);
  });
}

/** Rows one run wrote. */
export const baselineRowsQuery = (database: string, version: number): string =>
  sql`SELECT count() AS n FROM ${ident(database, 'failure_baselines')} WHERE version = ${version}`;

/** The schedule entry: hourly, 3 minutes past, so the hour it reads up to is complete. */
export const baselinesScheduledJob: ScheduledJob = {
  name: BASELINES_JOB,
  cron: '3 * * * *',
  run: (deps, now) => run(deps, now),
  byHand: {
    window: false,
    run: (deps, now) => run(deps, now),
    text: (r) => `${r.job}: ${r.status}, attempts first seen ${r.from.toISOString()} .. ${r.to.toISOString()}, ${r.rows} baselines written (run ${r.runId}).`,
  },
};
