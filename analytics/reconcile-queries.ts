import { ident, identList, joinSql, sql, sqlFragment, type SqlFragment } from '../storage/sql.ts';
import { ATTEMPT_LEAD_MS } from './queries.ts';
import { EARLIEST_KEY, LATEST_KEY, OCCURRED_MS as TS } from '../storage/event-order.ts';

/**
 * SQL of the `reconcile` job (analytics/DEFINITIONS.md, *Reconciliation*), for ClickHouse 18.16 and
 * current versions alike. Times in epoch milliseconds (occurred_at * 1000 + occurred_ms).
 *
 * The job keeps one **record** per attempt in `reconcile_records` (migration 029): its first and last
 * event, channel and merchant (of the earliest event), outcome (latest status), first final status,
 * how many distinct final statuses it reached and its callback delay. A record is rewritten only when
 * its order changes, as a copy of the old record with the opposite sign plus the new one; the current
 * records are those whose identical rows sum to a positive sign. A report reads the records of its
 * window, never the events.
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

/** The record's columns, in the order every statement below writes them after generation, order_id, attempt_no, sign and version. */
const RECORD = ['first_ms', 'last_ms', 'channel', 'merchant_id', 'outcome', 'first_final', 'final_statuses', 'has_delay', 'delay_ms'] as const;
const recordColumns = identList(['generation', 'order_id', 'attempt_no', 'sign', 'version', ...RECORD]);

/**
 * Every attempt of the given payment events (a FROM clause), as a record: order_id, attempt_no and
 * the RECORD columns. The callback delay is from the first `processing` event to the first final
 * status, for attempts that have both (and the final not before the processing).
 */
function recordsOf(from: SqlFragment): SqlFragment {
  return sqlFragment`SELECT
      order_id,
      toUInt8(ifNull(attempt, 0)) AS attempt_no,
      min(${TS}) AS first_ms,
      max(${TS}) AS last_ms,
      argMin(channel, ${EARLIEST_KEY}) AS channel,
      argMin(merchant_id, ${EARLIEST_KEY}) AS merchant_id,
      toString(argMax(status, ${LATEST_KEY})) AS outcome,
      argMinIf(toString(status), ${EARLIEST_KEY}, status != 'processing') AS first_final,
      toUInt8(uniqExactIf(status, status != 'processing')) AS final_statuses,
      minIf(${TS}, status = 'processing') AS processing_ms,
      minIf(${TS}, status != 'processing') AS final_ms,
      toUInt8(countIf(status = 'processing') > 0 AND countIf(status != 'processing') > 0 AND final_ms >= processing_ms) AS has_delay,
      if(has_delay = 1, toUInt64(final_ms - processing_ms), toUInt64(0)) AS delay_ms
    FROM ${from}
    GROUP BY order_id, attempt_no`;
}

export interface RecordsWrite {
  /** The records' generation (the cursor's). */
  generation: number;
  version: number;
  /** Attempts whose first event is before this (ms) get no record: the records cover attempts from here on. */
  coveredFromMs: number;
}

/**
 * The orders stored in [fromSec, toSec) by ClickHouse's clock (payment_changes) with an event from
 * ATTEMPT_LEAD_MS before the records' start on: older events cannot change a record.
 */
export function changedOrdersOfRecordsSql(database: string, fromSec: number, toSec: number, coveredFromMs: number): SqlFragment {
  const occurredFrom = Math.floor((coveredFromMs - ATTEMPT_LEAD_MS) / 1000);
  return sqlFragment`SELECT order_id FROM ${ident(database, 'payment_changes')}
    WHERE seen_at >= toDateTime(${fromSec}, 'UTC') AND seen_at < toDateTime(${toSec}, 'UTC') AND occurred_at >= toDateTime(${occurredFrom}, 'UTC')`;
}

/**
 * The orders `orders` selects: each attempt's record rebuilt from its order's events (the
 * order-ordered copy, read from ATTEMPT_LEAD_MS before coveredFromMs), compared with its current
 * records; where they differ, a copy of each current record with the opposite of its weight and the
 * new record (sign 1) are written. An attempt whose first event is now before coveredFromMs only loses
 * its record. Re-running it for the same orders writes nothing. A rebuild runs it under a new
 * generation (no current records) for the orders of each slice of time.
 */
