import type { PaymentEvent } from '../contract/index.ts';
import type { TimedEvent } from '../rules/index.ts';
import { entityKeyField, type EntityType, type EventFilter, type Feature } from '../rules/schema.ts';
import { windowMs } from '../rules/features.ts';
import { ident, raw, sql, type SqlFragment } from '../storage/sql.ts';

/** Name of the external table carrying the ids of the entities a tick looks at. */
export const ENTITY_IDS_TABLE = 'entity_ids';

/**
 * Rows written since `sinceSec` whose Kafka offset is above the last one seen for their
 * partition (every row of a partition not in `seen`), with the entities they touch.
 */
export function touchedQuery(database: string, sinceSec: number, seen: ReadonlyMap<number, number>): string {
  const known = [...seen.keys()];
  const above = [...seen].map(([p, o]) => sql`(kafka_partition = ${p} AND kafka_offset > ${o})`);
  const unseen = known.length ? sql`kafka_partition NOT IN ${known}` : '1';
  const position = above.length ? `(${[...above, unseen].join(' OR ')})` : unseen;
  return sql`SELECT ip, device_id, user_id, order_id, channel, merchant_id, kafka_partition AS p, kafka_offset AS o FROM ${ident(database, 'payment_events')} WHERE ingested_at >= toDateTime(${sinceSec}, 'UTC') AND ${raw(position)}`;
}

/** Orders with an attempt whose latest status is still `processing` and that began before `olderThanSec`. */
export function stuckOrdersQuery(database: string, fromSec: number, olderThanSec: number): string {
  return sql`SELECT order_id FROM (
  SELECT order_id, attempt, argMax(status, (occurred_at, occurred_ms)) AS latest_status, min(occurred_at) AS began
  FROM ${ident(database, 'payment_events')}
  WHERE type = 'payment' AND occurred_at >= toDateTime(${fromSec}, 'UTC')
  GROUP BY order_id, attempt
) WHERE latest_status = 'processing' AND began < toDateTime(${olderThanSec}, 'UTC')
GROUP BY order_id`;
}

const EVENT_COLUMNS = raw(
  'event_id, toUInt32(occurred_at) AS s, occurred_ms, type, status, order_id, attempt, transaction_id, amount_minor, currency, channel, merchant_id, user_id, device_id, ip, failure_code, source',
);

/**
 * Events of the listed entities (ids sent as the external table `entity_ids`) since `fromSec`,
 * each event_id once: the input of the reference feature computation.
 */
export function entityEventsQuery(database: string, entity: EntityType, fromSec: number): string {
  const key = ident(entityKeyField[entity]!);
  return sql`SELECT ${EVENT_COLUMNS} FROM ${ident(database, 'payment_events')} WHERE occurred_at >= toDateTime(${fromSec}, 'UTC') AND ${key} IN ${raw(ENTITY_IDS_TABLE)} LIMIT 1 BY event_id`;
}

export interface EventRowOut {
  event_id: string;
  s: number;
  occurred_ms: number;
  type: 'payment' | 'refund';
  status: PaymentEvent['status'];
  order_id: string;
  attempt: number | null;
  transaction_id: string | null;
  amount_minor: string | number;
  currency: string;
  channel: string;
  merchant_id: string;
  user_id: string | null;
  device_id: string | null;
  ip: string | null;
  failure_code: string | null;
  source: PaymentEvent['source'] | null;
}

/** Turns a stored row back into the contract event the rules reason about. */
export function toTimedEvent(r: EventRowOut): TimedEvent {
  const occurredAtMs = Number(r.s) * 1000 + Number(r.occurred_ms);
  const event: Record<string, unknown> = {
    event_id: r.event_id,
    occurred_at: new Date(occurredAtMs).toISOString(),
    type: r.type,
    status: r.status,
    order_id: r.order_id,
    amount_minor: Number(r.amount_minor),
    currency: r.currency,
    channel: r.channel,
    merchant_id: r.merchant_id,
  };
  for (const k of ['attempt', 'transaction_id', 'user_id', 'device_id', 'ip', 'failure_code', 'source'] as const) {
    if (r[k] !== null) event[k] = r[k];
  }
  return { event: event as unknown as PaymentEvent, occurredAtMs };
}

