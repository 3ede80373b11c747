import type { PaymentEvent } from '../contract/index.ts';
import { conditionWalker, isPlain, type Condition } from '../rules/conditions.ts';
import { parseDuration } from '../rules/duration.ts';
import { fieldsOf, windowMs, type TimedEvent } from '../rules/features.ts';
import type { LoadedRule } from '../rules/load.ts';
import { entityKeyField, type EntityType, type Feature } from '../rules/schema.ts';
import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { eventsByEntity, eventsByPosition } from '../storage/copies.ts';
import type { ClickHouseHttp } from '../storage/http.ts';
import { ident, identList, joinSql, raw, sql, sqlFragment, type SqlFragment } from '../storage/sql.ts';
import { TOUCHED_COLUMN, type EventEntity } from './entities.ts';
import { filterSql, writtenBy } from './query-parts.ts';
import { STORED_EVENT_FIELDS, type EventRow, type StoredEventField } from '../ingest/records.ts';

/**
 * The screen: which entities touched by a tick's new rows may hit a rule. Each entity type's
 * screened features (screenPlan) are computed in one SQL query, exactly or as upper bounds, and
 * only the entities for which some rule may hold (the rules' pre-check on those bounds, also
 * sent as the query's HAVING) get the exact, reference computation, on the events fetched here.
 */

/** Name of the external table carrying the ids of the entities a tick looks at. */
export const ENTITY_IDS_TABLE = 'entity_ids';

/** Event time in milliseconds, as the reference computation sees it. */
const AT_MS = sqlFragment`(toUInt64(toUInt32(occurred_at)) * 1000 + occurred_ms)`;

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

/**
 * For every entity of type `entity` touched by rows in `position` (positions.ts positionRange), the
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
  position: SqlFragment,
  untilSec?: number,
  having?: SqlFragment,
  /** The longest window of all the entity's features (screened or not): rows older than it change none. */
  entityWindowMs?: number,
  /**
   * Which entities: `touched`, those of the new rows at `position`; `ids`, those sent as the
   * external table `entity_ids` (the ones near a volume floor, hot-sets.ts). @default 'touched'
   */
  keys: 'touched' | 'ids' = 'touched',
  /**
   * Also what parking a key needs (parked-keys.ts parkedBounds): per rate, `{column}_dh`, its denominator
   * over the part of the window that every window until `horizonMs` after now still covers;
   * and `fut`, the rows after now (a producer's clock ahead), read without an upper time bound.
   */
  park?: { horizonMs: number },
): string {
  const key = ident(entityKeyField[entity]!);
  const select: SqlFragment[] = [];
  let longest = 0;
  for (const { feature: f, column, kind } of columns) {
    longest = Math.max(longest, windowMs[f.window]);
    const fields = identList(fieldsOf(f));
    const alias = (suffix = '') => ident(column + suffix);
    const win = sqlFragment`${AT_MS} > ${nowMs - windowMs[f.window]} AND ${AT_MS} <= ${nowMs}`;
    const cond = filterSql(f.filter);
    switch (f.aggregation) {
      case 'distinct_count':
        select.push(sqlFragment`uniqExactIf(${fields}, ${win} AND ${cond}) AS ${alias()}`);
        break;
      case 'rate':
        select.push(
          sqlFragment`uniqExactIf(${fields}, ${win} AND ${cond} AND ${filterSql(f.numerator)}) AS ${alias('_n')}`,
          sqlFragment`uniqExactIf(${fields}, ${win} AND ${cond}) AS ${alias('_d')}`,
        );
        if (park) {
          const kept = sqlFragment`${AT_MS} > ${nowMs + park.horizonMs - windowMs[f.window]} AND ${AT_MS} <= ${nowMs}`;
          select.push(sqlFragment`uniqExactIf(${fields}, ${kept} AND ${cond}) AS ${alias('_dh')}`);
        }
        break;
      case 'count':
        select.push(sqlFragment`countIf(${win} AND ${cond}) AS ${alias()}`);
        break;
      case 'followed_by': {
        // Keys with a first step and a second one, in either order: a normal retry (attempt 1
        // failed, attempt 2 succeeded) has none, so it does not reach the exact computation.
        const one = fieldsOf(f).length > 1 ? sqlFragment`tuple(${fields})` : fields;
        const first = sqlFragment`groupUniqArrayIf(${one}, ${win} AND ${cond})`;
        const second = sqlFragment`groupUniqArrayIf(${one}, ${win} AND ${filterSql(f.followed_by)})`;
        select.push(sqlFragment`length(arrayIntersect(${first}, ${second})) AS ${alias()}`);
        break;
      }
      case 'age':
        select.push(
          sqlFragment`minIf(${AT_MS}, ${win} AND ${cond}) AS ${alias('_min')}`,
          sqlFragment`countIf(${win} AND ${cond} AND ${filterSql(f.latest)}) AS ${alias('_c')}`,
        );
        break;
      default:
        throw new Error(`feature ${f.id}: ${f.aggregation} is not screened (${kind})`);
    }
  }
  longest = Math.max(longest, entityWindowMs ?? 0);
  const fromSec = Math.floor((nowMs - longest) / 1000);
  const toSec = Math.ceil(nowMs / 1000);
  if (park) select.push(sqlFragment`countIf(${AT_MS} > ${nowMs}) AS fut`);
  const upTo = park ? sqlFragment`` : sqlFragment` AND occurred_at <= toDateTime(${toSec}, 'UTC')`;
  // Rows outside [now - longest window, now] cannot change this entity's features. Both tables
  // are ordered for these reads: the new rows by Kafka position, the entities' rows by entity.
  const touched = sqlFragment`SELECT ${key} FROM ${eventsByPosition(database)}
    WHERE ${position} AND ingested_at >= toDateTime(${sinceSec}, 'UTC')
      AND occurred_at >= toDateTime(${fromSec}, 'UTC') AND occurred_at <= toDateTime(${toSec}, 'UTC')`;
  const ids = keys === 'ids' ? ident(ENTITY_IDS_TABLE) : sqlFragment`(${touched})`;
  const screened = select.length ? sqlFragment`, ${joinSql(select, ', ')}` : sqlFragment``;
  return sql`SELECT entity_key${screened} FROM ${eventsByEntity(database)}
    WHERE entity_type = ${entity} AND entity_key IN ${ids} AND occurred_at >= toDateTime(${fromSec}, 'UTC')${upTo}${writtenBy(untilSec)}
    GROUP BY entity_key${having ? sqlFragment` HAVING ${having}` : sqlFragment``}`;
}

