import { ident, sqlFragment, type SqlFragment } from './sql.ts';

/** payment_events once per IP, device, user and order each event belongs to, ordered by entity (migration 014). */
export const eventsByEntity = (database: string): SqlFragment => ident(database, 'payment_events_by_entity');

/** Transaction id -> order id of every event with a transaction id, ordered by transaction id (migration 019). */
export const eventsByTransaction = (database: string): SqlFragment => ident(database, 'payment_events_by_transaction');

/** Where each event sits in Kafka, ordered by that position, with the fields feature filters test (migrations 014, 015). */
export const eventsByPosition = (database: string): SqlFragment => ident(database, 'payment_events_by_kafka_position');

/**
 * `table WHERE ...` for a FROM clause: every event, at any time, of the orders the subquery
 * `orders` returns (it selects order_id), that also matches `where`. Read from the copy ordered
 * by entity, so the cost follows those orders' rows, not the whole history of payment_events.
 */
export function eventsOfOrders(database: string, orders: SqlFragment, where: SqlFragment): SqlFragment {
  return sqlFragment`${eventsByEntity(database)} WHERE entity_type = 'order' AND entity_key IN (${orders}) AND ${where}`;
}
