import { ident, joinSql, sql, sqlFragment, type SqlFragment } from '../storage/sql.ts';
import { paymentsSince } from './queries.ts';
import { EARLIEST_KEY, LATEST_KEY } from '../storage/event-order.ts';

/**
 * SQL of the `retry-policy` job (analytics/DEFINITIONS.md, *Retry policy*), for ClickHouse 18.16 and current versions alike: no
 * CTEs, no window functions, no query parameters; every value goes through the `sql` tag. Attempts
 * and their outcome follow analytics/DEFINITIONS.md (latest status wins, same tie-break as rates).
 */

export interface PolicyWindow {
  /** Attempts whose first occurred_at is >= from (seconds precision). */
  from: Date;
  /** ... and < to. */
  to: Date;
}

function bounds(window: PolicyWindow): { fromSec: number; toSec: number } {
  const fromSec = Math.floor(window.from.getTime() / 1000);
  const toSec = Math.floor(window.to.getTime() / 1000);
  if (!(Number.isSafeInteger(fromSec) && Number.isSafeInteger(toSec) && fromSec >= 0 && fromSec < toSec)) {
    throw new RangeError(`Invalid window [${window.from.toISOString()}, ${window.to.toISOString()})`);
  }
  return { fromSec, toSec };
}

/**
 * Every payment attempt with an event since shortly before the window (paymentsSince), so every
 * later attempt of an order too, at any time: order_id, attempt_no, a_first_at, a_last_at,
 * outcome, a_code, a_channel.
 */
function attemptsSource(database: string, window: PolicyWindow): SqlFragment {
  bounds(window);
  return sqlFragment`SELECT
      order_id,
      ifNull(attempt, 0) AS attempt_no,
      min(occurred_at) AS a_first_at,
      max(occurred_at) AS a_last_at,
      argMax(status, ${LATEST_KEY}) AS outcome,
      argMax(ifNull(failure_code, ''), ${LATEST_KEY}) AS a_code,
      argMin(channel, ${EARLIEST_KEY}) AS a_channel
    FROM ${paymentsSince(database, window.from.getTime())}
    GROUP BY order_id, attempt_no`;
}

/**
 * One row per attempt k (first occurred_at in the window) whose outcome is failed or timeout,
 * joined to attempt k+1 of the same order when there is one: f_channel, f_code (the failure code,
 * or the status for a timeout without code), f_no (= k), f_first_at, r_exists, r_ok (attempt k+1
 * succeeded) and delay_s (seconds from the failed attempt's last event to the retry's first).
 */
function transitionsSource(database: string, window: PolicyWindow): SqlFragment {
  const { fromSec, toSec } = bounds(window);
  const attempts = attemptsSource(database, window);
  const failed = sqlFragment`SELECT
      order_id,
      toUInt16(attempt_no + 1) AS next_no,
      attempt_no AS f_no,
      a_channel AS f_channel,
      if(a_code = '', toString(outcome), a_code) AS f_code,
      a_first_at AS f_first_at,
      a_last_at AS f_last_at
    FROM (${attempts}) AS fa
    WHERE outcome IN ('failed', 'timeout') AND attempt_no >= 1
      AND a_first_at >= toDateTime(${fromSec}, 'UTC') AND a_first_at < toDateTime(${toSec}, 'UTC')`;
  // Only attempts 2 and later can be a retry (next_no = k + 1 with k >= 1): the join's right side,
  // held in memory whole, is then the retries of the window, not all of its attempts.
  const retries = sqlFragment`SELECT order_id, toUInt16(attempt_no) AS next_no, toUInt8(1) AS r_exists, toUInt8(outcome = 'succeeded') AS r_ok,
    a_first_at AS r_first_at
    FROM (${attempts}) AS ra WHERE attempt_no >= 2`;
  return sqlFragment`SELECT
      f_channel, f_code, f_no, f_first_at, r_exists, r_ok,
      if(r_exists = 1, greatest(toInt64(r_first_at) - toInt64(f_last_at), toInt64(0)), toInt64(0)) AS delay_s
    FROM (${failed}) AS f
    ANY LEFT JOIN (${retries}) AS r USING (order_id, next_no)`;
}

