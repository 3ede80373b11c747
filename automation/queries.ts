import type { AutomationMode } from '../config/index.ts';
import type { CommandStatus } from '../contract/command.ts';
import { LATEST_KEY } from '../storage/event-order.ts';
import { ident, sql, sqlFragment, toDateTimeText } from '../storage/sql.ts';
import type { PlannedCommand } from './plan.ts';

/** Who the case history names for what automation does (taking a case, escalating it). */
export const AUTOMATION_ACTOR = 'automation';

/** A stored command, as the `commands` view returns it. */
export interface StoredCommand {
  command_id: string;
  type: string;
  mode: string;
  case_id: string;
  rule_id: string;
  order_id: string;
  attempt: number;
  transaction_id: string;
  amount_minor: number | string;
  currency: string;
  entity_type: string;
  entity_id: string;
  ttl_s: number;
  issued_at: string;
  expires_at: string;
  reason: string;
  status: CommandStatus;
  detail: string;
  escalated: number;
  changed_at: string;
}

/** One row of command_versions: a command as it stands after a change, by whom and when. */
export type CommandVersionRow = Omit<StoredCommand, 'amount_minor'> & { amount_minor: number; version: number; changed_by: string };

/** The row of a new version of a stored command at `nowMs` (an outcome, an escalation, a cancel). */
export function commandVersionRow(c: StoredCommand, nowMs: number, changedBy: string): CommandVersionRow {
  return { ...c, amount_minor: Number(c.amount_minor), version: nowMs, changed_by: changedBy, changed_at: toDateTimeText(nowMs) };
}

/**
 * The first row of a planned command: issued at `nowMs` (sent with AUTOMATION=on, or recorded
 * as "would have sent" in dry-run, which needs no escalation since support has the case).
 * Automation's passes and the requery job issue commands through this one builder.
 */
export function issuedCommandRow(p: PlannedCommand, mode: Exclude<AutomationMode, 'off'>, nowMs: number, expiresAtMs: number, changedBy: string) {
  const c: StoredCommand = {
    command_id: p.command_id,
    type: p.type,
    mode,
    case_id: p.case_id,
    rule_id: p.rule_id,
    order_id: p.order_id ?? '',
    attempt: p.attempt ?? 0,
    transaction_id: p.transaction_id ?? '',
    amount_minor: p.amount_minor ?? 0,
    currency: p.currency ?? '',
    entity_type: p.entity_type ?? '',
    entity_id: p.entity_id ?? '',
    ttl_s: p.ttl ?? 0,
    issued_at: toDateTimeText(nowMs),
    expires_at: toDateTimeText(expiresAtMs),
    reason: p.reason,
    status: 'issued',
    detail: mode === 'dry-run' ? 'dry-run: would have sent' : '',
    escalated: mode === 'dry-run' ? 1 : 0,
    changed_at: toDateTimeText(nowMs),
  };
  return commandVersionRow(c, nowMs, changedBy);
}

