import type { Logger } from '../log/index.ts';
import { fieldsOf, matches, windowMs, type TimedEvent } from '../rules/features.ts';
import { entityKeyField, type EntityType, type Feature } from '../rules/schema.ts';
import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, identList, joinSql, sql, sqlFragment, type SqlFragment } from '../storage/sql.ts';
import { CONTEXT_ENTITIES } from './entities.ts';
import type { PreparedRules } from './prepared.ts';
import { filterSql, writtenBy } from './query-parts.ts';

/**
 * Channel and merchant features ("context"): they describe all traffic of a channel or merchant,
 * so they are aggregated in ClickHouse for every channel and merchant at once and refreshed
 * beside the ticks, which read the latest result.
 */

/** Numerator and denominator of a rate feature over its window: distinct keys matching filter (and numerator). */
function rateParts(f: Feature, nowSec: number): { num: SqlFragment; den: SqlFragment } | null {
  if (fieldsOf(f).length === 0) return null;
  const fields = identList(fieldsOf(f));
  const inWindow = contextWindow(f, nowSec);
  const cond = filterSql(f.filter);
  return {
    num: sqlFragment`uniqExactIf(${fields}, ${inWindow} AND ${cond} AND ${filterSql(f.numerator)})`,
    den: sqlFragment`uniqExactIf(${fields}, ${inWindow} AND ${cond})`,
  };
}

/** The window of a context feature ending at `nowSec` (second resolution: context is refreshed every few seconds). */
const contextWindow = (f: Feature, nowSec: number): SqlFragment =>
  sqlFragment`occurred_at > toDateTime(${nowSec - windowMs[f.window] / 1000}, 'UTC') AND occurred_at <= toDateTime(${nowSec}, 'UTC')`;

/**
 * SQL for a context feature (channel, merchant): these see all traffic, so they are aggregated
 * in ClickHouse instead of pulling every event. Same semantics as rules/features.ts for the
 * aggregations context features use (count, distinct_count, sum, rate).
 */
