import { ident } from '../../storage/sql.ts';
import { queryVariable, variableFilter, type DashboardSpec } from '../model.ts';

/**
 * Three-way reconciliation from the statements tables (README, "Statements"): every statement
 * period that overlaps the picked range, as its latest run left it (a re-run replaces a period's
 * results, the same rule as `paysentinel statements breaks`).
 */
export function reconciliationSpec(database: string): DashboardSpec {
  const runs = ident(database, 'statement_runs').text;
  const breaks = ident(database, 'statement_breaks').text;
  const overlap = 'period_to > $__fromTime AND period_from < $__toTime';
  const channel = variableFilter('channel', 'channel');
  const latest =
    `(channel, period_from, period_to, version) IN (SELECT channel, period_from, period_to, max(version) FROM ${runs} WHERE ${overlap} ` +
    `GROUP BY channel, period_from, period_to)`;
  const latestRuns = `SELECT * FROM ${runs} FINAL WHERE ${overlap} AND ${channel} AND ${latest}`;
  const latestBreaks = `SELECT * FROM ${breaks} FINAL WHERE ${overlap} AND ${channel} AND ${latest}`;
  return {
    uid: 'paysentinel-reconciliation',
    title: 'Reconciliation',
    description:
      "The payment platforms' statements against what we recorded: per channel and statement period, how many lines matched, and every break (charged " +
      'but not recorded, recorded but not settled, amount or currency mismatch, duplicate settlement, refund ' +
      "mismatch, ambiguous) with both sides' values. Periods overlapping the range, each as its latest " +
      'reconciliation run left it.',
    tags: ['payments', 'support'],
    from: 'now-7d',
    refresh: '5m',
    variables: [queryVariable('channel', 'Channel', `SELECT DISTINCT channel FROM ${runs} WHERE ${overlap} ORDER BY channel`)],
    panels: [
      {
        type: 'stat',
        title: 'Match rate',
        description: 'Statement lines matched to our records / statement lines, over the periods in the range.',
        w: 6,
        h: 5,
        unit: 'percentunit',
        decimals: 2,
        sql: [`SELECT sum(matched) / greatest(sum(lines), 1) AS match_rate FROM (${latestRuns})`],
        columns: ['match_rate'],
      },
      {
        type: 'stat',
        title: 'Breaks',
        description: 'Disagreements found in the periods of the range.',
        w: 6,
        h: 5,
        sql: [`SELECT count() AS breaks FROM (${latestBreaks})`],
        columns: ['breaks'],
      },
      {
        type: 'stat',
        title: 'Charged but not recorded',
        description:
          'Charges the platform settled while our latest status said failed, timeout or processing, or for attempts we have no record of: customers ' +
          'charged while told it failed.',
        w: 6,
        h: 5,
        sql: [`SELECT countIf(kind = 'charged_not_recorded') AS charged_not_recorded FROM (${latestBreaks})`],
        columns: ['charged_not_recorded'],
      },
      {
        type: 'stat',
        title: 'Statement lines',
        description: 'Settled statement lines reconciled in the periods of the range.',
        w: 6,
        h: 5,
        sql: [`SELECT sum(lines) AS statement_lines FROM (${latestRuns})`],
        columns: ['statement_lines'],
      },
      {
        type: 'timeseries',
        title: 'Match rate by channel and period',
        description: 'Matched / statement lines per channel, at the start of each statement period.',
        w: 12,
        h: 8,
        unit: 'percentunit',
        min: 0,
        max: 1,
        sql: [
          `SELECT period_from AS time, channel, sum(matched) / greatest(sum(lines), 1) AS match_rate
FROM (${latestRuns})
GROUP BY time, channel
ORDER BY time, channel`,
        ],
      },
      {
        type: 'timeseries',
        title: 'Breaks by kind',
        description: 'Breaks per kind, at the start of each statement period.',
        w: 12,
        h: 8,
        min: 0,
        sql: [
          `SELECT period_from AS time, kind, count() AS breaks
FROM (${latestBreaks})
GROUP BY time, kind
ORDER BY time, kind`,
        ],
      },
      {
        type: 'table',
        title: 'Amount at stake',
        description:
          "Per channel, kind and currency: breaks and the amount they put at stake, in minor units (fen, cents): the statement's amount, ours where " +
          'the statement has none, the difference for a mismatch.',
        w: 24,
        h: 7,
        sql: [
          `SELECT channel, kind, currency, count() AS breaks, sum(amount_at_stake_minor) AS amount_at_stake_minor
FROM (${latestBreaks})
GROUP BY channel, kind, currency
ORDER BY amount_at_stake_minor DESC, channel, kind, currency`,
        ],
        columns: ['channel', 'kind', 'currency', 'breaks', 'amount_at_stake_minor'],
      },
      {
        type: 'table',
        title: 'Breaks to work through',
        description:
          "Every break of the periods in the range, both sides' values (minor units), charged-but-not-recorded first: what support works through. Ids " +
          'as the platform and we know them.',
        w: 24,
        h: 12,
        sql: [
          `SELECT period_from, channel, kind, order_id, transaction_id,
  if(has_statement = 1, toString(statement_amount_minor), '-') AS statement_amount,
  statement_currency,
  if(has_ours = 1, toString(our_amount_minor), '-') AS our_amount,
  our_currency, our_status, detail
FROM (${latestBreaks})
ORDER BY kind != 'charged_not_recorded', period_from, channel, kind, order_id
LIMIT 500`,
        ],
        columns: [
          'period_from',
          'channel',
          'kind',
          'order_id',
          'transaction_id',
          'statement_amount',
          'statement_currency',
          'our_amount',
          'our_currency',
          'our_status',
          'detail',
        ],
      },
    ],
  };
}