/** Turns a screen row into bounds for the pre-check (rules/evaluate.ts mayHoldWithin). */
export function screenBounds(
  columns: readonly ScreenColumn[],
  row: Readonly<Record<string, string | number | null>>,
  nowMs: number,
): Map<string, { value: number } | { lo: number; hi: number }> {
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

const SQL_COMPARE: Record<string, string> = { greaterThan: '>', greaterThanInclusive: '>=', lessThan: '<', lessThanInclusive: '<=' };

/**
 * The rules' pre-check (rules/evaluate.ts mayHoldWithin) as a HAVING clause of the screen query,
 * so ClickHouse returns only entities for which some rule may hold instead of every touched
 * one (sending and parsing those rows cost several times the aggregation). It is only ever
 * weaker than the pre-check: a comparison it cannot decide from a column (an unknown or derived
 * fact, a lower limit on an upper bound, other operators) is `1`. The detector still runs the
 * pre-check and then the exact computation on what comes back.
 */
export function screenHaving(rules: readonly { conditions: unknown }[], columns: readonly ScreenColumn[], nowMs: number): SqlFragment {
  const byFact = new Map(columns.map((c) => [c.feature.id, c]));
  const valueOf = (c: ScreenColumn): SqlFragment => {
    const col = (suffix = '') => ident(c.column + suffix);
    switch (c.feature.aggregation) {
      case 'rate':
        return sqlFragment`if(${col('_d')} > 0, ${col('_n')} / ${col('_d')}, 0)`;
      case 'age':
        return sqlFragment`if(${col('_c')} > 0, ${nowMs} - ${col('_min')}, 0)`;
      default:
        return col();
    }
  };
  const always = sqlFragment`1`;
  const never = sqlFragment`0`;
  const having = conditionWalker<SqlFragment>({
    all: (children, walk) =>
      children.length
        ? sqlFragment`(${joinSql(
            children.map((c) => walk(c)),
            ' AND ',
          )})`
        : always,
    any: (children, walk) =>
      children.length
        ? sqlFragment`(${joinSql(
            children.map((c) => walk(c)),
            ' OR ',
          )})`
        : never,
    not: () => always,
    comparison(n) {
      const col = isPlain(n) ? byFact.get(n.fact) : undefined;
      if (!col) return always;
      const op = SQL_COMPARE[n.operator];
      if (op && typeof n.value === 'number' && Number.isFinite(n.value)) {
        // On an upper bound only "at least" comparisons can exclude.
        if (col.kind === 'upper' && op.startsWith('<')) return always;
        return sqlFragment`${valueOf(col)} ${raw(op)} ${n.value}`;
      }
      if (n.operator === 'olderThan' && typeof n.value === 'string' && col.feature.aggregation === 'age') {
        const limit = parseDuration(n.value);
        return limit === null ? always : sqlFragment`${valueOf(col)} > ${limit}`;
      }
      return always;
    },
  });
  // Loaded rules, or (test/sql-catalog.ts) the bundled rule files as plain JSON: conditions of the checked shape.
  return rules.length
    ? joinSql(
        rules.map((r) => having(r.conditions as Condition)),
        ' OR ',
      )
    : never;
}

/** The stored event fields (ingest/records.ts), occurred_at as Unix seconds `s`. */
const EVENT_COLUMNS = joinSql(
  STORED_EVENT_FIELDS.map((f) => (f === 'occurred_at' ? sqlFragment`toUInt32(occurred_at) AS s` : ident(f))),
  ', ',
);

/**
 * Events of the listed entities (ids sent as the external table `entity_ids`) since `fromSec`,
 * each event_id once: the input of the reference feature computation.
 */
export function entityEventsQuery(database: string, entity: EntityType, fromSec: number, untilSec?: number): string {
  return sql`SELECT ${EVENT_COLUMNS} FROM ${eventsByEntity(database)}
    WHERE entity_type = ${entity} AND entity_key IN ${ident(ENTITY_IDS_TABLE)} AND occurred_at >= toDateTime(${fromSec}, 'UTC')${writtenBy(untilSec)}
    LIMIT 1 BY event_id`;
}

/** An event as entityEventsQuery reads it: the stored fields, occurred_at as `s`, UInt64 amounts as JSON strings. */
export type EventRowOut = Omit<Pick<EventRow, StoredEventField>, 'occurred_at' | 'amount_minor' | 'type' | 'status' | 'source'> & {
  s: number;
  amount_minor: string | number;
  type: PaymentEvent['type'];
  status: PaymentEvent['status'];
  source: PaymentEvent['source'] | null;
};

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

/** A row of entityScreenQuery: `entity_key` and the screened columns. */
export type ScreenRow = Readonly<Record<string, string | number | null>>;

export interface ScreenDeps {
  clickhouse: ClickHouseClient;
  http: ClickHouseHttp;
  database: string;
}

/** What one type's screen reads: the tick's new rows and time, and which entities. */
export interface ScreenRequest {
  entity: EventEntity;
  columns: readonly ScreenColumn[];
  rules: readonly Pick<LoadedRule, 'conditions'>[];
  nowMs: number;
  sinceSec: number;
  position: SqlFragment;
  untilSec: number | undefined;
  /** The longest window of all the entity type's features. */
  entityWindowMs: number;
  /** Only these entities (near a volume floor, see hot-sets.ts), instead of every touched one. */
  ids?: readonly string[];
  /** With `ids`: also what parking needs (parked-keys.ts), and every entity comes back, not only those a rule may hit. */
  park?: { horizonMs: number };
}

/** The screen rows of one entity type (entityScreenQuery): of every touched entity for which a rule may hold, or of `ids`. */
export async function screenRows(deps: ScreenDeps, q: ScreenRequest): Promise<ScreenRow[]> {
  const having = screenHaving(q.rules, q.columns, q.nowMs);
  if (!q.ids) {
    return queryRows<ScreenRow>(
      deps.clickhouse,
      entityScreenQuery(deps.database, q.entity, q.columns, q.nowMs, q.sinceSec, q.position, q.untilSec, having, q.entityWindowMs),
      `${q.entity} screen`,
    );
  }
  if (q.ids.length === 0) return [];
  return deps.http.query<ScreenRow>(
    entityScreenQuery(
      deps.database,
      q.entity,
      q.columns,
      q.nowMs,
      q.sinceSec,
      q.position,
      q.untilSec,
      q.park ? undefined : having,
      q.entityWindowMs,
      'ids',
      q.park,
    ),
    { name: ENTITY_IDS_TABLE, structure: 'id String', rows: q.ids.map((id) => ({ id })) },
    `${q.entity} screen`,
  );
}

/**
 * The exact fetch: every event of the listed entities in the type's longest window before
 * `nowMs`, per entity, as the reference feature computation takes them.
 */
export async function entityEvents(
  deps: ScreenDeps,
  entity: EventEntity,
  ids: readonly string[],
  nowMs: number,
  entityWindowMs: number,
  untilSec: number | undefined,
): Promise<Map<string, TimedEvent[]>> {
  const key = TOUCHED_COLUMN[entity];
  const fromSec = Math.floor((nowMs - entityWindowMs) / 1000) - 1;
  const rows = await deps.http.query<EventRowOut>(
    entityEventsQuery(deps.database, entity, fromSec, untilSec),
    { name: ENTITY_IDS_TABLE, structure: 'id String', rows: ids.map((id) => ({ id })) },
    `${entity} events`,
  );
  const byEntity = new Map<string, TimedEvent[]>();
  for (const row of rows) {
    const id = row[key];
    if (id === null) continue;
    const list = byEntity.get(id);
    const t = toTimedEvent(row);
    if (list) list.push(t);
    else byEntity.set(id, [t]);
  }
  return byEntity;
}
