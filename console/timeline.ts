import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, sql } from '../storage/sql.ts';
import type { OrderReport } from './orders.ts';

/** The payment_events column each case entity type is kept by. */
export const ENTITY_COLUMNS: Record<string, string> = {
  ip: 'ip',
  device: 'device_id',
  user: 'user_id',
  order: 'order_id',
  merchant: 'merchant_id',
  channel: 'channel',
};

/** How far back and how many of an entity's events a case page shows. */
export const TIMELINE_HOURS = 24;
export const TIMELINE_EVENTS = 100;

/**
 * An entity's most recent payment events of the last `TIMELINE_HOURS` before `nowMs`, newest
 * first, or null for an entity type without a column. The time bound lets ClickHouse read only
 * that day of the table (it is ordered by occurred_at).
 */
export function entityTimelineQuery(database: string, entityType: string, entityId: string, nowMs: number): string | null {
  const column = ENTITY_COLUMNS[entityType];
  if (!column) return null;
  const events = ident(database, 'payment_events');
  const from = new Date(nowMs - TIMELINE_HOURS * 3_600_000);
  return sql`SELECT event_id, occurred_at, occurred_ms, ingested_at, type, status, order_id, attempt, transaction_id, amount_minor, currency, channel, merchant_id, user_id, device_id, ip, failure_code, source
    FROM ${events}
    WHERE occurred_at >= ${from} AND ${ident(column)} = ${entityId}
    ORDER BY occurred_at DESC, occurred_ms DESC, event_id
    LIMIT 1 BY event_id
    LIMIT ${TIMELINE_EVENTS}`;
}

export async function readEntityTimeline(
  clickhouse: ClickHouseClient,
  database: string,
  entityType: string,
  entityId: string,
  nowMs: number,
): Promise<OrderReport[]> {
  const query = entityTimelineQuery(database, entityType, entityId, nowMs);
  return query ? queryRows<OrderReport>(clickhouse, query, 'entity timeline') : [];
}