/** The statements automation sends (listed in test/sql-catalog.ts for the compatibility check). */
export function automationQueries(database: string) {
  const state = ident(database, 'case_state');
  const caseVersions = ident(database, 'case_versions');
  const commands = ident(database, 'commands');
  const events = ident(database, 'payment_events');
  const byEntity = ident(database, 'payment_events_by_entity');
  const changes = ident(database, 'payment_changes');
  const switches = ident(database, 'automation_switch');
  const waiting = ident(database, 'requery_waiting');
  return {
    /**
     * The ids of unresolved cases of automatic rules that automation has not looked at yet, oldest
     * first. Read from case_state (migration 023, narrow and current) and, for those cases only,
     * from case_versions by key: the `cases` view aggregates every version of every case ever
     * opened, and this runs on every pass (every 2 s).
     */
    newCaseIds: (ruleIds: readonly string[], limit: number) =>
      sql`SELECT case_id FROM (
  SELECT case_id, argMax(status, version) AS current_status, min(opened_at) AS opened FROM ${state} WHERE rule_id IN ${ruleIds} GROUP BY case_id
) WHERE current_status != 'resolved'
  AND case_id NOT IN (
    SELECT case_id FROM ${caseVersions} WHERE changed_by = ${AUTOMATION_ACTOR}
      AND case_id IN (SELECT case_id FROM ${state} WHERE rule_id IN ${ruleIds} AND status != 'resolved'))
ORDER BY opened, case_id LIMIT ${limit}`,
    /**
     * Every attempt of these orders with its latest status and its charge (transaction, amount,
     * first success), read by key from the entity-ordered copy: the cost follows the orders, not
     * the store's size.
     */
    attempts: (orderIds: readonly string[]) =>
      sql`SELECT order_id, attempt, argMax(status, ${LATEST_KEY}) AS latest_status,
  argMax(ifNull(transaction_id, ''), ${LATEST_KEY}) AS transaction_id, argMax(amount_minor, ${LATEST_KEY}) AS amount_minor,
  argMax(currency, ${LATEST_KEY}) AS currency,
  minIf(toUInt32(occurred_at), status = 'succeeded') AS first_succeeded, uniqExactIf(event_id, status = 'succeeded') AS succeeded_events
FROM ${byEntity} WHERE entity_type = 'order' AND entity_key IN ${orderIds} AND type = 'payment' AND attempt IS NOT NULL
GROUP BY order_id, attempt ORDER BY order_id, attempt`,
    /** Commands by id, as they stand. */
    byIds: (ids: readonly string[]) => sql`SELECT * FROM ${commands} WHERE command_id IN ${ids}`,
    /** The commands of some cases, oldest first. */
    ofCases: (caseIds: readonly string[]) => sql`SELECT * FROM ${commands} WHERE case_id IN ${caseIds} ORDER BY issued_at, command_id`,
    /** Refunds published (not refused) since `fromSec`, per currency: what the daily budget has spent. */
    refundedSince: (fromSec: number) =>
      sql`SELECT currency, sum(amount_minor) AS spent FROM ${commands}
WHERE type = 'refund' AND mode = 'on' AND status NOT IN ('rejected', 'cancelled') AND issued_at >= toDateTime(${fromSec}, 'UTC') GROUP BY currency`,
    /** Published commands still waiting for an outcome, or whose bad outcome support has not been given yet. */
    outstanding: (limit: number) =>
      sql`SELECT * FROM ${commands}
WHERE mode = 'on' AND (status = 'issued' OR (status IN ('rejected', 'failed', 'expired', 'done') AND escalated = 0)) ORDER BY issued_at LIMIT ${limit}`,
    /** Status-query answers and refund events of these orders since `fromSec` (by key): what answers requery_status and refund. */
    answers: (orderIds: readonly string[], fromSec: number) =>
      sql`SELECT DISTINCT event_id, type, status, order_id, attempt, ifNull(transaction_id, '') AS transaction_id, toUInt32(occurred_at) AS at
FROM ${byEntity} WHERE entity_type = 'order' AND entity_key IN ${orderIds} AND occurred_at >= toDateTime(${fromSec}, 'UTC')
  AND (type = 'refund' OR source = 'status_query')
ORDER BY at, event_id`,
    /**
     * Attempts whose latest status is processing and whose first report is at least `cutoffSec`
     * old (at or after `fromSec`), oldest first: what the requery job re-checks, grouped by
     * attempt from the events since `fromSec`.
     * - A scan of a few minutes (`wholeRange` false) groups only the orders with an attempt's
     *   event in [fromSec, cutoffSec] (an IN set of one minute's orders): the attempts begun
     *   since the cutoff cannot qualify, and grouping them would cost several times as much.
     * - The whole day (`wholeRange`: a first run, after a pause, hourly) groups every attempt of
     *   the day in one read: the IN set would hold every order of the day, in memory where nothing
     *   spills, and read the day twice; the grouping spills to disk on the jobs' client
     *   (JOBS_SPILL_BYTES). Both forms return the same attempts.
     */
    stillProcessing: (fromSec: number, cutoffSec: number, limit: number, wholeRange: boolean) => {
      const since = sqlFragment`type = 'payment' AND attempt IS NOT NULL AND occurred_at >= toDateTime(${fromSec}, 'UTC')`;
      const orders = wholeRange
        ? sqlFragment``
        : sqlFragment` AND order_id IN (SELECT order_id FROM ${events} WHERE ${since} AND occurred_at <= toDateTime(${cutoffSec}, 'UTC'))`;
      return sql`SELECT order_id, attempt, transaction_id, began FROM (
  SELECT order_id, attempt, argMax(status, ${LATEST_KEY}) AS latest_status, argMax(ifNull(transaction_id, ''), ${LATEST_KEY}) AS transaction_id,
    min(toUInt32(occurred_at)) AS began
  FROM ${events}
  WHERE ${since}${orders}
  GROUP BY order_id, attempt
) WHERE latest_status = 'processing' AND began <= ${cutoffSec} ORDER BY began, order_id, attempt LIMIT ${limit}`;
    },
    /**
     * The same for the attempts of some orders (read by key from the entity-ordered copy, so the
     * cost follows the orders, not the day): the ones asked about before, and the ones whose
     * processing report arrived late.
     */
    stillProcessingOf: (orderIds: readonly string[], fromSec: number, cutoffSec: number) =>
      sql`SELECT order_id, attempt, transaction_id, began FROM (
  SELECT order_id, attempt, argMax(status, ${LATEST_KEY}) AS latest_status, argMax(ifNull(transaction_id, ''), ${LATEST_KEY}) AS transaction_id,
    min(toUInt32(occurred_at)) AS began
  FROM ${byEntity}
  WHERE entity_type = 'order' AND entity_key IN ${orderIds} AND type = 'payment' AND attempt IS NOT NULL AND occurred_at >= toDateTime(${fromSec}, 'UTC')
  GROUP BY order_id, attempt
) WHERE latest_status = 'processing' AND began <= ${cutoffSec}`,
    /**
     * The oldest `limit` attempts the requery job left waiting whose first report is at or after
     * `fromSec`, each as its latest row says (read from a day earlier on, so an attempt whose first
     * report moved earlier is seen by its latest row; older partitions are not read), with
     * that row's version (`v`). Inner aliases differ from the column names: 18.16 resolves an alias
     * named like a column across the whole query.
     */
    waitingOldest: (fromSec: number, limit: number) =>
      sql`SELECT order_id, attempt, w_transaction_id AS transaction_id, w_began AS began, v FROM (
  SELECT order_id, attempt, argMax(waiting, version) AS w, argMax(transaction_id, version) AS w_transaction_id,
    argMax(toUInt32(began), version) AS w_began, max(version) AS v
  FROM ${waiting} WHERE began >= toDateTime(${fromSec - 86_400}, 'UTC') GROUP BY order_id, attempt
) WHERE w = 1 AND w_began >= ${fromSec} ORDER BY w_began, order_id, attempt LIMIT ${limit}`,
    /** Attempts asked about in the day before `fromSec` whose last ask is at least REQUERY_AFTER old (before `askedBeforeSec`). */
    askedBefore: (fromSec: number, askedBeforeSec: number) =>
      sql`SELECT DISTINCT order_id FROM (
  SELECT order_id, attempt, max(issued_at) AS last_ask FROM ${commands}
  WHERE type = 'requery_status' AND issued_at >= toDateTime(${fromSec}, 'UTC') GROUP BY order_id, attempt
) WHERE last_ask < toDateTime(${askedBeforeSec}, 'UTC')`,
    /**
     * Orders with an event that ClickHouse stored since `seenFromSec` (its own clock) but that
     * occurred in [fromSec, beforeSec): late reports the scan by time has already passed.
     */
    lateOrders: (seenFromSec: number, fromSec: number, beforeSec: number) =>
      sql`SELECT DISTINCT order_id FROM ${changes}
WHERE seen_at >= toDateTime(${seenFromSec}, 'UTC') AND occurred_at >= toDateTime(${fromSec}, 'UTC') AND occurred_at < toDateTime(${beforeSec}, 'UTC')`,
    /** ClickHouse's clock, by which payment_changes is stamped. */
    serverNow: () => sql`SELECT toUInt32(now()) AS now`,
    /** Attempts re-queried since `sinceSec` (sent or recorded): not asked again before REQUERY_AFTER. */
    requeriedSince: (sinceSec: number) =>
      sql`SELECT DISTINCT order_id, attempt FROM ${commands} WHERE type = 'requery_status' AND issued_at > toDateTime(${sinceSec}, 'UTC')`,
    /** The kill switch as it stands: its latest row (none: running). */
    switchState: () => sql`SELECT state, changed_by, note, version FROM ${switches} ORDER BY version DESC LIMIT 1`,
    /** Commands by type, mode and status, for `automation status`. */
    counts: () => sql`SELECT type, mode, status, count() AS n FROM ${commands} GROUP BY type, mode, status ORDER BY type, mode, status`,
  };
}
export type AutomationQueries = ReturnType<typeof automationQueries>;
