import { ident, identList, joinSql, sql, sqlFragment, type SqlFragment } from '../storage/sql.ts';
import { countColumns, rateColumns } from './queries.ts';

/**
 * SQL of the incremental `rates` job (docs/adr/0003), for ClickHouse 18.16 and current versions
 * alike. The definitions are those of analytics/DEFINITIONS.md, which `ratesQuery` computes from
 * the events in one pass; here the same numbers are kept up to date from what changed:
 *
 * - attempt_summaries (migrations 016, 025 and 027, filled by a materialized view) holds every
 *   payment attempt's aggregate states (first event, latest status, code and amount, earliest
 *   channel and merchant, the 5-minute buckets of its events), the two middle ones as strings
 *   (migration 027 says how they are written); order_refunds holds every succeeded refund;
 * - a run turns the states of a set of orders into **items** (rate_items): what each attempt and
 *   each order adds to the counts of its bucket, plus `deleted` items in the other buckets its
 *   events fall in, so an attempt whose first event moved is retired from its old bucket;
 * - a bucket's rates are the sums of its live items, all four dimensions in one pass.
 *
 * Every value goes through the `sql` tag; order sets are subqueries, never value lists.
 */

const BUCKET_SECONDS = 300;

/** ` AND seen_at < toSec` when there is an upper bound, nothing otherwise. */
const seenBefore = (toSec: number | null): SqlFragment => (toSec === null ? sqlFragment`` : sqlFragment` AND seen_at < toDateTime(${toSec}, 'UTC')`);

/** ` AND occurred_at < toMs` (rounded up to the second) when there is an upper bound, nothing otherwise. */
const occurredBefore = (toMs: number | null): SqlFragment =>
  toMs === null ? sqlFragment`` : sqlFragment` AND occurred_at < toDateTime(${Math.ceil(toMs / 1000)}, 'UTC')`;

/** The orders whose events ClickHouse stored in [fromSec, toSec) by its own clock (payment_changes); toSec null: no upper bound. */
export function changedOrdersSql(database: string, fromSec: number, toSec: number | null): SqlFragment {
  return sqlFragment`SELECT order_id FROM ${ident(database, 'payment_changes')} WHERE seen_at >= toDateTime(${fromSec}, 'UTC')${seenBefore(toSec)}`;
}

/** The orders with a payment event in [fromMs, toMs) (toMs null: no upper bound), read by time from payment_events. */
export function ordersInRangeSql(database: string, fromMs: number, toMs: number | null): SqlFragment {
  const events = ident(database, 'payment_events');
  const fromSec = Math.floor(fromMs / 1000);
  return sqlFragment`SELECT order_id FROM ${events} WHERE type = 'payment' AND occurred_at >= toDateTime(${fromSec}, 'UTC')${occurredBefore(toMs)}`;
}

/**
 * Every attempt of the orders `orders` selects, its states merged (migration 027 writes the two
 * middle ones as strings; they are read back here): m_order, m_no, m_first_ms, m_outcome, m_code,
 * m_amount, m_channel, m_merchant, m_buckets.
 */
export function attemptsOfOrdersSql(database: string, orders: SqlFragment): SqlFragment {
  return sqlFragment`SELECT
        order_id AS m_order,
        attempt_no AS m_no,
        minMerge(s_first_ms) AS m_first_ms,
        splitByChar(':', argMaxMerge(s_result)) AS m_result,
        m_result[1] AS m_outcome,
        toUInt64(m_result[2]) AS m_amount,
        arrayStringConcat(arraySlice(m_result, 3), ':') AS m_code,
        argMinMerge(s_origin) AS m_origin,
        position(m_origin, ':') + 1 AS m_channel_at,
        toUInt64(substring(m_origin, 1, m_channel_at - 2)) AS m_channel_bytes,
        substring(m_origin, m_channel_at, m_channel_bytes) AS m_channel,
        substring(m_origin, m_channel_at + m_channel_bytes, length(m_origin)) AS m_merchant,
        groupUniqArrayMerge(s_buckets) AS m_buckets
      FROM ${ident(database, 'attempt_summaries')}
      WHERE order_id IN (${orders})
      GROUP BY m_order, m_no`;
}

/** The rate_items columns, in the order every SELECT below emits them. */
const itemColumns = identList(['bucket_start', 'kind', 'order_id', 'attempt_no', 'deleted', 'channel', 'merchant', 'code', ...countColumns, 'version']);

