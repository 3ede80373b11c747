import { LATEST_KEY, OCCURRED_MS as TS } from '../storage/event-order.ts';
import { ident, sql, sqlFragment, type SqlFragment } from '../storage/sql.ts';
import type { Period } from './types.ts';

/**
 * SQL of statement reconciliation, for ClickHouse 18.16 and current versions alike. Every read of
 * payment_events is bounded to the period widened by the grace on both sides (its primary key
 * starts with occurred_at), never the whole history. An attempt's latest status is the project's
 * one definition (LATEST_KEY, analytics/DEFINITIONS.md).
 */

const sec = (ms: number) => Math.floor(ms / 1000);
const at = (ms: number): SqlFragment => sqlFragment`toDateTime(${sec(ms)}, 'UTC')`;
/** ` AND <column> = value` when a value is given, nothing otherwise. */
const andEquals = (column: 'kind' | 'channel', value: string | undefined): SqlFragment =>
  value === undefined ? sqlFragment`` : sqlFragment` AND ${ident(column)} = ${value}`;

export interface PeriodKey {
  channel: string;
  period: Period;
}

/**
 * The settled lines of every file of the channel's period that finished importing (its
 * statement_files row is written last: lines of an import that failed half-way stay out). Without FINAL (a single-threaded merge
 * on 18.16, the slowest part of the read at a million lines): a line written twice by a retried
 * insert is dropped by the reader (same file and line).
 */
export const periodLinesQuery = (database: string, k: PeriodKey): string =>
  sql`SELECT file_hash, line, type, transaction_id, order_id, amount_minor, currency, ${TS} AS at_ms
FROM ${ident(database, 'statement_lines')}
WHERE channel = ${k.channel} AND period_from = ${at(k.period.fromMs)} AND period_to = ${at(k.period.toMs)} AND status = 'settled'
  AND file_hash IN (SELECT file_hash FROM ${ident(database, 'statement_files')} WHERE channel = ${k.channel} AND period_from = ${at(k.period.fromMs)})`;

/**
 * The settled lines of the channel's other periods that occurred within `graceMs` of this period's
 * cuts (either side), from files that finished importing: an attempt near a cut that the platform
 * settled on the other side of it (reconcile's `nearby`).
 */
export const nearbyLinesQuery = (database: string, k: PeriodKey, graceMs: number): string => {
  const { fromMs, toMs } = k.period;
  return sql`SELECT file_hash, line, type, transaction_id, order_id, amount_minor, currency, ${TS} AS at_ms
FROM ${ident(database, 'statement_lines')}
WHERE channel = ${k.channel} AND status = 'settled'
  AND period_from < ${at(toMs + graceMs)} AND period_to > ${at(fromMs - graceMs)}
  AND NOT (period_from = ${at(fromMs)} AND period_to = ${at(toMs)})
  AND ((occurred_at >= ${at(fromMs - graceMs)} AND occurred_at < ${at(fromMs)})
    OR (occurred_at >= ${at(toMs)} AND occurred_at < ${at(toMs + graceMs)}))
  AND file_hash IN (SELECT file_hash FROM ${ident(database, 'statement_files')} WHERE channel = ${k.channel})`;
};

/**
 * Our payment attempts of the channel with an event in [from, to): latest status, amount and
 * currency of the latest event, the transaction id of the latest event that has one, and when the
 * latest event occurred. Aliases differ from column names (18.16 resolves aliases query-wide).
 * Status, amount and currency come from one argMax of a tuple: one state per attempt instead of
 * three, which took a third off this read at a million attempts (bench:statements).
 */
export const attemptsQuery = (database: string, channel: string, window: Period): string =>
  sql`SELECT a_order, a_attempt,
  tupleElement(a_latest, 1) AS a_status, tupleElement(a_latest, 2) AS a_amount, tupleElement(a_latest, 3) AS a_currency, a_tx, a_last_ms
FROM (
  SELECT order_id AS a_order, ifNull(attempt, 0) AS a_attempt,
    argMax((toString(status), amount_minor, currency), ${LATEST_KEY}) AS a_latest,
    argMaxIf(ifNull(transaction_id, ''), ${LATEST_KEY}, isNotNull(transaction_id)) AS a_tx,
    max(${TS}) AS a_last_ms
  FROM ${ident(database, 'payment_events')}
  WHERE occurred_at >= ${at(window.fromMs)} AND occurred_at < ${at(window.toMs)} AND type = 'payment' AND channel = ${channel}
  GROUP BY a_order, a_attempt
)`;

