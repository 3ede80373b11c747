import { ident } from '../../storage/sql.ts';
import { dashboard, queryVariable, variableFilter, type Dashboard, type DashboardSpec } from '../model.ts';

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
  return {
    uid: 'paysentinel-retry-refunds',
    title: 'Retry & refunds',
    description: 'Retry, recovery and refund rates from payment_rates (5-minute buckets written by the rates job). Channel and merchant are separate breakdowns, so each variable filters its own panels.',
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
        description: 'Retry rate (attempts numbered above 1 / attempts), orders needing a retry, and orders recovered by a retry / orders whose first attempt did not succeed.',
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
        description: 'Paid orders with a succeeded refund / paid orders, per channel of the order\'s first attempt.',
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
    ],
  };
}

export const retryRefunds = (database: string): Dashboard => dashboard(retryRefundsSpec(database));