/**
 * INSERT ... SELECT of the items of every attempt and every order `orders` selects, under
 * `version`: the live item in the bucket of its first event (an order's: its first attempt's), a
 * deleted one in each other bucket its events fall in. Re-running it for an unchanged order
 * writes the same items again, which changes no sum.
 *
 * attempt_summaries is read once: its rows of the orders are merged per attempt, then grouped per
 * order into the order's own figures and an array of its attempts, joined with the order's
 * distinct succeeded refunds; each order becomes a list of entries (one per attempt, one for the
 * order, all of one tuple type) and each entry one item per bucket its events fall in (two ARRAY
 * JOINs). Orders with refunds only have no attempt states, so no items.
 */
export function insertItemsQuery(database: string, o: { orders: SqlFragment; version: number }): string {
  const bucketOf = sqlFragment`toUInt32(intDiv(m_first_ms, ${BUCKET_SECONDS * 1000}) * ${BUCKET_SECONDS})`;
  const merged = attemptsOfOrdersSql(database, o.orders);
  // Per order: its attempts (number, bucket, outcome, code, channel, merchant, buckets) and the
  // order's figures (its first attempt's bucket, channel, merchant and code).
  const attempts = sqlFragment`SELECT
        m_order AS o_order,
        groupArray(tuple(m_no, ${bucketOf}, m_outcome, m_code, m_channel, m_merchant, m_buckets)) AS o_attempts,
        argMin(${bucketOf}, m_no) AS o_bucket,
        argMin(m_channel, m_no) AS o_channel,
        argMin(m_merchant, m_no) AS o_merchant,
        argMin(m_code, m_no) AS o_code,
        argMin(m_outcome, m_no) != 'succeeded' AS o_first_not_succeeded,
        max(m_no) > 1 AS o_retried,
        countIf(m_outcome = 'succeeded') > 0 AS o_paid,
        sumIf(m_amount, m_outcome = 'succeeded') AS o_paid_amount,
        groupUniqArrayArray(m_buckets) AS o_buckets
      FROM (${merged}) AS merged
      GROUP BY o_order`;
  // The same orders' distinct succeeded refunds (an order without any gets zeros from the join).
  const refunds = sqlFragment`SELECT order_id AS o_order, count() AS o_refund_count, sum(r_amount) AS o_refund_amount
      FROM (SELECT DISTINCT order_id, event_id, amount_minor AS r_amount FROM ${ident(database, 'order_refunds')} WHERE order_id IN (${o.orders})) AS r
      GROUP BY o_order`;
  const orders = sqlFragment`SELECT * FROM (${attempts}) AS att ANY LEFT JOIN (${refunds}) AS ref USING o_order`;
  // An entry: (kind, attempt_no, live bucket, buckets, channel, merchant, code, the 12 counts it
  // adds to its live bucket, paid amount, refunded amount). 1 = attempt, 2 = order.
  const u8 = (x: SqlFragment) => sqlFragment`toUInt8(${x})`;
  const zeros = (n: number) => Array.from({ length: n }, () => sqlFragment`toUInt8(0)`);
  const attemptEntry = joinSql(
    [
      u8(sqlFragment`1`),
      sqlFragment`tupleElement(a, 1)`,
      sqlFragment`tupleElement(a, 2)`,
      sqlFragment`tupleElement(a, 7)`,
      sqlFragment`tupleElement(a, 5)`,
      sqlFragment`tupleElement(a, 6)`,
      sqlFragment`tupleElement(a, 4)`,
      u8(sqlFragment`1`),
      u8(sqlFragment`tupleElement(a, 3) = 'succeeded'`),
      u8(sqlFragment`tupleElement(a, 3) = 'failed'`),
      u8(sqlFragment`tupleElement(a, 3) = 'timeout'`),
      u8(sqlFragment`tupleElement(a, 3) = 'processing'`),
      u8(sqlFragment`tupleElement(a, 1) > 1`),
      ...zeros(6),
      sqlFragment`toUInt64(0)`,
      sqlFragment`toUInt64(0)`,
    ],
    ', ',
  );
  const orderEntry = joinSql(
    [
      u8(sqlFragment`2`),
      u8(sqlFragment`0`),
      sqlFragment`o_bucket`,
      sqlFragment`o_buckets`,
      sqlFragment`o_channel`,
      sqlFragment`o_merchant`,
      sqlFragment`o_code`,
      ...zeros(6),
      u8(sqlFragment`1`),
      u8(sqlFragment`o_retried`),
      u8(sqlFragment`o_first_not_succeeded`),
      u8(sqlFragment`o_first_not_succeeded AND o_paid`),
      u8(sqlFragment`o_paid`),
      u8(sqlFragment`o_paid AND o_refund_count > 0`),
      sqlFragment`toUInt64(o_paid_amount)`,
      sqlFragment`toUInt64(if(o_paid, o_refund_amount, 0))`,
    ],
    ', ',
  );
  const entries = sqlFragment`SELECT o_order AS e_order, e, tupleElement(e, 4) AS e_buckets
      FROM (${orders}) AS o
      ARRAY JOIN arrayPushBack(arrayMap(a -> tuple(${attemptEntry}), o_attempts), tuple(${orderEntry})) AS e`;
  const live = sqlFragment`(i_bucket = tupleElement(e, 3))`;
  const counts = joinSql(
    countColumns.map((_, i) =>
      i < countColumns.length - 2 ? u8(sqlFragment`${live} AND tupleElement(e, ${i + 8})`) : sqlFragment`toUInt64(if(${live}, tupleElement(e, ${i + 8}), 0))`,
    ),
    ', ',
  );
  return sql`INSERT INTO ${ident(database, 'rate_items')} (${itemColumns})
SELECT toDateTime(i_bucket, 'UTC'), if(tupleElement(e, 1) = 1, 'attempt', 'order'), e_order, tupleElement(e, 2), ${u8(sqlFragment`NOT ${live}`)},
  tupleElement(e, 5), tupleElement(e, 6), tupleElement(e, 7), ${counts}, toUInt64(${o.version})
FROM (${entries}) AS entries
ARRAY JOIN e_buckets AS i_bucket`;
}

