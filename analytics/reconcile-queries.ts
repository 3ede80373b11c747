import { ident, sql, sqlFragment, type SqlFragment } from '../storage/sql.ts';
import { paymentsSince } from './queries.ts';
import { EARLIEST_KEY, LATEST_KEY, OCCURRED_MS as TS } from '../storage/event-order.ts';

/**
 * SQL of the `reconcile` job (analytics/DEFINITIONS.md, *Reconciliation*), for ClickHouse 18.16 and current versions alike. Attempts
 * as in analytics/DEFINITIONS.md; times in epoch milliseconds (occurred_at * 1000 + occurred_ms).
 */

export interface ReconcileWindow {
  /** Attempts whose first event is at or after this (ms). */
  fromMs: number;
  /** ... and before this: the run's `now` (ms). */
  toMs: number;
}

function check(w: ReconcileWindow): void {
  if (!(Number.isSafeInteger(w.fromMs) && Number.isSafeInteger(w.toMs) && w.fromMs >= 0 && w.fromMs < w.toMs)) {
    throw new RangeError(`Invalid window [${w.fromMs}, ${w.toMs})`);
  }
}

/** Attempts first seen in the window with their processing/final timings and status history. */
function attemptsSource(database: string, w: ReconcileWindow): SqlFragment {
  check(w);
  return sqlFragment`SELECT
      order_id,
      ifNull(attempt, 0) AS attempt_no,
      argMin(channel, ${EARLIEST_KEY}) AS a_channel,
      argMin(merchant_id, ${EARLIEST_KEY}) AS a_merchant,
      min(${TS}) AS a_first_ms,
      max(${TS}) AS a_last_ms,
      argMax(status, ${LATEST_KEY}) AS outcome,
      countIf(status = 'processing') AS n_processing,
      minIf(${TS}, status = 'processing') AS a_processing_ms,
      countIf(status != 'processing') AS n_final,
      minIf(${TS}, status != 'processing') AS a_final_ms,
      argMinIf(toString(status), ${EARLIEST_KEY}, status != 'processing') AS a_first_final,
      uniqExactIf(status, status != 'processing') AS a_final_statuses
    FROM ${paymentsSince(database, w.fromMs)}
    GROUP BY order_id, attempt_no
    HAVING a_first_ms >= ${w.fromMs} AND a_first_ms < ${w.toMs}`;
}

export interface ReconcileWrite extends ReconcileWindow {
  version: number;
  computedAt: Date;
  /** An attempt still processing this long after its first event is stuck. */
  stuckAfterMs: number;
}

const columns = sqlFragment`version, computed_at, kind, order_id, attempt, channel, merchant_id, first_at, last_at, first_final, outcome,
  final_statuses, age_seconds`;

/**
 * Attempts whose outcome is still `processing` stuckAfterMs after their first event
 * (`stuck_processing`) and attempts that reached more than one final status, a late callback or a
 * correction (`changed_after_final`), from one read of the window: an attempt that is both gives
 * one row of each kind.
 */
export function insertReconciledAttemptsQuery(database: string, o: ReconcileWrite): string {
  const stuck = sqlFragment`outcome = 'processing' AND a_first_ms + ${o.stuckAfterMs} <= ${o.toMs}`;
  const changed = sqlFragment`a_final_statuses > 1`;
  const kinds = sqlFragment`arrayConcat(if(${stuck}, ['stuck_processing'], emptyArrayString()), if(${changed}, ['changed_after_final'], emptyArrayString()))`;
  return sql`INSERT INTO ${ident(database, 'reconcile_attempts')} (${columns})
SELECT ${o.version}, ${o.computedAt}, arrayJoin(${kinds}) AS kind, order_id, toUInt16(attempt_no), a_channel, a_merchant,
  toDateTime(intDiv(a_first_ms, 1000), 'UTC'), toDateTime(intDiv(a_last_ms, 1000), 'UTC'),
  a_first_final, toString(outcome), a_final_statuses,
  intDiv(${o.toMs} - a_first_ms, 1000)
FROM (${attemptsSource(database, o)}) AS a
WHERE (${stuck}) OR (${changed})`;
}

/**
 * Callback delay per channel, and for all channels (channel ''): milliseconds from the attempt's
 * first `processing` event to its first final status, for attempts that have both.
 */
export function insertCallbackDelaysQuery(database: string, o: ReconcileWrite): string {
  const table = ident(database, 'callback_delays');
  // One read of the window: each attempt's delay counts for its channel and for all channels ('').
  // The marker row (real = 0) keeps the all-channels row in every run, with no attempts too: the
  // latest run is found by its version there.
  const delays = sqlFragment`SELECT arrayJoin([a_channel, '']) AS d_channel, toFloat64(a_final_ms - a_processing_ms) AS delay_ms, toUInt8(1) AS real
    FROM (${attemptsSource(database, o)}) AS a
    WHERE n_processing > 0 AND n_final > 0 AND a_final_ms >= a_processing_ms
    UNION ALL
    SELECT '' AS d_channel, toFloat64(0) AS delay_ms, toUInt8(0) AS real`;
  const head = sqlFragment`${o.version}, ${o.computedAt}, toDateTime(${Math.floor(o.fromMs / 1000)}, 'UTC'), toDateTime(${Math.floor(o.toMs / 1000)}, 'UTC')`;
  // The quantiles array is named where it is first used, so no extra column is selected.
  const agg = sqlFragment`countIf(real = 1), (quantilesExactIf(0.5, 0.9, 0.95, 0.99)(delay_ms, real = 1) AS qs)[1], qs[2], qs[3], qs[4],
    maxIf(delay_ms, real = 1)`;
  return sql`INSERT INTO ${table} (version, computed_at, window_from, window_to, channel, attempts, p50_ms, p90_ms, p95_ms, p99_ms, max_ms)
SELECT ${head}, d_channel, ${agg} FROM (${delays}) AS d GROUP BY d_channel`;
}

/** The latest run's version (0 before the first run). */
export const latestReconcileVersionQuery = (database: string): string => sql`SELECT max(version) AS v FROM ${ident(database, 'callback_delays')}`;

/** The attempts a run reported, by kind. */
export const reconcileAttemptsQuery = (database: string, version: number): string =>
  sql`SELECT kind, order_id, attempt, channel, merchant_id, toUInt32(first_at) AS first_s, toUInt32(last_at) AS last_s, first_final, outcome,
    final_statuses, age_seconds
FROM ${ident(database, 'reconcile_attempts')} WHERE version = ${version} ORDER BY kind, order_id, attempt`;

/** The callback delays a run wrote. */
export const callbackDelaysQuery = (database: string, version: number): string =>
  sql`SELECT channel, attempts, p50_ms, p90_ms, p95_ms, p99_ms, max_ms FROM ${ident(database, 'callback_delays')} WHERE version = ${version} ORDER BY channel`;
