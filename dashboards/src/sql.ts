/**
 * SQL pieces the panels share. Every panel query runs on ClickHouse 18.16 and current versions:
 * buckets come from intDiv on epoch seconds ($__timeInterval would expand to toStartOfInterval,
 * which 18.16 lacks), and there are no window functions, query parameters or DateTime64.
 */
import { variableFilter } from '../model.ts';
import { LATEST } from '../../storage/event-order.ts';
import { sqlLiteral } from '../../storage/sql.ts';

/** The bucket a DateTime column falls in, as a UTC DateTime named `time`, Grafana's time column. */
export const timeBucket = (column: string): string => `toDateTime(intDiv(toUInt32(${column}), $__interval_s) * $__interval_s, 'UTC') AS time`;

/** Events of the channels and merchants picked in the dashboard's variables (no-op for All). */
export const eventFilters = `${variableFilter('channel', 'channel')} AND ${variableFilter('merchant_id', 'merchant')}`;

/**
 * Orders an attempt's events as analytics/DEFINITIONS.md does: by occurred_at to the
 * millisecond, a final status winning over `processing` at an exact tie.
 */

/**
 * One row per payment attempt whose first event is in the time range: its first time (`started`,
 * DateTime), `attempt_channel` (named apart from the column it
 * aggregates: in ClickHouse an alias shadows a column of the same name in WHERE), outcome (latest status) and failure code (of the latest event).
 */
export const attemptsSubquery = (events: string): string => `SELECT
    order_id,
    attempt,
    min(occurred_at) AS started,
    any(channel) AS attempt_channel,
    toString(argMax(status, ${LATEST})) AS outcome,
    ifNull(argMax(failure_code, ${LATEST}), '') AS code
  FROM ${events}
  WHERE type = 'payment' AND $__timeFilter(occurred_at) AND ${eventFilters}
  GROUP BY order_id, attempt`;

/**
 * Per-second increase of cumulative counters in pipeline_metrics, per bucket and per `series`
 * (an expression over `name` and `labels`). Each instance's samples are ordered in an array so
 * the increase between consecutive snapshots needs no window function; a drop means the
 * counter restarted at 0 (process restart), so the new value itself is the increase.
 */
export function counterIncreases(metricsTable: string, names: readonly string[]): string {
  const list = sqlLiteral(names);
  return `SELECT name, labels, ts, delta
  FROM (
    SELECT
      name,
      labels,
      arraySort(groupArray((toUInt32(time), value))) AS samples,
      arrayMap(s -> s.1, samples) AS tss,
      arrayMap(s -> s.2, samples) AS vs,
      arrayMap((d, v) -> if(d < 0, v, d), arrayDifference(vs), vs) AS deltas
    FROM ${metricsTable}
    WHERE name IN ${list} AND $__timeFilter(time)
    GROUP BY instance, name, labels
  )
  ARRAY JOIN tss AS ts, deltas AS delta`;
}

/**
 * Gauge samples in the range as (name, labels, ts epoch seconds, value): `time` is renamed so the
 * outer query can name its bucket `time` without shadowing the column.
 */
export function gauges(metricsTable: string, names: readonly string[]): string {
  const list = sqlLiteral(names);
  return `SELECT name, labels, toUInt32(time) AS ts, value FROM ${metricsTable} WHERE name IN ${list} AND $__timeFilter(time)`;
}