/** The columns of payment_rates this project writes, in order (as insertRatesQuery). */
const storedColumns = identList(['bucket_size', 'bucket_start', 'dimension', 'value', ...countColumns, ...Object.keys(rateColumns), 'computed_at', 'version']);

/**
 * INSERT ... SELECT of the 5-minute rates of the buckets starting at `buckets` (epoch seconds, all
 * within [fromMs, toMs)), every dimension in one pass over their live items: each item counts
 * once for `all` and once under its channel, merchant and failure code (summed per channel,
 * merchant and code first).
 */
export function insertBucketRatesQuery(database: string, o: { fromMs: number; toMs: number; buckets: number[]; computedAt: Date; version: number }): string {
  if (o.buckets.length === 0) throw new RangeError('No bucket to write');
  const fromSec = Math.floor(o.fromMs / 1000);
  const toSec = Math.ceil(o.toMs / 1000);
  if (o.buckets.some((b) => !Number.isSafeInteger(b) || b < fromSec || b >= toSec || b % BUCKET_SECONDS !== 0)) {
    throw new RangeError(`Buckets outside [${fromSec}, ${toSec}) or not on a 5-minute boundary`);
  }
  const items = ident(database, 'rate_items');
  // One key range per run of adjacent buckets, so only the touched buckets' items are read (the
  // table is ordered by bucket). FINAL runs in a subquery with the key condition only, so no
  // filter on `deleted` can run before it folds.
  const ranges = bucketRanges(o.buckets).map(([a, b]) => sqlFragment`(bucket_start >= toDateTime(${a}, 'UTC') AND bucket_start < toDateTime(${b}, 'UTC'))`);
  const latest = sqlFragment`SELECT * FROM ${items} FINAL WHERE ${joinSql(ranges, ' OR ')}`;
  // The live items summed per (bucket, channel, merchant, code) first, so the four dimensions
  // multiply those few groups rather than every item.
  const p = (c: string) => ident(`p_${c}`);
  const grouped = sqlFragment`SELECT bucket_start AS g_bucket, channel AS g_channel, merchant AS g_merchant, code AS g_code,
        ${joinSql(
          countColumns.map((c) => sqlFragment`sum(${ident(c)}) AS ${p(c)}`),
          ', ',
        )}
      FROM (${latest}) AS latest
      WHERE deleted = 0
      GROUP BY g_bucket, g_channel, g_merchant, g_code`;
  const keyed = sqlFragment`SELECT g_bucket AS i_bucket,
        arrayJoin([tuple('all', ''), tuple('channel', g_channel), tuple('merchant', g_merchant), tuple('failure_code', g_code)]) AS k,
        ${joinSql(
          countColumns.map((c) => sqlFragment`${p(c)} AS ${ident(c)}`),
          ', ',
        )}
      FROM (${grouped}) AS grouped`;
  const n = (c: string) => ident(`n_${c}`);
  const sums = joinSql(
    countColumns.map((c) => sqlFragment`sum(${ident(c)}) AS ${n(c)}`),
    ', ',
  );
  const rates = joinSql(
    Object.values(rateColumns).map(([num, den]) => sqlFragment`if(${n(den)} = 0, 0, ${n(num)} / ${n(den)})`),
    ', ',
  );
  return sql`INSERT INTO ${ident(database, 'payment_rates')} (${storedColumns})
SELECT '5m', i_bucket, i_dim, i_value, ${identList(countColumns.map((c) => `n_${c}`))}, ${rates}, ${o.computedAt}, toUInt64(${o.version})
FROM (
  SELECT i_bucket, tupleElement(k, 1) AS i_dim, tupleElement(k, 2) AS i_value, ${sums}
  FROM (${keyed}) AS keyed
  GROUP BY i_bucket, i_dim, i_value
)`;
}

