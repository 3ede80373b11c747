import { ident, identList, joinSql, sql, sqlFragment, type SqlFragment } from '../storage/sql.ts';
import { eventsOfOrders } from '../storage/copies.ts';
import { EARLIEST_KEY, LATEST_KEY } from '../storage/event-order.ts';

/**
 * SQL for the rates defined in analytics/DEFINITIONS.md, built for ClickHouse 18.16 and current versions alike: no
 * CTEs, no window functions, no query parameters; every value goes through the `sql` tag.
 * The definitions these statements implement are written out in analytics/DEFINITIONS.md.
 */

/** Breakdown dimensions; `all` is the whole population (value ''). */
export const dimensions = ['all', 'channel', 'merchant', 'failure_code'] as const;
export type Dimension = (typeof dimensions)[number];

/** Time buckets, by the attempt's (or order's first attempt's) first occurred_at, in UTC. */
export const bucketSizes = { '5m': 300, hour: 3600, day: 86_400 } as const;
export type BucketSize = keyof typeof bucketSizes;

/** Count columns, in the order every statement emits them. */
export const countColumns = [
  'attempts',
  'succeeded',
  'failed',
  'timeout',
  'processing',
  'retry_attempts',
  'orders',
  'orders_retried',
  'orders_first_not_succeeded',
  'orders_recovered',
  'orders_paid',
  'orders_refunded',
  'paid_amount_minor',
  'refunded_amount_minor',
] as const;

/** Ratio columns, each `numerator / denominator` and 0 when the denominator is 0. */
export const rateColumns = {
  success_rate: ['succeeded', 'attempts'],
  failure_rate: ['failed', 'attempts'],
  timeout_rate: ['timeout', 'attempts'],
  retry_rate: ['retry_attempts', 'attempts'],
  orders_needing_retry_rate: ['orders_retried', 'orders'],
  recovered_by_retry_rate: ['orders_recovered', 'orders_first_not_succeeded'],
  refund_rate: ['orders_refunded', 'orders_paid'],
  refund_amount_rate: ['refunded_amount_minor', 'paid_amount_minor'],
} as const;

// The attribute an attempt (or, for order counts, the order's first attempt) is grouped by.
// Every alias is distinct from the column it is computed from: ClickHouse resolves aliases
// query-wide, so `argMin(channel, ...) AS channel` would refer to itself.
const dimensionExpr: Record<Dimension, (p: 'a' | 'o') => SqlFragment> = {
  all: () => sqlFragment`''`,
  channel: (p) => ident(`${p}_channel`),
  merchant: (p) => ident(`${p}_merchant`),
  failure_code: (p) => ident(`${p}_code`),
};

/**
 * How long before a window's start the jobs that read attempts by window (reconcile, baselines,
 * retry-policy) still read events: an attempt whose first event falls in this lead is recognised
 * as older than the window and left out. Only an attempt whose events lie further apart than this
 * across the window's start could be taken for one that began in the window. @default 1 hour
 */
export const ATTEMPT_LEAD_MS = 3_600_000;

/**
 * `payment_events WHERE ...` for a FROM clause: the payment events from `ATTEMPT_LEAD_MS` before
 * `fromMs` on, read by time (the table's order), so a job's read is bounded by its window, never
 * by the stored history. Later events (a late callback, a retry) are included whenever they came.
 */
export function paymentsSince(database: string, fromMs: number): SqlFragment {
  const fromSec = Math.floor((fromMs - ATTEMPT_LEAD_MS) / 1000);
  return sqlFragment`${ident(database, 'payment_events')} WHERE occurred_at >= toDateTime(${fromSec}, 'UTC') AND type = 'payment'`;
}

export interface RatesQueryOptions {
  /** Attempts whose first occurred_at is >= from (ms precision). */
  fromMs: number;
  /** ... and < to. */
  toMs: number;
  dimension: Dimension;
  /** Group by time bucket; without it the whole window is one bucket starting at `from`. */
  bucket?: BucketSize;
}

/** `toUInt64(expr) AS n_<count>` for every count column in order, 0 for those not given. */
function countsSelect(exprs: Partial<Record<(typeof countColumns)[number], SqlFragment>>): SqlFragment {
  // UNION ALL members match by position and need identical types: every count is UInt64.
  return joinSql(
    countColumns.map((c) => sqlFragment`toUInt64(${exprs[c] ?? 0}) AS ${ident(`n_${c}`)}`),
    ', ',
  );
}