export function contextFeatureSql(f: Feature, nowSec: number): SqlFragment | null {
  const cond = filterSql(f.filter);
  const fields = fieldsOf(f).length ? identList(fieldsOf(f)) : sqlFragment``;
  const inWindow = contextWindow(f, nowSec);
  switch (f.aggregation) {
    case 'count':
      return sqlFragment`countIf(${inWindow} AND ${cond})`;
    case 'distinct_count':
      return sqlFragment`uniqExactIf(${fields}, ${inWindow} AND ${cond})`;
    case 'sum':
      return sqlFragment`sumIf(${fields}, ${inWindow} AND ${cond})`;
    case 'rate': {
      const parts = rateParts(f, nowSec);
      return parts && sqlFragment`if(${parts.den} = 0, 0, ${parts.num} / ${parts.den})`;
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
  const select: SqlFragment[] = [];
  features.forEach((f, i) => {
    const parts = f.aggregation === 'rate' ? rateParts(f, nowSec) : null;
    if (parts) {
      select.push(sqlFragment`${parts.num} AS ${ident(`f${i}_n`)}`, sqlFragment`${parts.den} AS ${ident(`f${i}_d`)}`);
    } else if (f.aggregation !== 'rate') {
      const expr = contextFeatureSql(f, nowSec);
      if (expr) select.push(sqlFragment`${expr} AS ${ident(`f${i}`)}`);
    }
  });
  if (select.length === 0) return null;
  const longest = Math.max(...features.map((f) => windowMs[f.window])) / 1000;
  const key = ident(entityKeyField[entity]!);
  return sql`SELECT ${key} AS entity_key, ${joinSql(select, ', ')} FROM ${ident(database, 'payment_events')}
    WHERE occurred_at > toDateTime(${nowSec - longest}, 'UTC') AND occurred_at <= toDateTime(${nowSec}, 'UTC')${writtenBy(untilSec)}
    GROUP BY entity_key`;
}

const NUM = '\u0000num';
const DEN = '\u0000den';

/**
 * Context rates describe the rest of the channel or merchant: "a device failing while all others
 * are normal". The entity's own attempts are taken out of numerator and denominator (an attempt
 * belongs to one device, IP and user, so this is exact); otherwise, in a quiet channel, the spiking
 * device alone would make its channel look abnormal and hide itself.
 */
function withoutOwn(context: Record<string, number>, features: readonly Feature[], own: readonly TimedEvent[], nowMs: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(context)) if (!k.includes('\u0000')) out[k] = v;
  for (const f of features) {
    if (f.aggregation !== 'rate' || context[`${f.id}${NUM}`] === undefined) continue;
    const from = nowMs - windowMs[f.window];
    const fields = fieldsOf(f);
    const den = new Set<string>();
    const num = new Set<string>();
    for (const t of own) {
      if (t.occurredAtMs <= from || t.occurredAtMs > nowMs || !matches(t.event, f.filter)) continue;
      const key = JSON.stringify(fields.map((x) => (t.event as Record<string, unknown>)[x]));
      den.add(key);
      if (matches(t.event, f.numerator)) num.add(key);
    }
    const d = context[`${f.id}${DEN}`]! - den.size;
    out[f.id] = d > 0 ? Math.max(0, context[`${f.id}${NUM}`]! - num.size) / d : 0;
  }
  return out;
}

/** Context facts per `channel|<id>` and `merchant|<id>`, with baselines from history merged in. */
export type ContextFacts = Map<string, Record<string, number>>;

/** Adds to an entity's `facts` the context of the channel and merchant of its latest event, without its own attempts. */
export function addContext(
  facts: Record<string, number>,
  context: ContextFacts,
  features: readonly Feature[],
  own: readonly TimedEvent[],
  nowMs: number,
): void {
  const latest = own.reduce((a, b) => (b.occurredAtMs > a.occurredAtMs ? b : a));
  for (const key of [`channel|${latest.event.channel}`, `merchant|${latest.event.merchant_id}`]) {
    const c = context.get(key);
    if (c) Object.assign(facts, withoutOwn(c, features, own, nowMs));
  }
}

export interface ContextDeps {
  clickhouse: ClickHouseClient;
  database: string;
  logger: Logger;
  /** The rules in force: a refresh computes their features, and its result is dropped if they change meanwhile. */
  current: () => PreparedRules;
  /** Limits reads to rows written by then (a backtest, which refreshes inside its ticks); live when absent. */
  writtenBy?: (nowMs: number) => number;
  /** Baselines from history (analytics `baselines`), keyed like the context facts; refreshed with them. */
  baselines?: (nowMs: number) => Promise<Map<string, Record<string, number>>>;
}

/**
 * Channel and merchant features for every channel/merchant. They see all traffic, so their
 * cost grows with it (about 0.4 µs per event of the 15-minute window on 2 cores: 1.7 s at a
 * sustained 5,000 events/s), and a tick must not wait for that. Live, a refresh runs beside
 * the ticks every 5 s, or less often when it takes longer (never more than a quarter of the
 * time), and ticks use the latest result. A tick waits only when a channel or merchant it needs
 * is not in it yet (a new channel must not be judged without its context; refreshed at most
 * every 500 ms for that) or the result is older than a minute. A backtest refreshes inside the
 * tick, every 5 s of simulated time, so its result does not depend on how fast it replays.
 */
export function createContext(deps: ContextDeps) {
  let context: { at: number; tookMs: number; facts: ContextFacts } = { at: 0, tookMs: 0, facts: new Map() };
  /** A refresh running beside the ticks (live detection only). */
  let refreshing: Promise<void> | null = null;

  async function refresh(nowMs: number): Promise<void> {
    const started = performance.now();
    // A rule set swapped in meanwhile has its own features: its result would be wrong for it.
    const prepared = deps.current();
    const { features } = prepared;
    const facts: ContextFacts = new Map();
    for (const entity of CONTEXT_ENTITIES) {
      const own = features.filter((f) => f.entity === entity);
      const query = contextFeaturesQuery(deps.database, entity, own, Math.floor(nowMs / 1000), deps.writtenBy?.(nowMs));
      if (!query) continue;
      for (const row of await queryRows<Record<string, string | number>>(deps.clickhouse, query, `${entity} features`)) {
        const values: Record<string, number> = {};
        own.forEach((f, i) => {
          if (row[`f${i}_d`] !== undefined) {
            const n = Number(row[`f${i}_n`]);
            const d = Number(row[`f${i}_d`]);
            values[f.id] = d > 0 ? n / d : 0;
            values[`${f.id}${NUM}`] = n;
            values[`${f.id}${DEN}`] = d;
          } else if (row[`f${i}`] !== undefined) {
            values[f.id] = Number(row[`f${i}`]);
          }
        });
        facts.set(`${entity}|${row.entity_key}`, values);
      }
    }
    if (deps.baselines) {
      for (const [key, values] of await deps.baselines(nowMs)) facts.set(key, { ...facts.get(key), ...values });
    }
    if (prepared === deps.current()) context = { at: nowMs, tookMs: performance.now() - started, facts };
  }

  /** The running refresh, or a new one (live detection only). */
  function startRefresh(nowMs: number): Promise<void> {
    if (!refreshing) {
      const pending = refresh(nowMs).finally(() => {
        refreshing = null;
      });
      // A failed refresh that no tick waits for is logged; the next tick due tries again.
      pending.catch((err: unknown) => deps.logger.warn('channel/merchant features not refreshed', { error: err instanceof Error ? err.message : String(err) }));
      refreshing = pending;
    }
    return refreshing;
  }

  return {
    /**
     * Live, with no context yet (a new leader or rule set): starts computing it, so the first
     * tick with a candidate does not wait for all of it.
     */
    warm(nowMs: number): void {
      if (context.at === 0 && !deps.writtenBy) void startRefresh(nowMs).catch(() => {});
    },

    /** The context for a tick that needs the channels and merchants `needed` (`channel|<id>`), refreshed first when due. */
    async facts(nowMs: number, needed: Iterable<string>): Promise<ContextFacts> {
      const age = nowMs - context.at;
      let missing = false;
      for (const key of needed) if (!context.facts.has(key)) missing = true;
      const due = age >= Math.max(5_000, 4 * context.tookMs) || (missing && age >= 500);
      if (deps.writtenBy) {
        if (due) await refresh(nowMs);
        return context.facts;
      }
      if (due) void startRefresh(nowMs).catch(() => {});
      if ((missing && age >= 500) || age >= 60_000) {
        const before = context;
        await startRefresh(nowMs);
        // The refresh waited for was for a rule set replaced meanwhile: its result was dropped.
        if (context === before) await startRefresh(nowMs);
      }
      return context.facts;
    },

    /** The latest context, as it is (for types whose rules read none). */
    latest(): ContextFacts {
      return context.facts;
    },

    /** A new rule set: its features are computed afresh. Leadership does not reset it: it depends on no position. */
    reset(): void {
      context = { at: 0, tookMs: 0, facts: new Map() };
    },

    /** Waits for a refresh in flight. */
    async stop(): Promise<void> {
      await refreshing?.catch(() => {});
    },
  };
}
export type Context = ReturnType<typeof createContext>;