/** Sorted bucket starts (epoch seconds) as [from, to) ranges of adjacent buckets. */
export function bucketRanges(buckets: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const b of [...new Set(buckets)].sort((x, y) => x - y)) {
    const last = out[out.length - 1];
    if (last && last[1] === b) last[1] = b + BUCKET_SECONDS;
    else out.push([b, b + BUCKET_SECONDS]);
  }
  return out;
}

/** Rows one run wrote into payment_rates, looked for among buckets starting in [fromMs, toMs). */
export const writtenRatesQuery = (database: string, version: number, fromMs: number, toMs: number): string =>
  sql`SELECT count() AS n FROM ${ident(database, 'payment_rates')}
WHERE bucket_start >= toDateTime(${Math.floor(fromMs / 1000)}, 'UTC') AND bucket_start < toDateTime(${Math.ceil(toMs / 1000)}, 'UTC') AND version = ${version}`;

/** The server's clock and uptime (epoch seconds, seconds): seen_at is measured in the first; the second never steps. */
export const serverNowQuery = 'SELECT toUInt32(now()) AS t, toUInt64(uptime()) AS up';

/**
 * How many rows payment_changes holds per second of seen_at from `fromSec` on (before `toSec`, or
 * without an upper bound when null), ascending: a run cuts its changes into slices from these.
 */
export function changesPerSecondQuery(database: string, fromSec: number, toSec: number | null): string {
  return sql`SELECT toUInt32(seen_at) AS k, count() AS n FROM ${ident(database, 'payment_changes')}
WHERE seen_at >= toDateTime(${fromSec}, 'UTC')${seenBefore(toSec)} GROUP BY k ORDER BY k`;
}

/** Seconds per step of historyPerStepQuery: a history slice is a whole number of these. */
export const HISTORY_STEP_SECONDS = 10;

/**
 * How many payment events payment_events holds per 10 seconds of occurred_at in [fromMs, toMs)
 * (toMs null: no upper bound), newest first: the history pass cuts its slices from these.
 */
export function historyPerStepQuery(database: string, fromMs: number, toMs: number | null): string {
  const step = HISTORY_STEP_SECONDS;
  return sql`SELECT intDiv(toUInt32(occurred_at), ${step}) * ${step} AS k, count() AS n FROM ${ident(database, 'payment_events')}
WHERE type = 'payment' AND occurred_at >= toDateTime(${Math.floor(fromMs / 1000)}, 'UTC')${occurredBefore(toMs)} GROUP BY k ORDER BY k DESC`;
}

/** The buckets (epoch seconds) the items of versions in (afterVersion, toVersion] landed in, live or deleted. */
export const touchedSinceQuery = (database: string, afterVersion: number, toVersion: number): string =>
  sql`SELECT DISTINCT toUInt32(bucket_start) AS b FROM ${ident(database, 'rate_items_touched')}
WHERE version > toUInt64(${afterVersion}) AND version <= toUInt64(${toVersion}) ORDER BY b`;

/** The rates cursor as stored (migrations 016 and 021). */
export interface RatesCursorRow {
  seenToSec: number;
  coveredFromSec: number;
  /** 0: no history left to build. */
  historyFromSec: number;
  writtenVersion: number;
  serverAtSec: number;
  serverUptime: number;
  version: number;
}

/** A job's cursor over payment_changes: read up to seen_to; items complete from covered_from on; history left down to history_from. */
export const readCursorQuery = (database: string, job: string): string =>
  sql`SELECT toUInt32(seen_to) AS seen_to, toUInt32(covered_from) AS covered_from, toUInt32(history_from) AS history_from,
  written_version, toUInt32(server_at) AS server_at, server_uptime, version
FROM ${ident(database, 'analytics_cursors')} FINAL WHERE job = ${job}`;

/** Moves a job's cursor (the latest version is current). */
export const writeCursorQuery = (database: string, job: string, c: RatesCursorRow): string =>
  sql`INSERT INTO ${ident(database, 'analytics_cursors')} (job, seen_to, covered_from, history_from, written_version, server_at, server_uptime, version)
VALUES (${job}, toDateTime(${c.seenToSec}, 'UTC'), toDateTime(${c.coveredFromSec}, 'UTC'), toDateTime(${c.historyFromSec}, 'UTC'),
  toUInt64(${c.writtenVersion}), toDateTime(${c.serverAtSec}, 'UTC'), toUInt64(${c.serverUptime}), toUInt64(${c.version}))`;