/** `if(den = 0, 0, num / den) AS <prefix><rate>` for every rate column, over count columns named `<from><count>`. */
function ratesSelect(from: string, prefix: string): SqlFragment {
  return joinSql(
    Object.entries(rateColumns).map(([name, [num, den]]) => {
      const [n, d] = [ident(from + num), ident(from + den)];
      return sqlFragment`if(${d} = 0, 0, ${n} / ${d}) AS ${ident(prefix + name)}`;
    }),
    ', ',
  );
}

/** ratesQuery as a fragment, for the statements that embed it. */
export function ratesSelectQuery(database: string, options: RatesQueryOptions): SqlFragment {
  const events = ident(database, 'payment_events');
  const { fromMs, toMs } = options;
  if (!(Number.isSafeInteger(fromMs) && Number.isSafeInteger(toMs) && fromMs < toMs && fromMs >= 0)) {
    throw new RangeError(`Invalid window [${fromMs}, ${toMs})`);
  }
  const fromSec = Math.floor(fromMs / 1000);
  const toSec = Math.floor((toMs - 1) / 1000);
  const dim = dimensionExpr[options.dimension];
  const size = options.bucket === undefined ? undefined : bucketSizes[options.bucket];
  const bucket = (p: 'a' | 'o') =>
    size === undefined ? sqlFragment`toUInt32(${fromSec})` : sqlFragment`intDiv(toUInt32(${ident(`${p}_first_at`)}), ${size}) * ${size}`;

  // Orders with a payment event in the window: every attempt and refund of them is read, at any
  // time, so a late callback after `to` still decides the outcome.
  const occurredInWindow = sqlFragment`occurred_at >= toDateTime(${fromSec}, 'UTC') AND occurred_at <= toDateTime(${toSec}, 'UTC')`;
  const orders = sqlFragment`SELECT order_id FROM ${events} WHERE type = 'payment' AND ${occurredInWindow}`;
  const attempts = sqlFragment`SELECT
      order_id,
      ifNull(attempt, 0) AS attempt_no,
      min(occurred_at) AS a_first_at,
      min(toUInt64(occurred_at) * 1000 + occurred_ms) AS a_first_ms,
      argMax(status, ${LATEST_KEY}) AS outcome,
      argMax(ifNull(failure_code, ''), ${LATEST_KEY}) AS a_code,
      argMax(amount_minor, ${LATEST_KEY}) AS amount,
      argMin(channel, ${EARLIEST_KEY}) AS a_channel,
      argMin(merchant_id, ${EARLIEST_KEY}) AS a_merchant
    FROM ${eventsOfOrders(database, orders, sqlFragment`type = 'payment'`)}
    GROUP BY order_id, attempt_no`;
  const refunds = sqlFragment`SELECT refund_order AS order_id, toUInt64(count()) AS refunds, toUInt64(sum(refund_amount)) AS refunded
    FROM (
      SELECT event_id, any(order_id) AS refund_order, any(amount_minor) AS refund_amount
      FROM ${eventsOfOrders(database, orders, sqlFragment`type = 'refund' AND status = 'succeeded'`)}
      GROUP BY event_id
    )
    GROUP BY refund_order`;
  const orderRows = sqlFragment`SELECT
      order_id,
      argMin(a_first_at, attempt_no) AS o_first_at,
      argMin(a_first_ms, attempt_no) AS o_first_ms,
      argMin(a_channel, attempt_no) AS o_channel,
      argMin(a_merchant, attempt_no) AS o_merchant,
      argMin(a_code, attempt_no) AS o_code,
      argMin(outcome, attempt_no) != 'succeeded' AS first_not_succeeded,
      max(attempt_no) > 1 AS retried,
      countIf(outcome = 'succeeded') > 0 AS paid,
      sumIf(amount, outcome = 'succeeded') AS paid_amount
    FROM (${attempts})
    GROUP BY order_id`;
  const inWindow = (p: 'a' | 'o') => {
    const first = ident(`${p}_first_ms`);
    return sqlFragment`${first} >= ${fromMs} AND ${first} < ${toMs}`;
  };

  const perAttempt = sqlFragment`SELECT ${bucket('a')} AS bucket_start, toString(${dim('a')}) AS value,
      ${countsSelect({
        attempts: sqlFragment`count()`,
        succeeded: sqlFragment`countIf(outcome = 'succeeded')`,
        failed: sqlFragment`countIf(outcome = 'failed')`,
        timeout: sqlFragment`countIf(outcome = 'timeout')`,
        processing: sqlFragment`countIf(outcome = 'processing')`,
        retry_attempts: sqlFragment`countIf(attempt_no > 1)`,
      })}
    FROM (${attempts})
    WHERE ${inWindow('a')}
    GROUP BY bucket_start, value`;
  const perOrder = sqlFragment`SELECT ${bucket('o')} AS bucket_start, toString(${dim('o')}) AS value,
      ${countsSelect({
        orders: sqlFragment`count()`,
        orders_retried: sqlFragment`countIf(retried)`,
        orders_first_not_succeeded: sqlFragment`countIf(first_not_succeeded)`,
        orders_recovered: sqlFragment`countIf(first_not_succeeded AND paid)`,
        orders_paid: sqlFragment`countIf(paid)`,
        orders_refunded: sqlFragment`countIf(paid AND refunds > 0)`,
        paid_amount_minor: sqlFragment`sum(paid_amount)`,
        refunded_amount_minor: sqlFragment`sumIf(refunded, paid)`,
      })}
    FROM (${orderRows}) AS order_rows ANY LEFT JOIN (${refunds}) AS refund_rows USING order_id
    WHERE ${inWindow('o')}
    GROUP BY bucket_start, value`;

  const sums = joinSql(
    countColumns.map((c) => sqlFragment`sum(${ident(`n_${c}`)}) AS ${ident(c)}`),
    ', ',
  );
  return sqlFragment`SELECT bucket_start, value, ${identList(countColumns)}, ${ratesSelect('', '')}
FROM (
  SELECT bucket_start, value, ${sums}
  FROM (
    ${perAttempt}
    UNION ALL
    ${perOrder}
  )
  GROUP BY bucket_start, value
)
ORDER BY bucket_start, value`;
}

