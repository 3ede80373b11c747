import { comparisons } from '../rules/conditions.ts';
import { parseDuration } from '../rules/duration.ts';
import type { LoadedRule } from '../rules/load.ts';
import type { Feature } from '../rules/schema.ts';
import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { eventsByEntity } from '../storage/copies.ts';
import { ident, joinSql, sql, sqlFragment } from '../storage/sql.ts';
import { LATEST_KEY } from '../storage/event-order.ts';
import { writtenBy } from './query-parts.ts';

/**
 * Orders evaluated because time passed, not because an event came: attempts that stayed in
 * processing past an age threshold of the rules (the stuck scan), and the orders the analytics
 * reconcile job found (the reconcile feed).
 */

/** How often the stuck scan runs. */
const STUCK_SCAN_EVERY_MS = 10_000;

/**
 * Orders with an attempt whose latest status is `processing` and that began before the end of
 * one of `slices` ([from, to) in event-time seconds), among the orders with a `processing`
 * payment event that occurred inside a slice: the attempts that crossed an age threshold since
 * the last scan (the first scan of a threshold takes the whole window). Each order's own events
 * since `fromSec` are read from the entity-ordered copy, so the cost follows the slices, not
 * the traffic of the window. These are candidates: the rules decide on the exact features.
 */
export function stuckOrdersQuery(database: string, fromSec: number, slices: readonly (readonly [number, number])[], untilSec?: number): string {
  const inSlice = slices.map(([a, b]) => sqlFragment`(occurred_at >= toDateTime(${Math.max(fromSec, a)}, 'UTC') AND occurred_at < toDateTime(${b}, 'UTC'))`);
  const anySlice = inSlice.length ? joinSql(inSlice, ' OR ') : sqlFragment`0`;
  const crossed = sqlFragment`SELECT order_id FROM ${ident(database, 'payment_events')}
    WHERE (${anySlice}) AND type = 'payment' AND status = 'processing'${writtenBy(untilSec)}`;
  const latestEnd = Math.max(fromSec, ...slices.map(([, b]) => b));
  return sql`SELECT oid FROM (
  SELECT entity_key AS oid, attempt, argMax(status, ${LATEST_KEY}) AS latest_status, min(occurred_at) AS began
  FROM ${eventsByEntity(database)}
  WHERE entity_type = 'order' AND entity_key IN (${crossed}) AND type = 'payment' AND occurred_at >= toDateTime(${fromSec}, 'UTC')${writtenBy(untilSec)}
  GROUP BY oid, attempt
) WHERE latest_status = 'processing' AND began < toDateTime(${latestEnd}, 'UTC')
GROUP BY oid`;
}

/**
 * The ages (ms) at which an `age` feature can first make one of `rules` hold: every `olderThan`
 * duration and every numeric lower limit (greaterThan, greaterThanInclusive) on an age fact.
 * The stuck scan looks, per threshold, at the attempts that crossed it since its last scan.
 */
export function ageThresholds(rules: readonly Pick<LoadedRule, 'conditions'>[], features: readonly Feature[]): number[] {
  const ages = new Set(features.filter((f) => f.aggregation === 'age').map((f) => f.id));
  const out = new Set<number>();
  for (const n of rules.flatMap((r) => comparisons(r.conditions))) {
    if (!ages.has(n.fact)) continue;
    if (n.operator === 'olderThan' && typeof n.value === 'string') {
      const ms = parseDuration(n.value);
      if (ms !== null) out.add(ms);
    } else if ((n.operator === 'greaterThan' || n.operator === 'greaterThanInclusive') && typeof n.value === 'number' && Number.isFinite(n.value)) {
      out.add(Math.max(0, n.value));
    }
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * Orders of the latest reconcile run (analytics `reconcile`: attempts stuck in processing, or
 * whose status changed after being final) with that run's version; `untilMs` limits runs to
 * those computed by then (a backtest). The detector re-evaluates them once per new run.
 */
export function reconciledOrdersQuery(database: string, untilMs?: number): string {
  const table = ident(database, 'reconcile_attempts');
  const until = untilMs === undefined ? sqlFragment`` : sqlFragment` WHERE version <= ${untilMs * 1000}`;
  return sql`SELECT version AS v, order_id FROM ${table} WHERE version = (SELECT max(version) FROM ${table}${until}) GROUP BY v, order_id`;
}

/** The orders one tick rechecks; `commit()` once the tick's cases are stored and published. */
export interface Rechecks {
  orders: string[];
  commit(): void;
}

/**
 * The stuck scan's progress (per age threshold, the event time up to which attempts were
 * checked for crossing it) and the reconcile run whose orders were last evaluated.
 */
export function createOrderRechecks(deps: { clickhouse: ClickHouseClient; database: string }) {
  let lastScan = 0;
  /**
   * Per age threshold of the rules (ms), the event time (s) up to which processing attempts were
   * checked for crossing it; a threshold not in it (first scan of a leadership, or a rule edit)
   * is checked over the whole 24 hours.
   */
  let checkedTo = new Map<number, number>();
  /** Version of the last reconcile run whose orders were re-evaluated. */
  let reconciledVersion = '';

  return {
    /**
     * Whether this tick rechecks orders: every 10 s while there are order rules. The time is
     * taken now, so a failed tick does not make the next one scan again at once.
     */
    due(nowMs: number, orderRules: boolean): boolean {
      const due = orderRules && nowMs - lastScan >= STUCK_SCAN_EVERY_MS;
      if (due) lastScan = nowMs;
      return due;
    },

    /**
     * Per age threshold, the attempts whose processing event crossed it since the last scan (one
     * that arrives already past it is a new row, screened as such); and the orders of the latest
     * reconcile run, once per run, even if they received no event since.
     */
    async find(nowMs: number, thresholds: readonly number[], untilSec: number | undefined): Promise<Rechecks> {
      const found: string[] = [];
      const fromSec = Math.floor((nowMs - 86_400_000) / 1000);
      const cuts = new Map<number, number>();
      for (const t of thresholds) cuts.set(t, Math.floor((nowMs - t) / 1000));
      const slices = [...cuts].map(([t, cut]) => [checkedTo.get(t) ?? fromSec, cut] as const);
      const rows = slices.length
        ? await queryRows<{ oid: string }>(deps.clickhouse, stuckOrdersQuery(deps.database, fromSec, slices, untilSec), 'stuck orders')
        : [];
      for (const r of rows) found.push(r.oid);
      const reconciled = await queryRows<{ v: string; order_id: string }>(
        deps.clickhouse,
        reconciledOrdersQuery(deps.database, untilSec === undefined ? undefined : untilSec * 1000 + 999),
        'reconciled orders',
      );
      let version: string | null = null;
      if (reconciled.length && reconciled[0]!.v !== reconciledVersion) {
        for (const r of reconciled) found.push(r.order_id);
        version = reconciled[0]!.v;
      }
      return {
        orders: found,
        commit() {
          if (version !== null) reconciledVersion = version;
          if (cuts.size) checkedTo = cuts;
        },
      };
    },

    /** Leadership lost: the next leadership scans each threshold over the whole 24 hours. */
    reset(): void {
      checkedTo = new Map();
    },
  };
}
export type OrderRechecks = ReturnType<typeof createOrderRechecks>;
