import type { PaymentEvent } from '../contract/index.ts';
import type { TimedEvent } from '../rules/index.ts';
import { entityKeyField, type EntityType, type EventFilter, type Feature } from '../rules/schema.ts';
import { windowMs } from '../rules/features.ts';
import { parseDuration } from '../rules/duration.ts';
import { eventsByEntity, eventsByPosition } from '../storage/copies.ts';
import { anyMayHold } from '../rules/evaluate.ts';
import { comparisons, conditionWalker, isPlain, type Condition } from '../rules/conditions.ts';
import type { LoadedRule } from '../rules/index.ts';
import { ident, raw, sql, type SqlFragment } from '../storage/sql.ts';

/** Name of the external table carrying the ids of the entities a tick looks at. */
export const ENTITY_IDS_TABLE = 'entity_ids';

/** ` AND ingested_at <= until` when rows are limited to those written by then (a backtest), else nothing. */
function writtenBy(untilSec: number | undefined): SqlFragment {
  return raw(untilSec === undefined ? '' : sql` AND ingested_at <= toDateTime(${untilSec}, 'UTC')`);
}


/**
 * Orders with an attempt whose latest status is `processing` and that began before the end of
 * one of `slices` ([from, to) in event-time seconds), among the orders with a `processing`
 * payment event that occurred inside a slice: the attempts that crossed an age threshold since
 * the last scan (the first scan of a threshold takes the whole window). Each order's own events
 * since `fromSec` are read from the entity-ordered copy, so the cost follows the slices, not
 * the traffic of the window. These are candidates: the rules decide on the exact features.
 */
export function stuckOrdersQuery(database: string, fromSec: number, slices: readonly (readonly [number, number])[], untilSec?: number): string {
  const inSlice = slices.map(([a, b]) => sql`(occurred_at >= toDateTime(${Math.max(fromSec, a)}, 'UTC') AND occurred_at < toDateTime(${b}, 'UTC'))`);
  const crossed = sql`SELECT order_id FROM ${ident(database, 'payment_events')} WHERE (${raw(inSlice.length ? inSlice.join(' OR ') : '0')}) AND type = 'payment' AND status = 'processing'${writtenBy(untilSec)}`;
  const latestEnd = Math.max(fromSec, ...slices.map(([, b]) => b));
  return sql`SELECT oid FROM (
  SELECT entity_key AS oid, attempt, argMax(status, (occurred_at, occurred_ms)) AS latest_status, min(occurred_at) AS began
  FROM ${eventsByEntity(database)}
  WHERE entity_type = 'order' AND entity_key IN (${raw(crossed)}) AND type = 'payment' AND occurred_at >= toDateTime(${fromSec}, 'UTC')${writtenBy(untilSec)}
  GROUP BY oid, attempt
) WHERE latest_status = 'processing' AND began < toDateTime(${latestEnd}, 'UTC')
GROUP BY oid`;
}

const EVENT_COLUMNS = raw(
  'event_id, toUInt32(occurred_at) AS s, occurred_ms, type, status, order_id, attempt, transaction_id, amount_minor, currency, channel, merchant_id, user_id, device_id, ip, failure_code, source',
);

/**
 * Events of the listed entities (ids sent as the external table `entity_ids`) since `fromSec`,
 * each event_id once: the input of the reference feature computation.
 */