/**
 * One row per (bucket_start, value): the counts and rates of §1 for attempts (and orders) whose
 * first occurred_at falls in [from, to). Columns: bucket_start (UInt32 epoch seconds), value,
 * the count columns, then the rate columns.
 *
 * Robust to an exactly duplicated event row (the ReplacingMergeTree backstop may not have merged
 * yet): attempts are built with min/argMax/argMin, which a duplicate cannot change, and refunds
 * are grouped by event_id before they are summed.
 */
export const ratesQuery = (database: string, options: RatesQueryOptions): string => ratesSelectQuery(database, options).text;

/** The columns of payment_rates this project writes, in order. */
const storedColumns = identList(['bucket_size', 'bucket_start', 'dimension', 'value', ...countColumns, ...Object.keys(rateColumns), 'computed_at', 'version']);

/** INSERT ... SELECT of one bucket size and dimension over [from, to) into payment_rates, computed in ClickHouse. */
export function insertRatesQuery(database: string, options: Required<RatesQueryOptions> & { computedAt: Date; version: number }): string {
  const table = ident(database, 'payment_rates');
  const passthrough = identList([...countColumns, ...Object.keys(rateColumns)]);
  return sql`INSERT INTO ${table} (${storedColumns})
SELECT ${options.bucket}, toDateTime(bucket_start, 'UTC'), ${options.dimension}, value, ${passthrough}, ${options.computedAt}, toUInt64(${options.version})
FROM (${ratesSelectQuery(database, options)})`;
}

/**
 * The counts and rates of [from, to) summed from the stored buckets of one size (`source`, by
 * default hours), per (dimension, value): each bucket's latest run only. Every count is additive
 * over buckets (an attempt, and an order, belongs to exactly one bucket by its first occurred_at),
 * so the sums equal the counts of the whole range; the rates are recomputed from them. Columns:
 * h_dimension, h_value, then s_<count> for each count column and r_<rate> for each rate column.
 * Reads payment_rates only, never payment_events.
 */
function bucketSums(database: string, options: { fromMs: number; toMs: number; dimension?: Dimension; source?: BucketSize }): SqlFragment {
  const table = ident(database, 'payment_rates');
  const from = Math.floor(options.fromMs / 1000);
  const to = Math.ceil(options.toMs / 1000);
  const where = [
    sqlFragment`bucket_size = ${options.source ?? 'hour'} AND bucket_start >= toDateTime(${from}, 'UTC') AND bucket_start < toDateTime(${to}, 'UTC')`,
  ];
  if (options.dimension !== undefined) where.push(sqlFragment`dimension = ${options.dimension}`);
  const cond = joinSql(where, ' AND ');
  const sums = joinSql(
    countColumns.map((c) => sqlFragment`sum(${ident(c)}) AS ${ident(`s_${c}`)}`),
    ', ',
  );
  const outer = identList(countColumns.map((c) => `s_${c}`));
  // Inner aliases (h_*, s_*) differ from the column names: 18.16 resolves aliases query-wide.
  return sqlFragment`SELECT h_dimension, h_value, ${outer}, ${ratesSelect('s_', 'r_')}
FROM (
  SELECT dimension AS h_dimension, value AS h_value, ${sums}
  FROM ${table} FINAL
  WHERE ${cond}
    AND (dimension, bucket_start, version) IN (SELECT dimension, bucket_start, max(version) FROM ${table} WHERE ${cond} GROUP BY dimension, bucket_start)
  GROUP BY h_dimension, h_value
)
ORDER BY h_dimension, h_value`;
}

