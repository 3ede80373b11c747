import { ident } from '../../storage/sql.ts';
import { dashboard, queryVariable, variableFilter, type Dashboard, type DashboardSpec } from '../model.ts';
import { timeBucket } from './sql.ts';

/**
 * Retries and refunds from payment_rates, the 5-minute buckets the `rates` job writes
 * (analytics/DEFINITIONS.md). Rates over several buckets are recomputed from the summed counts,
 * never averaged, so a busy bucket weighs what it should.
 */
export function retryRefundsSpec(database: string): DashboardSpec {
  const rates = ident(database, 'payment_rates').text;
  /**
   * Rows of one dimension in the range, only from the latest run of each bucket: a bucket the job
   * recomputed must not count twice (the same rule as storedRatesQuery in analytics/queries.ts).
   */
  const latest = (dimension: string, filter = '1') => {
    const where = `bucket_size = '5m' AND dimension = '${dimension}' AND $__timeFilter(bucket_start)`;
    return `SELECT * FROM ${rates} FINAL
  WHERE ${where} AND ${filter}
    AND (bucket_start, version) IN (SELECT bucket_start, max(version) FROM ${rates} WHERE ${where} GROUP BY bucket_start)`;
  };
  const bucket = `toDateTime(intDiv(toUInt32(bucket_start), $__interval_s) * $__interval_s, 'UTC') AS time`;
  const ratio = (num: string, den: string) => `sum(${num}) / greatest(sum(${den}), 1)`;
  const policy = ident(database, 'retry_policy').text;
  /** The latest run of the retry-policy job whose evidence ends by the end of the range: the policy in effect then. */
  const currentPolicy = `version IN (SELECT max(version) FROM ${policy} WHERE window_to <= $__toTime)`;
  return {
    uid: 'paysentinel-retry-refunds',
    title: 'Retry & refunds',
    description:
      'Retry, recovery and refund rates from payment_rates (5-minute buckets written by the rates job), and the retry policy the retry-policy job ' +
      'tuned (retry_policy): current decisions with their reasons, their history and the evidence per attempt. ' +
      'Channel and merchant are separate breakdowns, so each variable filters its own panels.',
    tags: ['payments', 'risk'],
    from: 'now-24h',
    refresh: '5m',
    variables: [
      queryVariable('channel', 'Channel', `SELECT DISTINCT value FROM ${rates} WHERE dimension = 'channel' AND $__timeFilter(bucket_start) ORDER BY value`),
      queryVariable('merchant', 'Merchant', `SELECT DISTINCT value FROM ${rates} WHERE dimension = 'merchant' AND $__timeFilter(bucket_start) ORDER BY value`),
    ],
    panels: [
      {
        type: 'timeseries',
        title: 'Retry and recovery rates',
        description:
          'Retry rate (attempts numbered above 1 / attempts), orders needing a retry, and orders recovered by a retry / orders whose first attempt did ' +
          'not succeed.',
        w: 12,
        h: 8,
        unit: 'percentunit',
        min: 0,
        sql: [
          `SELECT ${bucket},
  ${ratio('retry_attempts', 'attempts')} AS retry_rate,
  ${ratio('orders_retried', 'orders')} AS orders_needing_retry_rate,
  ${ratio('orders_recovered', 'orders_first_not_succeeded')} AS recovered_by_retry_rate
FROM (${latest('all')})
GROUP BY time
ORDER BY time`,
        ],
      },
      {
        type: 'timeseries',
        title: 'Refund rate by channel',
        description: "Paid orders with a succeeded refund / paid orders, per channel of the order's first attempt.",
        w: 12,
        h: 8,
        unit: 'percentunit',
        min: 0,
        sql: [
          `SELECT ${bucket}, value AS channel, ${ratio('orders_refunded', 'orders_paid')} AS refund_rate
FROM (${latest('channel', variableFilter('value', 'channel'))})
GROUP BY time, channel
ORDER BY time, channel`,
        ],
      },
      {
        type: 'table',
        title: 'Recovered by retry, by first failure code',
        description: 'Orders whose first attempt failed with this code, and how many a later attempt recovered.',
        w: 12,
        h: 8,
        sql: [
          `SELECT if(value = '', '(none)', value) AS failure_code,
  sum(orders_first_not_succeeded) AS orders_first_failed,
  sum(orders_recovered) AS recovered,
  round(${ratio('orders_recovered', 'orders_first_not_succeeded')}, 4) AS recovered_rate
FROM (${latest('failure_code')})
GROUP BY failure_code
HAVING orders_first_failed > 0
ORDER BY orders_first_failed DESC`,
        ],
        columns: ['failure_code', 'orders_first_failed', 'recovered', 'recovered_rate'],
      },
      {
        type: 'table',
        title: 'Refunds by merchant',
        description: 'Paid orders, refunded orders and refund rates (by count and by amount) per merchant, highest refund rate first.',
        w: 12,
        h: 8,
        sql: [
          `SELECT value AS merchant,
  sum(orders_paid) AS paid_orders,
  sum(orders_refunded) AS refunded_orders,
  round(${ratio('orders_refunded', 'orders_paid')}, 4) AS refund_rate,
  round(${ratio('refunded_amount_minor', 'paid_amount_minor')}, 4) AS refund_amount_rate
FROM (${latest('merchant', variableFilter('value', 'merchant'))})
GROUP BY merchant
ORDER BY refund_rate DESC, paid_orders DESC
LIMIT 50`,
        ],
        columns: ['merchant', 'paid_orders', 'refunded_orders', 'refund_rate', 'refund_amount_rate'],
      },
      {
        type: 'table',
        title: 'Current retry policy',
        description:
          'The policy the retry-policy job decided from evidence up to the end of the range (its latest run then), per channel and failure code, with ' +
          'the reason for each decision. Peak hours (UTC) get their own max attempts and backoff.',
        w: 24,
        h: 9,
        sql: [
          `SELECT channel, failure_code, action, max_attempts, backoff_seconds,
  arrayStringConcat(arrayMap(h -> toString(h), peak_hours), ',') AS peak_hours_utc, peak_max_attempts, peak_backoff_seconds,
  failures, change, reason, window_to AS evidence_until
FROM ${policy}
WHERE ${currentPolicy} AND ${variableFilter('channel', 'channel')}
ORDER BY channel, failure_code`,
        ],
        columns: [
          'channel',
          'failure_code',
          'action',
          'max_attempts',
          'backoff_seconds',
          'peak_hours_utc',
          'peak_max_attempts',
          'peak_backoff_seconds',
          'failures',
          'change',
          'reason',
          'evidence_until',
        ],
        unitsByColumn: { backoff_seconds: 's', peak_backoff_seconds: 's' },
      },
      {
        type: 'timeseries',
        title: 'Retry policy changes',
        description: 'Policy entries that are new or changed, by the end of the evidence window of the run that decided them.',
        w: 8,
        h: 8,
        unit: 'short',
        custom: { drawStyle: 'bars', fillOpacity: 80, stacking: { mode: 'normal', group: 'A' } },
        sql: [
          `SELECT ${timeBucket('window_to')}, change AS change_kind, count() AS entries
FROM ${policy}
WHERE change != 'unchanged' AND $__timeFilter(window_to) AND ${variableFilter('channel', 'channel')}
GROUP BY time, change_kind
ORDER BY time, change_kind`,
        ],
      },
      {
        type: 'table',
        title: 'Retry policy history',
        description: 'Every decision that changed in the range, newest first: what it was, what it became and why.',
        w: 16,
        h: 8,
        sql: [
          `SELECT window_to AS evidence_until, channel, failure_code, change,
  if(previous_action = '', '', concat(previous_action, ', max ', toString(previous_max_attempts), ' (peak ', toString(previous_peak_max_attempts),
    ')')) AS previous_decision,
  concat(action, ', max ', toString(max_attempts), ' (peak ', toString(peak_max_attempts), ')') AS new_decision,
  reason
FROM ${policy}
WHERE change != 'unchanged' AND $__timeFilter(window_to) AND ${variableFilter('channel', 'channel')}
ORDER BY evidence_until DESC, channel, failure_code
LIMIT 200`,
        ],
        columns: ['evidence_until', 'channel', 'failure_code', 'change', 'previous_decision', 'new_decision', 'reason'],
      },
      {
        type: 'table',
        title: 'Success of attempt k+1 by failure code',
        description:
          'The evidence of the current policy: per failure code and channel, attempts k that failed and were retried, how many attempt k+1 succeeded, ' +
          'P(k+1 succeeds | k failed) and its Wilson interval.',
        w: 24,
        h: 9,
        sql: [
          `SELECT failure_code, channel, k AS failed_attempt, n_retried AS retried_failures, n_succeeded AS next_succeeded, p AS p_next_success,
            p_lo AS p_low, p_hi AS p_high
FROM ${policy}
ARRAY JOIN ks AS k, retried AS n_retried, retry_succeeded AS n_succeeded, p_success AS p, ci_low AS p_lo, ci_high AS p_hi
WHERE ${currentPolicy} AND ${variableFilter('channel', 'channel')}
ORDER BY failure_code, channel, failed_attempt`,
        ],
        columns: ['failure_code', 'channel', 'failed_attempt', 'retried_failures', 'next_succeeded', 'p_next_success', 'p_low', 'p_high'],
        unitsByColumn: { p_next_success: 'percentunit', p_low: 'percentunit', p_high: 'percentunit' },
      },
    ],
  };
}

export const retryRefunds = (database: string): Dashboard => dashboard(retryRefundsSpec(database));