export function insertChangedRecordsQuery(database: string, o: RecordsWrite & { orders: SqlFragment }): string {
  const records = ident(database, 'reconcile_records');
  const fromSec = Math.floor((o.coveredFromMs - ATTEMPT_LEAD_MS) / 1000);
  const events = sqlFragment`${ident(database, 'payment_events_by_entity')}
    WHERE entity_type = 'order' AND entity_key IN (${o.orders}) AND type = 'payment' AND occurred_at >= toDateTime(${fromSec}, 'UTC')`;
  const fresh = sqlFragment`SELECT order_id, attempt_no, first_ms >= ${o.coveredFromMs} AS n_in,
      (${identList([...RECORD])}) AS n_rec
    FROM (${recordsOf(events)}) AS a`;
  // What each attempt has now: every distinct record whose rows do not sum to 0, with its weight
  // (normally one record of weight 1; anything else, say after a crash between the two days of one
  // insert, is cancelled record by record and the attempt gets its one new record).
  const cols = identList([...RECORD]);
  const current = sqlFragment`SELECT order_id, attempt_no, groupArray((toInt32(w), (${cols}))) AS o_recs
    FROM (
      SELECT order_id, attempt_no, ${cols}, sum(sign) AS w
      FROM ${records}
      WHERE generation = ${o.generation} AND order_id IN (${o.orders})
      GROUP BY order_id, attempt_no, ${cols}
      HAVING w != 0
    ) AS cr
    GROUP BY order_id, attempt_no`;
  const same = sqlFragment`(n_in AND length(o_recs) = 1 AND tupleElement(o_recs[1], 1) = 1 AND tupleElement(o_recs[1], 2) = n_rec)`;
  // Entries (sign, record): a cancelling copy of each current record and the new one, unless they are
  // the same; sign 0 means none (arrayFilter keeps the array's type when all go).
  const entries = sqlFragment`arrayFilter(e -> tupleElement(e, 1) != 0, arrayConcat(
      arrayMap(x -> (toInt32(if(${same}, 0, -tupleElement(x, 1))), tupleElement(x, 2)), o_recs),
      [(toInt32(if(n_in AND NOT ${same}, 1, 0)), n_rec)]))`;
  const r = (i: number) => sqlFragment`tupleElement(tupleElement(e, 2), ${i})`;
  return sql`INSERT INTO ${records} (${recordColumns})
SELECT toUInt64(${o.generation}), order_id, attempt_no, tupleElement(e, 1), toUInt64(${o.version}),
  ${r(1)}, ${r(2)}, ${r(3)}, ${r(4)}, ${r(5)}, ${r(6)}, ${r(7)}, ${r(8)}, ${r(9)}
FROM (
  SELECT order_id, attempt_no, ${entries} AS es
  FROM (${fresh}) AS n
  ANY LEFT JOIN (${current}) AS c USING (order_id, attempt_no)
)
ARRAY JOIN es AS e`;
}

/** The window's current records, as `WHERE` conditions on reconcile_records. */
function inWindow(generation: number, w: ReconcileWindow): SqlFragment {
  check(w);
  return sqlFragment`generation = ${generation} AND first_ms >= ${w.fromMs} AND first_ms < ${w.toMs}`;
}

