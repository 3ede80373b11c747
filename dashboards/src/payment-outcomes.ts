import { ident } from '../../storage/sql.ts';
import { dashboard, queryVariable, variableFilter, type Dashboard, type DashboardSpec } from '../model.ts';
import { attemptsSubquery, eventFilters, timeBucket } from './sql.ts';

/** An attempt still `processing` this long before the end of the range is reported as stuck. */
export const STUCK_AFTER_SECONDS = 300;

/** Ops' view of payments: are they healthy right now, and what is failing where. */
export function paymentOutcomesSpec(database: string): DashboardSpec {
  const events = ident(database, 'payment_events').text;
  const attempts = attemptsSubquery(events);
  const reconcileAttempts = ident(database, 'reconcile_attempts').text;
  const callbackDelays = ident(database, 'callback_delays').text;
  /** The latest reconcile run that ended in the range (every run writes callback_delays rows). */
  const latestReconcile = `version IN (SELECT max(version) FROM ${callbackDelays} WHERE $__timeFilter(window_to))`;
  return {
    uid: 'paysentinel-payment-outcomes',
    title: 'Payment outcomes',
    description:
      'Payment attempts and refunds from payment_events: volume, outcomes and rates by channel, failure codes, stuck attempts and callback delay; the ' +
      'stuck attempts and callback delay percentiles the reconcile job found (reconcile_attempts, callback_delays).',
    tags: ['payments', 'ops'],
    from: 'now-6h',
    refresh: '1m',
    variables: [
      queryVariable('channel', 'Channel', `SELECT DISTINCT channel FROM ${events} WHERE $__timeFilter(occurred_at) ORDER BY channel`),
      queryVariable('merchant', 'Merchant', `SELECT DISTINCT merchant_id FROM ${events} WHERE $__timeFilter(occurred_at) ORDER BY merchant_id`),
    ],
    panels: [
      {
        type: 'stat',
        title: 'Success rate',
        description: 'Succeeded attempts / attempts started in the range (analytics/DEFINITIONS.md).',
        w: 6,
        h: 5,
        unit: 'percentunit',
        decimals: 2,
        sql: [`SELECT countIf(outcome = 'succeeded') / greatest(count(), 1) AS success_rate FROM (${attempts})`],
        columns: ['success_rate'],
      },
      {
        type: 'stat',
        title: 'Attempts',
        description: 'Payment attempts started in the range.',
        w: 6,
        h: 5,
        unit: 'short',
        sql: [`SELECT count() AS attempts FROM (${attempts})`],
        columns: ['attempts'],
      },
      {
        type: 'stat',
        title: 'Attempts stuck in processing',
        description:
          `Attempts whose latest status is still processing more than ${STUCK_AFTER_SECONDS / 60} minutes after they started (before the ` +
          `end of the range).`,
        w: 6,
        h: 5,
        unit: 'short',
        sql: [`SELECT countIf(outcome = 'processing' AND started < $__toTime - ${STUCK_AFTER_SECONDS}) AS stuck FROM (${attempts})`],
        columns: ['stuck'],
        options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'background', graphMode: 'none', textMode: 'auto' },
      },
      {
        type: 'stat',
        title: 'Refunds',
        description: 'Refund events in the range that succeeded, and their amount in major units (all currencies added).',
        w: 6,
        h: 5,
        unit: 'short',
        sql: [
          `SELECT uniqExact(event_id) AS refunds, sum(amount_minor) / 100 AS refunded_amount FROM ${events}
WHERE type = 'refund' AND status = 'succeeded' AND $__timeFilter(occurred_at) AND ${eventFilters}`,
        ],
        columns: ['refunds', 'refunded_amount'],
      },
      {
        type: 'timeseries',
        title: 'Events per second',
        description: 'Payment and refund events stored, by the time they occurred.',
        w: 12,
        h: 8,
        unit: 'reqps',
        sql: [
          `SELECT ${timeBucket('occurred_at')}, toString(type) AS event_type, count() / $__interval_s AS events_per_s
FROM ${events}
WHERE $__timeFilter(occurred_at) AND ${eventFilters}
GROUP BY time, event_type
ORDER BY time, event_type`,
        ],
      },
      {
        type: 'timeseries',
        title: 'Attempts by outcome',
        description: 'Payment attempts by the bucket of their first event and their latest status.',
        w: 12,
        h: 8,
        unit: 'short',
        custom: { stacking: { mode: 'normal', group: 'A' }, drawStyle: 'bars', fillOpacity: 80 },
        sql: [
          `SELECT ${timeBucket('started')}, outcome, count() AS attempts
FROM (${attempts})
GROUP BY time, outcome
ORDER BY time, outcome`,
        ],
      },
      {
        type: 'timeseries',
        title: 'Success rate by channel',
        description: 'Succeeded / attempts, per channel, for attempts started in each bucket.',
        w: 12,
        h: 8,
        unit: 'percentunit',
        min: 0,
        max: 1,
        sql: [
          `SELECT ${timeBucket('started')}, attempt_channel AS channel, countIf(outcome = 'succeeded') / count() AS success_rate
FROM (${attempts})
GROUP BY time, channel
ORDER BY time, channel`,
        ],
      },
      {
        type: 'table',
        title: 'Outcome rates by channel',
        description: 'Attempts started in the range, per channel, and the share of each outcome.',
        w: 12,
        h: 8,
        sql: [
          `SELECT
  attempt_channel AS channel,
  count() AS attempts,
  round(countIf(outcome = 'succeeded') / count(), 4) AS success_rate,
  round(countIf(outcome = 'failed') / count(), 4) AS failure_rate,
  round(countIf(outcome = 'timeout') / count(), 4) AS timeout_rate,
  countIf(outcome = 'processing') AS processing
FROM (${attempts})
GROUP BY channel
ORDER BY attempts DESC`,
        ],
        columns: ['channel', 'attempts', 'success_rate', 'failure_rate', 'timeout_rate', 'processing'],
      },
      {
        type: 'table',
        title: 'Top failure codes',
        description: 'Failure codes of attempts that ended failed or timed out, most frequent first.',
        w: 12,
        h: 8,
        sql: [
          `SELECT if(code = '', '(none)', code) AS failure_code, outcome, count() AS attempts, any(attempt_channel) AS example_channel
FROM (${attempts})
WHERE outcome IN ('failed', 'timeout')
GROUP BY failure_code, outcome
ORDER BY attempts DESC
LIMIT 15`,
        ],
        columns: ['failure_code', 'outcome', 'attempts', 'example_channel'],
      },
      {
        type: 'timeseries',
        title: 'Callback delay',
        description: "Time from an attempt's first processing event to its first final status (p50, p95, p99), by the bucket the attempt started in.",
        w: 12,
        h: 8,
        unit: 's',
        sql: [
          `SELECT ${timeBucket('started')},
  quantile(0.5)(delay_s) AS p50, quantile(0.95)(delay_s) AS p95, quantile(0.99)(delay_s) AS p99
FROM (
  SELECT
    min(occurred_at) AS started,
    (toInt64(minIf(toUInt64(occurred_at) * 1000 + occurred_ms, status != 'processing')) - toInt64(minIf(toUInt64(occurred_at) * 1000 + occurred_ms,
      status = 'processing'))) / 1000 AS delay_s
  FROM ${events}
  WHERE type = 'payment' AND $__timeFilter(occurred_at) AND ${eventFilters}
  GROUP BY order_id, attempt
  HAVING countIf(status = 'processing') > 0 AND countIf(status != 'processing') > 0
)
WHERE delay_s >= 0
GROUP BY time
ORDER BY time`,
        ],
      },
      {
        type: 'timeseries',
        title: 'Refunds over time',
        description: 'Refund events per bucket by status.',
        w: 12,
        h: 8,
        unit: 'short',
        custom: { drawStyle: 'bars', fillOpacity: 80, stacking: { mode: 'normal', group: 'A' } },
        sql: [
          `SELECT ${timeBucket('occurred_at')}, toString(status) AS refund_status, uniqExact(event_id) AS refunds
FROM ${events}
WHERE type = 'refund' AND $__timeFilter(occurred_at) AND ${eventFilters}
GROUP BY time, refund_status
ORDER BY time, refund_status`,
        ],
      },
      {
        type: 'table',
        title: 'Stuck attempts (reconcile job)',
        description:
          'Attempts the reconcile job found still processing 15 minutes after their first event, in its latest run that ended in the range, oldest ' +
          'first: the orders support should chase with the channel.',
        w: 12,
        h: 8,
        sql: [
          `SELECT order_id, attempt, channel, merchant_id, first_at, age_seconds
FROM ${reconcileAttempts}
WHERE kind = 'stuck_processing' AND ${latestReconcile} AND ${eventFilters}
ORDER BY age_seconds DESC, order_id, attempt
LIMIT 100`,
        ],
        columns: ['order_id', 'attempt', 'channel', 'merchant_id', 'first_at', 'age_seconds'],
        unitsByColumn: { age_seconds: 's' },
      },
      {
        type: 'table',
        title: 'Callback delay by channel (reconcile job)',
        description:
          "Time from an attempt's first processing event to its first final status, p50/p95/p99 per channel and over all channels, from the reconcile " +
          "job's latest run that ended in the range (attempts of its 24-hour look-back).",
        w: 12,
        h: 8,
        sql: [
          `SELECT if(channel = '', '(all channels)', channel) AS delay_channel, attempts, p50_ms / 1000 AS p50_s, p95_ms / 1000 AS p95_s,
            p99_ms / 1000 AS p99_s, max_ms / 1000 AS max_s
FROM ${callbackDelays}
WHERE ${latestReconcile} AND (channel = '' OR ${variableFilter('channel', 'channel')})
ORDER BY channel = '' DESC, attempts DESC`,
        ],
        columns: ['delay_channel', 'attempts', 'p50_s', 'p95_s', 'p99_s', 'max_s'],
        unitsByColumn: { p50_s: 's', p95_s: 's', p99_s: 's', max_s: 's' },
      },
    ],
  };
}

export const paymentOutcomes = (database: string): Dashboard => dashboard(paymentOutcomesSpec(database));