/** Our succeeded refunds of the channel in [from, to), one per event_id. */
export const refundsQuery = (database: string, channel: string, window: Period): string =>
  sql`SELECT event_id AS r_event, any(order_id) AS r_order, any(ifNull(transaction_id, '')) AS r_tx, any(amount_minor) AS r_amount,
  any(currency) AS r_currency, min(${TS}) AS r_at_ms
FROM ${ident(database, 'payment_events')}
WHERE occurred_at >= ${at(window.fromMs)} AND occurred_at < ${at(window.toMs)} AND type = 'refund' AND status = 'succeeded' AND channel = ${channel}
GROUP BY r_event`;

/**
 * Per (channel, period) with a file: when its latest file was imported, when it was last
 * reconciled (0 = never) and how many breaks that run found.
 */
export const periodStateQuery = (database: string, sinceMs: number): string =>
  sql`SELECT channel, toUInt32(period_from) AS from_s, toUInt32(period_to) AS to_s, imported_s, run_s, run_breaks
FROM (
  SELECT channel, period_from, period_to, max(toUInt32(imported_at)) AS imported_s
  FROM ${ident(database, 'statement_files')} FINAL
  WHERE period_to >= ${at(sinceMs)}
  GROUP BY channel, period_from, period_to
) AS f
ALL LEFT JOIN (
  SELECT channel, period_from, period_to, max(toUInt32(computed_at)) AS run_s, argMax(breaks, version) AS run_breaks
  FROM ${ident(database, 'statement_runs')}
  WHERE period_to >= ${at(sinceMs)}
  GROUP BY channel, period_from, period_to
) AS r USING (channel, period_from, period_to)
ORDER BY channel, from_s`;

// The latest run of each period starting in [from, to), as a tuple list for IN.
const latestRuns = (database: string, fromMs: number, toMs: number, channel?: string): SqlFragment =>
  sqlFragment`SELECT channel, period_from, period_to, max(version) FROM ${ident(database, 'statement_runs')}
  WHERE period_from >= ${at(fromMs)} AND period_from < ${at(toMs)}${andEquals('channel', channel)}
  GROUP BY channel, period_from, period_to`;

export interface BreaksFilter {
  fromMs: number;
  toMs: number;
  kind?: string;
  channel?: string;
  limit: number;
}

// A statement_breaks row as report.ts breakJson reads it.
const BREAK_SELECT = sqlFragment`channel, toUInt32(period_from) AS from_s, toUInt32(period_to) AS to_s, break_id, kind, detail, order_id, transaction_id,
  has_statement, statement_file_hash, statement_line, statement_type, statement_amount_minor, statement_currency,
  toUInt32(statement_occurred_at) AS statement_s,
  has_ours, our_attempt, our_status, our_refund_event_id, our_amount_minor, our_currency, toUInt32(our_occurred_at) AS ours_s,
  amount_at_stake_minor, currency`;

/** The breaks of the latest run of each period starting in [from, to). */
export const breaksQuery = (database: string, f: BreaksFilter): string =>
  sql`SELECT ${BREAK_SELECT}
FROM ${ident(database, 'statement_breaks')} FINAL
WHERE period_from >= ${at(f.fromMs)} AND period_from < ${at(f.toMs)}${andEquals('kind', f.kind)}${andEquals('channel', f.channel)}
  AND (channel, period_from, period_to, version) IN (${latestRuns(database, f.fromMs, f.toMs, f.channel)})
ORDER BY period_from, channel, kind, order_id, break_id
LIMIT ${f.limit}`;