export interface ReconcileWrite extends ReconcileWindow {
  generation: number;
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
 * correction (`changed_after_final`), from the window's current records: an attempt that is both gives
 * one row of each kind.
 */
export function insertReconciledAttemptsQuery(database: string, o: ReconcileWrite): string {
  const stuck = sqlFragment`outcome = 'processing' AND first_ms + ${o.stuckAfterMs} <= ${o.toMs}`;
  const changed = sqlFragment`final_statuses > 1`;
  const kinds = sqlFragment`arrayConcat(if(${stuck}, ['stuck_processing'], emptyArrayString()), if(${changed}, ['changed_after_final'], emptyArrayString()))`;
  // A record's rows (and the copies that cancel it) are identical: grouping by every column sums its weight.
  const live = sqlFragment`SELECT order_id, attempt_no, first_ms, last_ms, channel, merchant_id, outcome, first_final, final_statuses
    FROM ${ident(database, 'reconcile_records')}
    WHERE ${inWindow(o.generation, o)} AND (outcome = 'processing' OR final_statuses > 1)
    GROUP BY order_id, attempt_no, first_ms, last_ms, channel, merchant_id, outcome, first_final, final_statuses
    HAVING sum(sign) > 0`;
  return sql`INSERT INTO ${ident(database, 'reconcile_attempts')} (${columns})
SELECT ${o.version}, ${o.computedAt}, arrayJoin(${kinds}) AS kind, order_id, toUInt16(attempt_no), channel, merchant_id,
  toDateTime(intDiv(first_ms, 1000), 'UTC'), toDateTime(intDiv(last_ms, 1000), 'UTC'),
  first_final, outcome, final_statuses, intDiv(${o.toMs} - first_ms, 1000)
FROM (${live}) AS a
WHERE (${stuck}) OR (${changed})`;
}

/** How many of the window's current attempts have each callback delay, per channel: channel, delay_ms, n. */
export function callbackDelayCountsQuery(database: string, generation: number, w: ReconcileWindow): string {
  return sql`SELECT channel, delay_ms, sum(sign) AS n
FROM ${ident(database, 'reconcile_records')}
WHERE ${inWindow(generation, w)} AND has_delay = 1
GROUP BY channel, delay_ms
HAVING n > 0`;
}

/** Callback delay percentiles of one channel ('' = all channels), in ms: a row of callback_delays. */
export interface CallbackDelays {
  channel: string;
  attempts: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

/** The percentiles callback_delays stores, in its column order. */
export const DELAY_LEVELS = [0.5, 0.9, 0.95, 0.99] as const;

/**
 * Percentiles of a multiset given as (value, count) pairs, as ClickHouse's `quantileExact` picks
 * them: the value at index floor(level * n) of the sorted values (0 when there are none, as 18.16
 * gives for no rows).
 */
export function exactQuantiles(counts: readonly { value: number; n: number }[], levels: readonly number[]): { n: number; max: number; quantiles: number[] } {
  const sorted = [...counts].filter((c) => c.n > 0).sort((a, b) => a.value - b.value);
  const n = sorted.reduce((s, c) => s + c.n, 0);
  if (n === 0) return { n: 0, max: 0, quantiles: levels.map(() => 0) };
  const quantiles = levels.map((level) => {
    const index = level < 1 ? Math.floor(level * n) : n - 1;
    let seen = 0;
    for (const c of sorted) {
      seen += c.n;
      if (index < seen) return c.value;
    }
    return sorted[sorted.length - 1]!.value;
  });
  return { n, max: sorted[sorted.length - 1]!.value, quantiles };
}

/** callback_delays rows from the delay counts: one per channel seen and one for all channels (''), always. */
export function callbackDelayRows(counts: readonly { channel: string; delayMs: number; n: number }[]): CallbackDelays[] {
  const byChannel = new Map<string, { value: number; n: number }[]>([['', []]]);
  for (const c of counts) {
    for (const key of [c.channel, '']) {
      const list = byChannel.get(key) ?? [];
      list.push({ value: c.delayMs, n: c.n });
      byChannel.set(key, list);
    }
  }
  return [...byChannel.entries()]
    .sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map(([channel, list]) => {
      const { n, max, quantiles } = exactQuantiles(list, DELAY_LEVELS);
      return { channel, attempts: n, p50: quantiles[0]!, p90: quantiles[1]!, p95: quantiles[2]!, p99: quantiles[3]!, max };
    });
}

/** Writes a run's callback delays. */
export function insertCallbackDelaysQuery(database: string, o: ReconcileWrite, rows: readonly CallbackDelays[]): string {
  const head = sqlFragment`${o.version}, ${o.computedAt}, toDateTime(${Math.floor(o.fromMs / 1000)}, 'UTC'), toDateTime(${Math.floor(o.toMs / 1000)}, 'UTC')`;
  const values = rows.map(
    (r) =>
      sqlFragment`(${head}, ${r.channel}, toUInt64(${r.attempts}), toFloat64(${r.p50}), toFloat64(${r.p90}), toFloat64(${r.p95}), toFloat64(${r.p99}), toFloat64(${r.max}))`,
  );
  return sql`INSERT INTO ${ident(database, 'callback_delays')} (version, computed_at, window_from, window_to, channel, attempts, p50_ms, p90_ms, p95_ms, p99_ms, max_ms)
VALUES ${joinSql(values, ', ')}`;
}

/** The days (partition ids, YYYYMMDD) reconcile_records holds. */
export const recordDaysQuery = (database: string): string =>
  sql`SELECT DISTINCT partition_id AS id FROM system.parts WHERE database = ${database} AND table = 'reconcile_records' AND active ORDER BY id`;

/** Drops one day of records (a partition id from recordDaysQuery). */
export function dropRecordDayQuery(database: string, partitionId: string): string {
  if (!/^\d{8}$/.test(partitionId)) throw new RangeError(`Not a day partition: ${JSON.stringify(partitionId)}`);
  return sql`ALTER TABLE ${ident(database, 'reconcile_records')} DROP PARTITION ID ${partitionId}`;
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