/** bucketSums over the stored hour buckets (the daily report's numbers). */
export const hourSumsQuery = (database: string, options: { fromMs: number; toMs: number; dimension?: Dimension }): string =>
  bucketSums(database, { ...options, source: 'hour' }).text;

/**
 * Writes one hour or day bucket, every dimension, as the sum of its stored smaller buckets (an hour
 * from its twelve 5-minute buckets, a day from its 24 hours), so only 5-minute buckets are ever
 * computed from payment_events.
 */
export function insertRollupQuery(database: string, options: { bucket: 'hour' | 'day'; startMs: number; computedAt: Date; version: number }): string {
  const size = bucketSizes[options.bucket] * 1000;
  if (options.startMs % size !== 0) throw new RangeError(`Not the start of a UTC ${options.bucket}: ${options.startMs}`);
  const select = bucketSums(database, { fromMs: options.startMs, toMs: options.startMs + size, source: options.bucket === 'day' ? 'hour' : '5m' });
  const columns = identList([...countColumns.map((c) => `s_${c}`), ...Object.keys(rateColumns).map((c) => `r_${c}`)]);
  const startSec = Math.floor(options.startMs / 1000);
  return sql`INSERT INTO ${ident(database, 'payment_rates')} (${storedColumns})
SELECT ${options.bucket}, toDateTime(${startSec}, 'UTC'), h_dimension, h_value, ${columns}, ${options.computedAt}, toUInt64(${options.version})
FROM (${select})`;
}

export interface StoredRatesQueryOptions {
  bucket: BucketSize;
  dimension: Dimension;
  /** Buckets starting at or after this (ms). */
  fromMs: number;
  /** Buckets starting before this (ms). */
  toMs: number;
}

/**
 * Reads stored rates: per (bucket_size, dimension, bucket_start) only the rows of the latest run,
 * so a recomputed bucket never mixes two runs and never counts twice.
 */
export function storedRatesQuery(database: string, options: StoredRatesQueryOptions): string {
  const table = ident(database, 'payment_rates');
  const from = Math.floor(options.fromMs / 1000);
  const to = Math.ceil(options.toMs / 1000);
  const where = sqlFragment`bucket_size = ${options.bucket} AND dimension = ${options.dimension}
    AND bucket_start >= toDateTime(${from}, 'UTC') AND bucket_start < toDateTime(${to}, 'UTC')`;
  const columns = identList([...countColumns, ...Object.keys(rateColumns)]);
  // The epoch alias lives one level up: an alias named like a column would shadow it in WHERE.
  return sql`SELECT toUInt32(stored_start) AS bucket_start, value, ${columns}
FROM (
  SELECT bucket_start AS stored_start, value, ${columns}
  FROM ${table} FINAL
  WHERE ${where}
    AND (bucket_start, version) IN (SELECT bucket_start, max(version) FROM ${table} WHERE ${where} GROUP BY bucket_start)
)
ORDER BY bucket_start, value`;
}

/** Count and latest window end of a job's successful runs. */
export const lastRunQuery = (database: string, job: string): string =>
  sql`SELECT count() AS n, max(toUInt32(window_to)) AS t FROM ${ident(database, 'job_runs')} FINAL WHERE job = ${job} AND status = 'ok'`;

/** A job's runs, newest first, each in its latest state. */
export const recentRunsQuery = (database: string, job: string, limit: number): string =>
  sql`SELECT run_id, status, rows, window_from, window_to, started_at, finished_at, error FROM ${ident(database, 'job_runs')} FINAL
    WHERE job = ${job} ORDER BY started_at DESC, run_id DESC LIMIT ${limit}`;

/** Number and first occurred_at of payment events: where a first `rates` run starts. */
export const earliestPaymentQuery = (database: string): string =>
  sql`SELECT count() AS n, min(toUInt32(occurred_at)) AS t FROM ${ident(database, 'payment_events')} WHERE type = 'payment'`;