/** Per channel over the periods starting in [from, to): the latest runs' line, match and break counts. */
export const summaryRunsQuery = (database: string, fromMs: number, toMs: number): string =>
  sql`SELECT channel, toUInt64(count()) AS periods, toUInt64(sum(lines)) AS n_lines, toUInt64(sum(matched)) AS n_matched, toUInt64(sum(breaks)) AS n_breaks
FROM ${ident(database, 'statement_runs')} FINAL
WHERE (channel, period_from, period_to, version) IN (${latestRuns(database, fromMs, toMs)})
GROUP BY channel ORDER BY channel`;

/** Per channel, kind and currency: the latest runs' breaks and the amount at stake. */
export const summaryBreaksQuery = (database: string, fromMs: number, toMs: number): string =>
  sql`SELECT channel, kind, currency, toUInt64(count()) AS n, sum(amount_at_stake_minor) AS amount
FROM ${ident(database, 'statement_breaks')} FINAL
WHERE period_from >= ${at(fromMs)} AND period_from < ${at(toMs)}
  AND (channel, period_from, period_to, version) IN (${latestRuns(database, fromMs, toMs)})
GROUP BY channel, kind, currency ORDER BY channel, kind, currency`;

/** Per channel and currency: the latest runs' matched amounts. */
export const summaryMatchesQuery = (database: string, fromMs: number, toMs: number): string =>
  sql`SELECT channel, currency, type, toUInt64(count()) AS n, sum(amount_minor) AS amount
FROM ${ident(database, 'statement_matches')} FINAL
WHERE period_from >= ${at(fromMs)} AND period_from < ${at(toMs)}
  AND (channel, period_from, period_to, version) IN (${latestRuns(database, fromMs, toMs)})
GROUP BY channel, currency, type ORDER BY channel, currency, type`;

/** The latest run of every period that ended at or after `sinceMs`: what statements/cases.ts turns into cases. */
export const latestRunsQuery = (database: string, sinceMs: number): string =>
  sql`SELECT channel, toUInt32(period_from) AS from_s, toUInt32(period_to) AS to_s, toString(max(version)) AS v
FROM ${ident(database, 'statement_runs')}
WHERE period_to >= ${at(sinceMs)}
GROUP BY channel, period_from, period_to
ORDER BY from_s, channel`;

/** The breaks one run of a period found (a retried insert may repeat a row: readers keep one per break_id). */
export const runBreaksQuery = (database: string, k: PeriodKey, version: string, limit: number): string =>
  sql`SELECT ${BREAK_SELECT}
FROM ${ident(database, 'statement_breaks')}
WHERE channel = ${k.channel} AND period_from = ${at(k.period.fromMs)} AND period_to = ${at(k.period.toMs)} AND version = ${BigInt(version)}
ORDER BY break_id
LIMIT ${limit}`;

/** The names of statement files by hash. */
export const fileNamesQuery = (database: string, hashes: readonly string[]): string =>
  sql`SELECT file_hash AS h, any(file_name) AS name FROM ${ident(database, 'statement_files')} WHERE file_hash IN ${hashes} GROUP BY h`;

/** Which breaks to read the state of (statement_break_cases): those of some periods, orders or cases. */
export type BreakStateFilter = { periods: readonly PeriodKey[] } | { orders: readonly string[] } | { cases: readonly string[] };

/** The latest state of each break in statement_break_cases matching the filter. Aliases differ from column names (18.16). */
export const breakStatesQuery = (database: string, f: BreakStateFilter): string => {
  const where =
    'periods' in f
      ? sqlFragment`(channel, toUInt32(period_from), toUInt32(period_to)) IN ${f.periods.map((p) => [p.channel, sec(p.period.fromMs), sec(p.period.toMs)])}`
      : 'orders' in f
        ? sqlFragment`order_id IN ${f.orders}`
        : sqlFragment`case_id IN ${f.cases}`;
  return sql`SELECT channel AS b_channel, toUInt32(period_from) AS b_from_s, toUInt32(period_to) AS b_to_s, break_id AS b_id,
  toString(argMax(state, version)) AS b_state, argMax(kind, version) AS b_kind, argMax(order_id, version) AS b_order,
  argMax(case_id, version) AS b_case, argMax(rule_id, version) AS b_rule, argMax(evidence, version) AS b_evidence
FROM ${ident(database, 'statement_break_cases')}
WHERE ${where}
GROUP BY b_channel, b_from_s, b_to_s, b_id`;
};
