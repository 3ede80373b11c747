import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { eventsByEntity } from '../storage/copies.ts';
import { ident, sql, sqlFragment, type SqlFragment } from '../storage/sql.ts';
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

/** Entity types kept in payment_events_by_entity (migration 014): read by their key there. */
const COPIED = new Set(['ip', 'device', 'user', 'order']);

/**
 * `FROM ... WHERE ...` for the events of one entity since `from`: the copy ordered by entity
 * for IPs, devices, users and orders (a look-up reads that entity's granules), payment_events
 * (ordered by time, so the bound reads only that day) for merchants and channels.
 */
export function entityEventsSource(database: string, entityType: string, entityId: string, from: Date): SqlFragment | null {
  const column = ENTITY_COLUMNS[entityType];
  if (!column) return null;
  if (COPIED.has(entityType))
    return sqlFragment`${eventsByEntity(database)} WHERE entity_type = ${entityType} AND entity_key = ${entityId} AND occurred_at >= ${from}`;
  return sqlFragment`${ident(database, 'payment_events')} WHERE occurred_at >= ${from} AND ${ident(column)} = ${entityId}`;
}

/**
 * An entity's most recent payment events of the last `TIMELINE_HOURS` before `nowMs`, newest
 * first, or null for an entity type without a column.
 */
export function entityTimelineQuery(database: string, entityType: string, entityId: string, nowMs: number): string | null {
  const source = entityEventsSource(database, entityType, entityId, new Date(nowMs - TIMELINE_HOURS * 3_600_000));
  if (!source) return null;
  return sql`SELECT event_id, occurred_at, occurred_ms, ingested_at, type, status, order_id, attempt, transaction_id, amount_minor, currency, channel,
      merchant_id, user_id, device_id, ip, failure_code, source
    FROM ${source}
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