/**
 * Per (channel, failure code, k, hour of day of attempt k, UTC): failed attempts, how many were
 * retried, and how many of those retries succeeded.
 */
export function retryTransitionsQuery(database: string, window: PolicyWindow): string {
  return sql`SELECT
    f_channel AS channel_name,
    f_code AS code,
    toUInt8(f_no) AS k,
    toUInt8(toHour(f_first_at)) AS hour_utc,
    count() AS failures,
    sum(r_exists) AS retried,
    sum(r_ok) AS retry_succeeded
  FROM (${transitionsSource(database, window)}) AS t
  GROUP BY channel_name, code, k, hour_utc
  ORDER BY channel_name, code, k, hour_utc`;
}

/** Per (channel, failure code): how many retries succeeded and the median seconds they waited. */
export function retryDelaysQuery(database: string, window: PolicyWindow): string {
  return sql`SELECT
    f_channel AS channel_name,
    f_code AS code,
    sum(r_ok) AS succeeded_retries,
    toFloat64(quantileExactIf(0.5)(delay_s, r_ok = 1)) AS median_delay_s
  FROM (${transitionsSource(database, window)}) AS t
  GROUP BY channel_name, code
  ORDER BY channel_name, code`;
}

/** Per (channel, hour of day, UTC): attempts first seen in the window and how many failed or timed out. */
export function channelHoursQuery(database: string, window: PolicyWindow): string {
  const { fromSec, toSec } = bounds(window);
  return sql`SELECT
    a_channel AS channel_name,
    toUInt8(toHour(a_first_at)) AS hour_utc,
    count() AS attempts_n,
    countIf(outcome IN ('failed', 'timeout')) AS unsuccessful
  FROM (${attemptsSource(database, window)}) AS a
  WHERE a_first_at >= toDateTime(${fromSec}, 'UTC') AND a_first_at < toDateTime(${toSec}, 'UTC')
  GROUP BY channel_name, hour_utc
  ORDER BY channel_name, hour_utc`;
}

/** Columns of retry_policy, in the order the readers select them. */
export const policyColumns = [
  'channel',
  'failure_code',
  'version',
  'run_id',
  'computed_at',
  'window_from',
  'window_to',
  'action',
  'retry',
  'max_attempts',
  'backoff_seconds',
  'peak_hours',
  'peak_max_attempts',
  'peak_backoff_seconds',
  'failures',
  'ks',
  'retried',
  'retry_succeeded',
  'p_success',
  'ci_low',
  'ci_high',
  'succeeded_retries',
  'median_delay_s',
  'channel_failure_rate',
  'peak_failure_rates',
  'change',
  'previous_action',
  'previous_max_attempts',
  'previous_peak_max_attempts',
  'reason',
] as const;

/** The policy columns, times as epoch seconds `<column>_s`. */
const POLICY_SELECT = joinSql(
  policyColumns.map((c) =>
    c === 'computed_at' || c === 'window_from' || c === 'window_to' ? sqlFragment`toUInt32(${ident(c)}) AS ${ident(`${c}_s`)}` : ident(c),
  ),
  ', ',
);

const selectPolicy = (table: SqlFragment, where: SqlFragment): string =>
  sql`SELECT ${POLICY_SELECT}
FROM ${table}
WHERE ${where}
ORDER BY channel, failure_code`;

/** The entries of the latest run (every run writes the whole policy with one version). */
export function latestPolicyQuery(database: string): string {
  const table = ident(database, 'retry_policy');
  return selectPolicy(table, sqlFragment`version IN (SELECT max(version) FROM ${table})`);
}

/** The entries of the run before the latest one. */
export function previousPolicyQuery(database: string): string {
  const table = ident(database, 'retry_policy');
  return selectPolicy(table, sqlFragment`version IN (SELECT max(version) FROM ${table} WHERE version < (SELECT max(version) FROM ${table}))`);
}

/** Entries one run wrote. */
export const policyRowsQuery = (database: string, version: number): string =>
  sql`SELECT count() AS n FROM ${ident(database, 'retry_policy')} WHERE version = ${version}`;
