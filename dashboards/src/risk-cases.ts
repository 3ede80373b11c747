import { precisionColumns } from '../../cases/precision.ts';
import { ident } from '../../storage/sql.ts';
import { dashboard, queryVariable, type Dashboard, type DashboardSpec, type StatOptions } from '../model.ts';
import { eventFilters, timeBucket } from './sql.ts';

/**
 * The risk team's and support's view of the cases detection opens (cases/): what is
 * open, which rules fire on what, and how fast support acknowledges. Read from case_versions, the
 * append-only history of every case, so each panel can show the state as it was at the end of
 * the range (a version is a hit, an acknowledgement or a resolution, stamped with updated_at).
 */
export function riskCasesSpec(database: string): DashboardSpec {
  const versions = ident(database, 'case_versions').text;
  const events = ident(database, 'payment_events').text;
  const all = `('__all' IN (\${channel:singlequote}) AND '__all' IN (\${merchant:singlequote}))`;
  /**
   * Cases carry no channel or merchant, their entity (IP, device, user, order) does: with a
   * channel or merchant picked, keep the cases whose entity had payment events there in the range.
   */
  const caseFilter = `(${all} OR concat(entity_type, ':', entity_id) IN (
    SELECT arrayJoin([concat('ip:', ifNull(ip, '')), concat('device:', ifNull(device_id, '')), concat('user:', ifNull(user_id, '')), concat('order:',
      order_id)])
    FROM ${events}
    WHERE NOT ${all} AND $__timeFilter(occurred_at) AND ${eventFilters}))`;
  /**
   * One row per case as it stood at the end of the range: its status then, its first
   * acknowledgement (the first version whose status is no longer open: acknowledged, or resolved
   * straight away) and the latest evidence. Rule, severity and entity never change within a case.
   * Names differ from case_versions' columns (18.16 resolves an alias across the whole query).
   */
  const state = `SELECT
    case_id, rule_id, severity, entity_type, entity_id,
    min(opened_at) AS first_opened,
    max(updated_at) AS last_update,
    argMax(status, version) AS case_status,
    argMax(resolution, version) AS case_resolution,
    max(hit_count) AS hits,
    argMax(evidence, version) AS last_evidence,
    argMax(recommended_action, version) AS next_step,
    countIf(status != 'open') > 0 AS is_acked,
    minIf(toUInt32(updated_at), status != 'open') AS acked_s
  FROM ${versions}
  WHERE updated_at <= $__toTime
  GROUP BY case_id, rule_id, severity, entity_type, entity_id`;
  const cases = `(${state}) WHERE ${caseFilter}`;
  const ackSeconds = 'toInt64(acked_s) - toInt64(toUInt32(first_opened))';
  const statOptions: StatOptions = {
    reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
    colorMode: 'value',
    graphMode: 'none',
    textMode: 'value_and_name',
  };
  return {
    uid: 'paysentinel-risk-cases',
    title: 'Risk & cases',
    description:
      'Cases opened by live detection (case_versions): opened per rule and severity, the open cases with evidence and next step, the most flagged IPs ' +
      'and devices, rule hits and time to acknowledge. Channel and merchant keep the cases whose entity paid there ' +
      'in the range.',
    tags: ['risk', 'support'],
    from: 'now-24h',
    refresh: '1m',
    variables: [
      queryVariable('channel', 'Channel', `SELECT DISTINCT channel FROM ${events} WHERE $__timeFilter(occurred_at) ORDER BY channel`),
      queryVariable('merchant', 'Merchant', `SELECT DISTINCT merchant_id FROM ${events} WHERE $__timeFilter(occurred_at) ORDER BY merchant_id`),
    ],
    panels: [
      {
        type: 'stat',
        title: 'Open and acknowledged',
        description: 'Cases open (nobody has looked yet) and acknowledged (being worked) at the end of the range.',
        w: 6,
        h: 5,
        unit: 'short',
        sql: [`SELECT countIf(case_status = 'open') AS open_cases, countIf(case_status = 'acknowledged') AS acknowledged_cases FROM ${cases}`],
        columns: ['open_cases', 'acknowledged_cases'],
        options: { ...statOptions, colorMode: 'background' },
      },
      {
        type: 'stat',
        title: 'Cases opened',
        description: 'Cases opened in the range, and how many of them are critical or high.',
        w: 6,
        h: 5,
        unit: 'short',
        sql: [`SELECT count() AS opened, countIf(severity IN ('critical', 'high')) AS critical_or_high FROM ${cases} AND $__timeFilter(first_opened)`],
        columns: ['opened', 'critical_or_high'],
        options: statOptions,
      },
      {
        type: 'stat',
        title: 'Median time to acknowledge',
        description: 'Cases opened in the range and acknowledged (or resolved) by its end: median time from opening to the first acknowledgement.',
        w: 6,
        h: 5,
        unit: 's',
        sql: [`SELECT quantile(0.5)(${ackSeconds}) AS median_ack_s, count() AS acknowledged FROM ${cases} AND is_acked AND $__timeFilter(first_opened)`],
        columns: ['median_ack_s', 'acknowledged'],
        unitsByColumn: { acknowledged: 'short' },
        options: statOptions,
      },
      {
        type: 'stat',
        title: 'Oldest unacknowledged case',
        description: 'How long the oldest case still open at the end of the range has waited for support.',
        w: 6,
        h: 5,
        unit: 's',
        sql: [
          `SELECT max(toInt64(toUInt32($__toTime)) - toInt64(toUInt32(first_opened))) AS oldest_open_s, count() AS unacknowledged FROM ${cases} AND ` +
            `case_status = 'open'`,
        ],
        columns: ['oldest_open_s', 'unacknowledged'],
        unitsByColumn: { unacknowledged: 'short' },
        options: { ...statOptions, colorMode: 'background' },
      },
      {
        type: 'timeseries',
        title: 'Cases opened per rule and severity',
        description: 'Cases opened in each bucket, one series per rule and severity.',
        w: 12,
        h: 8,
        unit: 'short',
        custom: { drawStyle: 'bars', fillOpacity: 80, stacking: { mode: 'normal', group: 'A' } },
        sql: [
          `SELECT ${timeBucket('first_opened')}, concat(rule_id, ' (', severity, ')') AS series, count() AS cases_opened
FROM ${cases} AND $__timeFilter(first_opened)
GROUP BY time, series
ORDER BY time, series`,
        ],
      },
      {
        type: 'table',
        title: 'Rule hits',
        description: 'Per rule, the hits detection recorded in the range (a case opened, or new evidence on an open case) and the cases they touched.',
        w: 12,
        h: 8,
        sql: [
          `SELECT rule_id, any(severity) AS rule_severity, count() AS hits, uniqExact(case_id) AS cases_hit, max(updated_at) AS last_hit
FROM ${versions}
WHERE changed_by = 'detector' AND $__timeFilter(updated_at) AND ${caseFilter}
GROUP BY rule_id
ORDER BY hits DESC, rule_id`,
        ],
        columns: ['rule_id', 'rule_severity', 'hits', 'cases_hit', 'last_hit'],
      },
      {
        type: 'table',
        title: 'Open cases',
        description:
          'Cases open or acknowledged at the end of the range, newest first: the entity, the rule, a summary of the evidence and what support should do next.',
        w: 24,
        h: 10,
        sql: [
          `SELECT
  case_id,
  first_opened AS opened,
  last_update AS updated,
  severity,
  rule_id,
  concat(entity_type, ' ', entity_id) AS entity,
  case_status AS state,
  hits,
  substring(replaceRegexpAll(replaceRegexpAll(last_evidence, '[{}"]', ''), '([:,])', '\\\\1 '), 1, 300) AS evidence_summary,
  next_step
FROM ${cases} AND case_status IN ('open', 'acknowledged')
ORDER BY first_opened DESC, case_id
LIMIT 200`,
        ],
        columns: ['case_id', 'opened', 'updated', 'severity', 'rule_id', 'entity', 'state', 'hits', 'evidence_summary', 'next_step'],
      },
      {
        type: 'table',
        title: 'Top flagged IPs and devices',
        description: 'IPs and devices with cases active in the range (opened or updated), most hits first, with the rules that flagged them.',
        w: 12,
        h: 8,
        sql: [
          `SELECT concat(entity_type, ' ', entity_id) AS entity, count() AS flagged_cases, sum(hits) AS total_hits,
  arrayStringConcat(groupUniqArray(rule_id), ', ') AS rules, max(last_update) AS last_flagged
FROM ${cases} AND entity_type IN ('ip', 'device') AND last_update >= $__fromTime
GROUP BY entity
ORDER BY total_hits DESC, flagged_cases DESC, entity
LIMIT 20`,
        ],
        columns: ['entity', 'flagged_cases', 'total_hits', 'rules', 'last_flagged'],
      },
      {
        type: 'table',
        title: "Rule precision from support's resolutions",
        description:
          'Per rule, the cases opened in the range and how support resolved them by its end: real (confirmed_fraud, customer_contacted, refunded), false ' +
          "positives, no action needed. Precision = real / (real + false positives); empty before any verdict. The console's rules page shows " +
          'the same over 30 days.',
        w: 12,
        h: 8,
        sql: [
          `SELECT rule_id, count() AS opened_cases, countIf(case_status = 'resolved') AS resolved_cases, ${precisionColumns('case_resolution')}
FROM ${cases} AND $__timeFilter(first_opened)
GROUP BY rule_id
ORDER BY rule_id`,
        ],
        columns: ['rule_id', 'opened_cases', 'resolved_cases', 'real_cases', 'false_positives', 'no_action_cases', 'rule_precision'],
        unitsByColumn: { rule_precision: 'percentunit' },
      },
      {
        type: 'table',
        title: 'Time to acknowledge by severity',
        description:
          'Cases opened in the range: how many support acknowledged by its end, and how long that took (p50, p90, max); still waiting are those not ' +
          'acknowledged yet.',
        w: 12,
        h: 8,
        sql: [
          `SELECT severity AS case_severity, count() AS opened_cases, countIf(is_acked) AS acknowledged_cases,
  quantileIf(0.5)(${ackSeconds}, is_acked) AS p50_ack_s,
  quantileIf(0.9)(${ackSeconds}, is_acked) AS p90_ack_s,
  if(countIf(is_acked) = 0, NULL, maxIf(${ackSeconds}, is_acked)) AS max_ack_s,
  countIf(NOT is_acked) AS still_waiting
FROM ${cases} AND $__timeFilter(first_opened)
GROUP BY case_severity
ORDER BY indexOf(['critical', 'high', 'medium', 'low'], case_severity), case_severity`,
        ],
        columns: ['case_severity', 'opened_cases', 'acknowledged_cases', 'p50_ack_s', 'p90_ack_s', 'max_ack_s', 'still_waiting'],
        unitsByColumn: { p50_ack_s: 's', p90_ack_s: 's', max_ack_s: 's' },
      },
    ],
  };
}

export const riskCases = (database: string): Dashboard => dashboard(riskCasesSpec(database));