export function entityEventsQuery(database: string, entity: EntityType, fromSec: number, untilSec?: number): string {
  return sql`SELECT ${EVENT_COLUMNS} FROM ${eventsByEntity(database)} WHERE entity_type = ${entity} AND entity_key IN ${raw(ENTITY_IDS_TABLE)} AND occurred_at >= toDateTime(${fromSec}, 'UTC')${writtenBy(untilSec)} LIMIT 1 BY event_id`;
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
function rateParts(f: Feature, nowSec: number): { num: string; den: string } | null {
  const fields = raw(fieldsOf(f).map((x) => ident(x).text).join(', '));
  if (!fields.text) return null;
  const inWindow = contextWindow(f, nowSec);
  const cond = filterSql(f.filter);
  return {
    num: sql`uniqExactIf(${fields}, ${inWindow} AND ${cond} AND ${filterSql(f.numerator)})`,
    den: sql`uniqExactIf(${fields}, ${inWindow} AND ${cond})`,
  };
}

/** The window of a context feature ending at `nowSec` (second resolution: context is refreshed every few seconds). */
const contextWindow = (f: Feature, nowSec: number): SqlFragment => raw(sql`occurred_at > toDateTime(${nowSec - windowMs[f.window] / 1000}, 'UTC') AND occurred_at <= toDateTime(${nowSec}, 'UTC')`);

/**
 * SQL for a context feature (channel, merchant): these see all traffic, so they are aggregated
 * in ClickHouse instead of pulling every event. Same semantics as rules/features.ts for the
 * aggregations context features use (count, distinct_count, sum, rate).
 */
export function contextFeatureSql(f: Feature, nowSec: number): string | null {
  const cond = filterSql(f.filter);
  const fields = raw(fieldsOf(f).map((x) => ident(x).text).join(', '));
  const inWindow = contextWindow(f, nowSec);
  switch (f.aggregation) {
    case 'count':
      return sql`countIf(${inWindow} AND ${cond})`;
    case 'distinct_count':
      return sql`uniqExactIf(${fields}, ${inWindow} AND ${cond})`;
    case 'sum':
      return sql`sumIf(${fields}, ${inWindow} AND ${cond})`;
    case 'rate': {
      const parts = rateParts(f, nowSec);
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
export function contextFeaturesQuery(database: string, entity: EntityType, features: readonly Feature[], nowSec: number, untilSec?: number): string | null {
  const select: string[] = [];
  features.forEach((f, i) => {
    const parts = f.aggregation === 'rate' ? rateParts(f, nowSec) : null;
    if (parts) {
      select.push(`${parts.num} AS f${i}_n`, `${parts.den} AS f${i}_d`);
    } else if (f.aggregation !== 'rate') {
      const expr = contextFeatureSql(f, nowSec);
      if (expr) select.push(`${expr} AS f${i}`);
    }
  });
  if (select.length === 0) return null;
  const longest = Math.max(...features.map((f) => windowMs[f.window])) / 1000;
  const key = ident(entityKeyField[entity]!);
  return sql`SELECT ${key} AS entity_key, ${raw(select.join(', '))} FROM ${ident(database, 'payment_events')} WHERE occurred_at > toDateTime(${nowSec - longest}, 'UTC') AND occurred_at <= toDateTime(${nowSec}, 'UTC')${writtenBy(untilSec)} GROUP BY entity_key`;
}


/** Event time in milliseconds, as the reference computation sees it. */
const AT_MS = '(toUInt64(toUInt32(occurred_at)) * 1000 + occurred_ms)';

/** How one feature is screened in SQL: its exact value, an upper bound, or not at all. */
export interface ScreenColumn {
  feature: Feature;
  /** Column prefix in the screen query's rows. */
  column: string;
  kind: 'exact' | 'upper';
}

/**
 * The features of `features` that SQL can screen, and how. Exact where ClickHouse computes the
 * reference value itself (distinct counts and rates over distinct keys, which duplicate rows do
 * not change); an upper bound where it cannot cheaply: counts (a row stored twice before a merge
 * counts twice), per-group maxima (bounded by the ungrouped value), sequences (at most the keys
 * that have both a first step and a second one, in any order) and ages (at most since the oldest matching event).
 * Sums are not screened.
 */
export function screenPlan(features: readonly Feature[]): ScreenColumn[] {
  const out: ScreenColumn[] = [];
  features.forEach((feature, i) => {
    const grouped = feature.group_by !== undefined;
    const hasFields = fieldsOf(feature).length > 0;
    const column = `f${i}`;
    switch (feature.aggregation) {
      case 'distinct_count':
        if (hasFields) out.push({ feature, column, kind: grouped ? 'upper' : 'exact' });
        break;
      case 'rate':
        if (hasFields && !grouped) out.push({ feature, column, kind: 'exact' });
        break;
      case 'count':
      case 'followed_by':
      case 'age':
        if (feature.aggregation === 'count' || hasFields) out.push({ feature, column, kind: 'upper' });
        break;
      default:
        break;
    }
  });
  return out;
}

/** Rows (of the copy ordered by position, storage/copies.ts) whose Kafka position is above `seen` and at most `newest`, per partition. */
export function positionRange(seen: ReadonlyMap<number, number>, newest: ReadonlyMap<number, number>): string {
  const parts = [...newest].filter(([p, o]) => o > (seen.get(p) ?? -1)).map(([p, o]) => sql`(kafka_partition = ${p} AND kafka_offset > ${seen.get(p) ?? -1} AND kafka_offset <= ${o})`);
  return parts.length ? `(${parts.join(' OR ')})` : '0';
}

/**
 * Positions above `seen`: per partition, every offset above the last one seen; all of a
 * partition not in it. The partitions not seen are written as ranges between the seen ones
 * (not `NOT IN`), so ClickHouse can use the position order for every part of the condition.
 */
function aboveSeen(seen: ReadonlyMap<number, number>): string {
  const known = [...seen.keys()].sort((a, b) => a - b);
  const above = known.map((p) => sql`(kafka_partition = ${p} AND kafka_offset > ${seen.get(p)!})`);
  const gaps = known.map((p, i) => (i === 0 ? sql`kafka_partition < ${p}` : sql`(kafka_partition > ${known[i - 1]!} AND kafka_partition < ${p})`));
  gaps.push(known.length ? sql`kafka_partition > ${known[known.length - 1]!}` : '1');
  return `(${[...above, ...gaps].join(' OR ')})`;
}

/**
 * Per partition, the oldest and newest Kafka offset written since `sinceSec` above the ones seen
 * and how many rows, with the channels and merchants of those rows. `occurredFromSec` leaves out
 * rows older than every feature window (they change no feature) and lets ClickHouse read only
 * the recent range of the primary key. `untilSec` limits rows to those written by then (a
 * backtest replays what a live tick would have seen).
 */
export function newRowsQuery(database: string, sinceSec: number, seen: ReadonlyMap<number, number>, untilSec?: number, occurredFromSec?: number): string {
  const relevant = occurredFromSec === undefined ? '' : sql` AND occurred_at >= toDateTime(${occurredFromSec}, 'UTC')`;
  return sql`SELECT kafka_partition AS p, min(kafka_offset) AS lo, max(kafka_offset) AS o, count() AS n, groupUniqArray(channel) AS channels, groupUniqArray(merchant_id) AS merchants FROM ${eventsByPosition(database)} WHERE ingested_at >= toDateTime(${sinceSec}, 'UTC')${writtenBy(untilSec)}${raw(relevant)} AND ${raw(aboveSeen(seen))} GROUP BY p`;
}

/**
 * For every entity of type `entity` touched by rows in `position` (see positionRange), the
 * screened features at `nowMs` (see screenPlan). Column `{column}` holds the value or bound;
 * a rate comes as `{column}_n`/`{column}_d`, an age as `{column}_min` (oldest matching event,
 * ms) and `{column}_c` (events matching filter and latest).
 */
export function entityScreenQuery(
  database: string,
  entity: EntityType,
  columns: readonly ScreenColumn[],
  nowMs: number,
  sinceSec: number,
  position: string,
  untilSec?: number,
  having?: string,
  /** The longest window of all the entity's features (screened or not): rows older than it change none. */
  entityWindowMs?: number,
  /**
   * Which entities: `touched`, those of the new rows at `position`; `ids`, those sent as the
   * external table `entity_ids` (the ones near a volume floor, see volumeFloor). @default 'touched'
   */
  keys: 'touched' | 'ids' = 'touched',
  /**
   * Also what parking a key needs (see parkedBounds): per rate, `{column}_dh`, its denominator
   * over the part of the window that every window until `horizonMs` after now still covers;
   * and `fut`, the rows after now (a producer's clock ahead), read without an upper time bound.
   */
  park?: { horizonMs: number },
): string {
  const key = ident(entityKeyField[entity]!);
  const select: string[] = [];
  let longest = 0;
  for (const { feature: f, column, kind } of columns) {
    longest = Math.max(longest, windowMs[f.window]);
    const fields = raw(fieldsOf(f).map((x) => ident(x).text).join(', '));
    const win = raw(sql`${raw(AT_MS)} > ${nowMs - windowMs[f.window]} AND ${raw(AT_MS)} <= ${nowMs}`);
    const cond = filterSql(f.filter);
    switch (f.aggregation) {
      case 'distinct_count':
        select.push(sql`uniqExactIf(${fields}, ${win} AND ${cond}) AS ${raw(column)}`);
        break;
      case 'rate':
        select.push(sql`uniqExactIf(${fields}, ${win} AND ${cond} AND ${filterSql(f.numerator)}) AS ${raw(`${column}_n`)}`, sql`uniqExactIf(${fields}, ${win} AND ${cond}) AS ${raw(`${column}_d`)}`);
        if (park) {
          const kept = raw(sql`${raw(AT_MS)} > ${nowMs + park.horizonMs - windowMs[f.window]} AND ${raw(AT_MS)} <= ${nowMs}`);
          select.push(sql`uniqExactIf(${fields}, ${kept} AND ${cond}) AS ${raw(`${column}_dh`)}`);
        }
        break;
      case 'count':
        select.push(sql`countIf(${win} AND ${cond}) AS ${raw(column)}`);
        break;
      case 'followed_by': {
        // Keys with a first step and a second one, in either order: a normal retry (attempt 1
        // failed, attempt 2 succeeded) has none, so it does not reach the exact computation.
        const one = raw(fieldsOf(f).length > 1 ? `tuple(${fields.text})` : fields.text);
        select.push(sql`length(arrayIntersect(groupUniqArrayIf(${one}, ${win} AND ${cond}), groupUniqArrayIf(${one}, ${win} AND ${filterSql(f.followed_by)}))) AS ${raw(column)}`);
        break;
      }
      case 'age':
        select.push(sql`minIf(${raw(AT_MS)}, ${win} AND ${cond}) AS ${raw(`${column}_min`)}`, sql`countIf(${win} AND ${cond} AND ${filterSql(f.latest)}) AS ${raw(`${column}_c`)}`);
        break;
      default:
        throw new Error(`feature ${f.id}: ${f.aggregation} is not screened (${kind})`);
    }
  }
  longest = Math.max(longest, entityWindowMs ?? 0);
  const fromSec = Math.floor((nowMs - longest) / 1000);
  const toSec = Math.ceil(nowMs / 1000);
  if (park) select.push(sql`countIf(${raw(AT_MS)} > ${nowMs}) AS fut`);
  const upTo = park ? '' : sql` AND occurred_at <= toDateTime(${toSec}, 'UTC')`;
  // Rows outside [now - longest window, now] cannot change this entity's features. Both tables
  // are ordered for these reads: the new rows by Kafka position, the entities' rows by entity.
  const touched = sql`SELECT ${key} FROM ${eventsByPosition(database)} WHERE ${raw(position)} AND ingested_at >= toDateTime(${sinceSec}, 'UTC') AND occurred_at >= toDateTime(${fromSec}, 'UTC') AND occurred_at <= toDateTime(${toSec}, 'UTC')`;
  const ids = raw(keys === 'ids' ? ENTITY_IDS_TABLE : `(${touched})`);
  return sql`SELECT entity_key${raw(select.length ? `, ${select.join(', ')}` : '')} FROM ${eventsByEntity(database)} WHERE entity_type = ${entity} AND entity_key IN ${ids} AND occurred_at >= toDateTime(${fromSec}, 'UTC')${raw(upTo)}${writtenBy(untilSec)} GROUP BY entity_key${raw(having ? ` HAVING ${having}` : '')}`;
}

/**
 * The volume floor of an entity type: a feature that counts events or distinct values among the
 * events matching its filter (count, distinct_count and followed_by over fields, and their
 * per-group maxima; all at most the entity's matching events in the feature's window), and the
 * fewest such events without which none of `rules` can hold, decided by the pre-check with that
 * feature bounded by [0, n] and every other fact unknown. Of the features that give one, the one
 * with the narrowest filter (then the highest floor) is taken: it leaves the fewest entities
 * near it. Null when no feature gives a floor above two (a stuck attempt is one event; a rule on
 * a rate alone needs none): a floor that low excludes almost nothing.
 */
export function volumeFloor(rules: readonly LoadedRule[], features: readonly Feature[]): { feature: string; floor: number; windowMs: number; filter: EventFilter | undefined } | null {
  if (!rules.length) return null;
  let best: { feature: string; floor: number; windowMs: number; filter: EventFilter | undefined; narrow: number } | null = null;
  for (const f of features) {
    const counted = f.aggregation === 'count' || ((f.aggregation === 'distinct_count' || f.aggregation === 'followed_by') && fieldsOf(f).length > 0);
    if (!counted) continue;
    const mayHoldWith = (n: number) => anyMayHold(rules, new Map([[f.id, { lo: 0, hi: n }]]));
    if (mayHoldWith(2)) continue;
    let n = 3;
    while (n <= 100_000 && !mayHoldWith(n)) n++;
    if (n > 100_000) continue;
    const narrow = Object.keys(f.filter ?? {}).length;
    if (!best || narrow > best.narrow || (narrow === best.narrow && n > best.floor)) best = { feature: f.id, floor: n, windowMs: windowMs[f.window], filter: f.filter, narrow };
  }
  if (!best) return null;
  const { narrow: _narrow, ...floor } = best;
  return floor;
}

/**
 * Keys of `entity` with at least `atLeast` stored events matching `filter` that occurred since `fromSec`. Read from
 * payment_events, which is ordered by event time, so the cost is one pass over the window and
 * not a look-up per key, on `threads` threads (default one: a refresh runs beside the ticks and
 * must leave them a core; the first of a leadership may take both, since until it exists the
 * ticks screen every touched entity, which costs them more). The debug log 'hot set' shows how
 * long it takes. Every row stored by then counts, also rows that ticks take afterwards and count
 * again in memory, and rows stored twice before a merge: that only adds keys.
 */
export function hotKeysQuery(database: string, entity: EntityType, fromSec: number, atLeast: number, filter?: EventFilter, threads = 1): string {
  const key = ident(entityKeyField[entity]!);
  return sql`SELECT ${key} AS k FROM ${ident(database, 'payment_events')} WHERE occurred_at >= toDateTime(${fromSec}, 'UTC') AND ${filterSql(filter)} AND ${key} != '' GROUP BY k HAVING count() >= ${atLeast} SETTINGS max_threads = ${threads}`;
}

/** Fields of an event that newKeysQuery returns besides the keys: every field a feature filter can test (rules/schema.ts EventFilter; see mayMatch). */
export const NEW_ROW_FILTER_FIELDS = ['type', 'status', 'failure_code', 'source'] as const;

/** The IP, device, user and order of every new row at `position` (see positionRange), one row each, with NEW_ROW_FILTER_FIELDS. */
export function newKeysQuery(database: string, sinceSec: number, position: string, untilSec?: number): string {
  return sql`SELECT ip, device_id, user_id, order_id, ${raw(NEW_ROW_FILTER_FIELDS.join(', '))} FROM ${eventsByPosition(database)} WHERE ${raw(position)} AND ingested_at >= toDateTime(${sinceSec}, 'UTC')${writtenBy(untilSec)}`;
}

/**
 * Whether an event with these fields may match `filter`: false only when a field the row has
 * rules it out. A filter on a field the row lacks may match (a new row from newKeysQuery has
 * only the keys and NEW_ROW_FILTER_FIELDS), so counting rows with it never undercounts.
 */
export function mayMatch(row: Readonly<Record<string, string | null>>, filter: EventFilter | undefined): boolean {
  if (!filter) return true;
  for (const [field, allowed] of Object.entries(filter)) {
    if (!(field in row)) continue;
    const v = row[field];
    if (typeof v !== 'string' || !(allowed as string[]).includes(v)) return false;
  }
  return true;
}

/** Turns a screen row into bounds for the pre-check (rules/evaluate.ts mayHoldWithin). */
export function screenBounds(columns: readonly ScreenColumn[], row: Readonly<Record<string, string | number | null>>, nowMs: number): Map<string, { value: number } | { lo: number; hi: number }> {
  const bounds = new Map<string, { value: number } | { lo: number; hi: number }>();
  for (const { feature: f, column, kind } of columns) {
    if (f.aggregation === 'rate') {
      const d = Number(row[`${column}_d`]);
      bounds.set(f.id, { value: d > 0 ? Number(row[`${column}_n`]) / d : 0 });
    } else if (f.aggregation === 'age') {
      const hi = Number(row[`${column}_c`]) > 0 ? Math.max(0, nowMs - Number(row[`${column}_min`])) : 0;
      bounds.set(f.id, { lo: 0, hi });
    } else {
      const v = Number(row[column]);
      bounds.set(f.id, kind === 'exact' ? { value: v } : { lo: 0, hi: v });
    }
  }
  return bounds;
}

/**
 * A key screened by id (near a volume floor) for which no rule could hold, and what would have
 * to happen before one could: a tick counts the new rows that may change each screened feature
 * (mayMatch on its filter) and screens the key again only when the bounds below let a rule hold,
 * or once `until` has passed. A busy shared IP far from card testing is then not read again every tick.
 */
export interface Parked {
  /** Epoch ms of the screen's now: the bounds hold from it ... */
  at: number;
  /** ... up to this (the screen's now plus the horizon). */
  until: number;
  /** Per screen column: its value or upper bound at the screen; for a rate, the numerator. */
  base: number[];
  /** Per rate column: the denominator over what every window until `until` still covers; 0 for others. */
  kept: number[];
  /** Per screen column: rows since that may add to it (to a rate's numerator), starting with the rows after the screen's now. */
  grown: number[];
}

/** Whether keys of a type with these screen columns can be parked: every feature only grows by at most one per new row (ages grow with time). */
export const parkable = (columns: readonly ScreenColumn[]): boolean =>
  columns.length > 0 && columns.every(({ feature: f }) => f.aggregation === 'count' || f.aggregation === 'distinct_count' || f.aggregation === 'followed_by' || f.aggregation === 'rate');

/** A parked key from its screen row (entityScreenQuery with `park`). */
export function parkedFrom(columns: readonly ScreenColumn[], row: Readonly<Record<string, string | number | null>>, at: number, until: number): Parked {
  const fut = Number(row.fut ?? 0);
  return {
    at,
    until,
    base: columns.map(({ feature: f, column }) => Number(row[f.aggregation === 'rate' ? `${column}_n` : column])),
    kept: columns.map(({ feature: f, column }) => (f.aggregation === 'rate' ? Number(row[`${column}_dh`]) : 0)),
    grown: columns.map(() => fut),
  };
}

/** Counts a new row of a parked key: each feature it may add to (a distinct count, a count or a rate's numerator grows by at most one per row). */
export function growParked(columns: readonly ScreenColumn[], p: Parked, row: Readonly<Record<string, string | null>>): void {
  columns.forEach(({ feature: f }, i) => {
    const adds =
      f.aggregation === 'rate'
        ? mayMatch(row, f.filter) && mayMatch(row, f.numerator)
        : mayMatch(row, f.filter) || (f.aggregation === 'followed_by' && mayMatch(row, f.followed_by));
    if (adds) p.grown[i]!++;
  });
}

/**
 * Bounds on a parked key's features at any time from its screen until `until`: a count or
 * distinct count is at most its value then plus the rows since that may add to it; a rate's
 * numerator likewise, and its denominator at least the part of the window still covered
 * (events only leave a window by time passing), so the rate is at most their ratio.
 */
export function parkedBounds(columns: readonly ScreenColumn[], p: Parked): Map<string, { lo: number; hi: number }> {
  const bounds = new Map<string, { lo: number; hi: number }>();
  columns.forEach(({ feature: f }, i) => {
    const grown = p.base[i]! + p.grown[i]!;
    bounds.set(f.id, { lo: 0, hi: f.aggregation === 'rate' ? (p.kept[i]! > 0 ? Math.min(1, grown / p.kept[i]!) : 1) : grown });
  });
  return bounds;
}

const SQL_COMPARE: Record<string, string> = { greaterThan: '>', greaterThanInclusive: '>=', lessThan: '<', lessThanInclusive: '<=' };

/**
 * The rules' pre-check (rules/evaluate.ts mayHoldWithin) as a HAVING clause of the screen query,
 * so ClickHouse returns only entities for which some rule may hold instead of every touched
 * one (sending and parsing those rows cost several times the aggregation). It is only ever
 * weaker than the pre-check: a comparison it cannot decide from a column (an unknown or derived
 * fact, a lower limit on an upper bound, other operators) is `1`. The detector still runs the
 * pre-check and then the exact computation on what comes back.
 */
export function screenHaving(rules: readonly { conditions: unknown }[], columns: readonly ScreenColumn[], nowMs: number): string {
  const byFact = new Map(columns.map((c) => [c.feature.id, c]));
  const valueOf = (c: ScreenColumn): string => {
    switch (c.feature.aggregation) {
      case 'rate':
        return `if(${c.column}_d > 0, ${c.column}_n / ${c.column}_d, 0)`;
      case 'age':
        return sql`if(${raw(`${c.column}_c`)} > 0, ${nowMs} - ${raw(`${c.column}_min`)}, 0)`;
      default:
        return c.column;
    }
  };
  const having = conditionWalker<string>({
    all: (children, walk) => (children.length ? `(${children.map((c) => walk(c)).join(' AND ')})` : '1'),
    any: (children, walk) => (children.length ? `(${children.map((c) => walk(c)).join(' OR ')})` : '0'),
    not: () => '1',
    comparison(n) {
      const col = isPlain(n) ? byFact.get(n.fact) : undefined;
      if (!col) return '1';
      const op = SQL_COMPARE[n.operator];
      if (op && typeof n.value === 'number' && Number.isFinite(n.value)) {
        // On an upper bound only "at least" comparisons can exclude.
        if (col.kind === 'upper' && op.startsWith('<')) return '1';
        return sql`${raw(valueOf(col))} ${raw(op)} ${n.value}`;
      }
      if (n.operator === 'olderThan' && typeof n.value === 'string' && col.feature.aggregation === 'age') {
        const limit = parseDuration(n.value);
        return limit === null ? '1' : sql`${raw(valueOf(col))} > ${limit}`;
      }
      return '1';
    },
  });
  // Loaded rules, or (storage/catalog.ts) the bundled rule files as plain JSON: conditions of the checked shape.
  return rules.length ? rules.map((r) => having(r.conditions as Condition)).join(' OR ') : '0';
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
  const until = untilMs === undefined ? '' : sql` WHERE version <= ${untilMs * 1000}`;
  return sql`SELECT version AS v, order_id FROM ${table} WHERE version = (SELECT max(version) FROM ${table}${raw(until)}) GROUP BY v, order_id`;
}