/** `type IN (...) AND status IN (...)` for a feature filter, or 1 when there is none. */
function filterSql(filter: EventFilter | undefined): SqlFragment {
  const parts = Object.entries(filter ?? {}).map(([field, values]) => sql`${ident(field)} IN ${values as string[]}`);
  return raw(parts.length ? parts.join(' AND ') : '1');
}

/** The fields a feature aggregates over, as a list. */
export const fieldsOf = (f: Feature): string[] => (f.field === undefined ? [] : typeof f.field === 'string' ? [f.field] : [...f.field]);

/** Numerator and denominator of a rate feature over its window: distinct keys matching filter (and numerator). */
function rateParts(f: Feature): { num: string; den: string } | null {
  const fields = raw(fieldsOf(f).map((x) => ident(x).text).join(', '));
  if (!fields.text) return null;
  const inWindow = raw(`occurred_at > toDateTime(toUInt32(now()) - ${windowMs[f.window] / 1000}, 'UTC')`);
  const cond = filterSql(f.filter);
  return {
    num: sql`uniqExactIf(${fields}, ${inWindow} AND ${cond} AND ${filterSql(f.numerator)})`,
    den: sql`uniqExactIf(${fields}, ${inWindow} AND ${cond})`,
  };
}

/**
 * SQL for a context feature (channel, merchant): these see all traffic, so they are aggregated
 * in ClickHouse instead of pulling every event. Same semantics as rules/features.ts for the
 * aggregations context features use (count, distinct_count, sum, rate).
 */
export function contextFeatureSql(f: Feature): string | null {
  const cond = filterSql(f.filter);
  const fields = raw(fieldsOf(f).map((x) => ident(x).text).join(', '));
  const inWindow = raw(`occurred_at > toDateTime(toUInt32(now()) - ${windowMs[f.window] / 1000}, 'UTC')`);
  switch (f.aggregation) {
    case 'count':
      return sql`countIf(${inWindow} AND ${cond})`;
    case 'distinct_count':
      return sql`uniqExactIf(${fields}, ${inWindow} AND ${cond})`;
    case 'sum':
      return sql`sumIf(${fields}, ${inWindow} AND ${cond})`;
    case 'rate': {
      const parts = rateParts(f);
      return parts && `if(${parts.den} = 0, 0, ${parts.num} / ${parts.den})`;
    }
    default:
      return null;
  }
}

/**
 * All context features of one entity type (channel or merchant) for every entity, over the
 * longest window. Column f{i} is features[i]; a rate comes as f{i}_n and f{i}_d (numerator and
 * denominator), so a tick can take an entity's own attempts out before dividing.
 */
export function contextFeaturesQuery(database: string, entity: EntityType, features: readonly Feature[]): string | null {
  const select: string[] = [];
  features.forEach((f, i) => {
    const parts = f.aggregation === 'rate' ? rateParts(f) : null;
    if (parts) {
      select.push(`${parts.num} AS f${i}_n`, `${parts.den} AS f${i}_d`);
    } else if (f.aggregation !== 'rate') {
      const expr = contextFeatureSql(f);
      if (expr) select.push(`${expr} AS f${i}`);
    }
  });
  if (select.length === 0) return null;
  const longest = Math.max(...features.map((f) => windowMs[f.window])) / 1000;
  const key = ident(entityKeyField[entity]!);
  return `SELECT ${key.text} AS entity_key, ${select.join(', ')} FROM ${ident(database, 'payment_events').text} WHERE occurred_at > toDateTime(toUInt32(now()) - ${longest}, 'UTC') GROUP BY entity_key`;
}

