import type { Case, CaseStore } from '../cases/index.ts';
import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { eventsByEntity, eventsByTransaction } from '../storage/copies.ts';
import { sql } from '../storage/sql.ts';

/** At most this many reports of one order are read: far above any real order, and bounds a page. */
export const MAX_ORDER_REPORTS = 2_000;

/** One stored event of an order: one status report about one attempt or refund. */
export interface OrderReport {
  event_id: string;
  occurred_at: string;
  occurred_ms: number;
  ingested_at: string;
  type: 'payment' | 'refund';
  status: string;
  order_id: string;
  attempt: number | null;
  transaction_id: string | null;
  amount_minor: string;
  currency: string;
  channel: string;
  merchant_id: string;
  user_id: string | null;
  device_id: string | null;
  ip: string | null;
  failure_code: string | null;
  source: string | null;
}

export interface OrderAttempt {
  attempt: number;
  /** Its latest status by occurred_at: the attempt's outcome (README, the contract). */
  outcome: string;
  /** Milliseconds from the first `processing` report to the first final one (analytics/DEFINITIONS.md); null without both. */
  callback_delay_ms: number | null;
  reports: OrderReport[];
}

/** The whole story of one order: what support opens when a customer calls. */
export interface OrderStory {
  order_id: string;
  attempts: OrderAttempt[];
  refunds: OrderReport[];
  cases: Case[];
}

/**
 * The reports of the order `id` names, by order id or by any of its transaction ids, in time
 * order. Both look-ups go by a key: the order's events from the copy ordered by entity
 * (migration 014), the orders of a transaction id from the copy ordered by transaction id
 * (migration 019), so the cost follows the order's rows, not the size of payment_events.
 */
export function orderReportsQuery(database: string, id: string): string {
  return sql`SELECT event_id, occurred_at, occurred_ms, ingested_at, type, status, order_id, attempt, transaction_id, amount_minor, currency, channel,
      merchant_id, user_id, device_id, ip, failure_code, source
    FROM ${eventsByEntity(database)}
    WHERE entity_type = 'order'
      AND entity_key IN (SELECT ${id} AS oid UNION ALL SELECT order_id AS oid FROM ${eventsByTransaction(database)} WHERE transaction_id = ${id})
    ORDER BY occurred_at, occurred_ms, event_id
    LIMIT 1 BY event_id
    LIMIT ${MAX_ORDER_REPORTS}`;
}

const at = (r: OrderReport): number => Date.parse(r.occurred_at.replace(' ', 'T') + 'Z') + Number(r.occurred_ms);
const FINAL = new Set(['succeeded', 'failed', 'timeout']);

/** Groups an order's reports (already in time order) into attempts and refunds. Pure. */
export function buildStory(orderId: string, reports: readonly OrderReport[], cases: Case[]): OrderStory {
  const attempts = new Map<number, OrderReport[]>();
  const refunds: OrderReport[] = [];
  for (const r of reports) {
    if (r.type === 'refund') refunds.push(r);
    else attempts.set(Number(r.attempt ?? 0), [...(attempts.get(Number(r.attempt ?? 0)) ?? []), r]);
  }
  return {
    order_id: orderId,
    attempts: [...attempts.entries()]
      .sort(([a], [b]) => a - b)
      .map(([attempt, rs]) => {
        const first = rs.find((r) => r.status === 'processing');
        const final = rs.find((r) => FINAL.has(r.status));
        const latest = rs.reduce((a, b) => (at(b) >= at(a) ? b : a));
        return { attempt, outcome: latest.status, callback_delay_ms: first && final ? at(final) - at(first) : null, reports: rs };
      }),
    refunds,
    cases,
  };
}

/** The story of the order `id` names (an order id or a transaction id), or null when nothing is stored for it. */
export async function readOrderStory(
  deps: { clickhouse: ClickHouseClient; database: string; cases: Pick<CaseStore, 'ofEntities'> },
  id: string,
): Promise<OrderStory | null> {
  const reports = (await queryRows<OrderReport>(deps.clickhouse, orderReportsQuery(deps.database, id), 'order story')).map((r) => ({
    ...r,
    occurred_ms: Number(r.occurred_ms),
    attempt: r.attempt === null ? null : Number(r.attempt),
  }));
  if (reports.length === 0) return null;
  const orderId = reports.some((r) => r.order_id === id) ? id : reports[0]!.order_id;
  const mine = reports.filter((r) => r.order_id === orderId);
  return buildStory(orderId, mine, await deps.cases.ofEntities('order', [orderId]));
}
