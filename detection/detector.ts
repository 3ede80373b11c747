import type { Logger } from '../log/index.ts';
import { computeFacts, createRuleEvaluator, matches, windowMs, type Hit, type RuleSet, type TimedEvent } from '../rules/index.ts';
import { anyMayHold } from '../rules/evaluate.ts';
import { factsRead } from '../rules/catalog.ts';
import type { EntityType, EventFilter, Feature } from '../rules/schema.ts';
import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import type { ClickHouseHttp } from '../storage/http.ts';
import type { CaseStore } from '../cases/index.ts';
import {
  ENTITY_IDS_TABLE,
  ageThresholds,
  contextFeaturesQuery,
  entityEventsQuery,
  entityScreenQuery,
  fieldsOf,
  growParked,
  hotKeysQuery,
  mayMatch,
  newKeysQuery,
  newRowsQuery,
  parkable,
  parkedBounds,
  parkedFrom,
  positionRange,
  reconciledOrdersQuery,
  screenBounds,
  screenHaving,
  screenPlan,
  stuckOrdersQuery,
  toTimedEvent,
  volumeFloor,
  type EventRowOut,
  type Parked,
} from './source.ts';

/** How far back (by write time) a tick scans for rows above the offsets it has seen. A write attempt lasts at most the 30 s request timeout. */
const SCAN_WINDOW_MS = 120_000;

/** Entity types whose features come from their own events; channel and merchant are aggregated in SQL. */
const EVENT_ENTITIES = ['ip', 'device', 'user', 'order'] as const;
const TOUCHED_COLUMN: Record<(typeof EVENT_ENTITIES)[number], 'ip' | 'device_id' | 'user_id' | 'order_id'> = {
  ip: 'ip',
  device: 'device_id',
  user: 'user_id',
  order: 'order_id',
};
const CONTEXT_ENTITIES = ['channel', 'merchant'] as const;

export interface DetectorDeps {
  clickhouse: ClickHouseClient;
  http: ClickHouseHttp;
  database: string;
  ruleSet: RuleSet;
  cases: Pick<CaseStore, 'applyHits'>;
  logger: Logger;
  /** Only the elected instance detects; the others idle. */
  isLeader: () => boolean;
  /** @default 500 */
  tickMs?: number;
  /** How far back a new leader looks for entities to evaluate. @default 10 minutes */
  startLookbackMs?: number;
  now?: () => number;
  /**
   * Limits every read to rows written by this time (epoch seconds) at the tick's `now`: a
   * backtest replays history as the live ticks saw it. Live detection reads everything.
   */
  writtenBy?: (nowMs: number) => number;
  /**
   * Baselines from history (the analytics `baselines` job), keyed like context facts
   * (`channel|alipay`); refreshed with the context. Without it, rules use the catalog defaults.
   */
  baselines?: (nowMs: number) => Promise<Map<string, Record<string, number>>>;
  /** Rows written before this time (epoch seconds) are never new to this detector (a backtest's start). */
  writtenFrom?: number;
  /**
   * At most this many new rows per tick (split over the partitions that have new rows); the rest
   * wait for the next tick. Bounds a tick's memory and time when detection has a backlog (a
   * restart after downtime, a burst). @default 50_000
   */
  maxRowsPerTick?: number;
}

/**
 * At most this many keys (all floored types together) are counted since a hot set's snapshot,
 * about 20 MB; past it (a backlog taken faster than the set is refreshed, or refreshes
 * failing) the counts are dropped and ticks screen every touched entity until a refresh that
 * stays below it. At 5,000 events/s a refresh every 5-10 s counts well under 100,000.
 */
const MAX_COUNTED_KEYS = 200_000;

/**
 * A hot set is recomputed this often (start to start), or as soon as the previous computation
 * ends when it takes longer. It runs on one ClickHouse thread (hotKeysQuery; the first of a leadership on two), so it leaves the
 * other core to ingest and the ticks; less often would let the counts since its snapshot grow
 * towards MAX_COUNTED_KEYS.
 */
const HOT_REFRESH_EVERY_MS = 10_000;

/**
 * At most this many keys of one type are parked (about 250 bytes each: under 25 MB for the three
 * floored types); past it the type's parked keys are dropped, and are screened when next touched
 * as before. Expired ones are dropped at each hot set refresh.
 */
const MAX_PARKED_PER_TYPE = 30_000;

/** How long a parked key's bounds are taken to hold: long enough to skip many ticks, short against the windows (a rate's bound uses the part of its window this leaves). */
const PARK_HORIZON_MS = 30_000;

const countedKeys = (counts: ReadonlyMap<string, ReadonlyMap<string, number>>): number => [...counts.values()].reduce((n, m) => n + m.size, 0);

interface HotSet {
  prepared: ReturnType<typeof prepare>;
  /** Per floored entity type, the keys that had at least half the floor (events matching the floor feature's filter) when the set was computed. */
  keys: Map<string, Set<string>>;
  /** Per floored entity type, rows matching the floor feature's filter taken by the ticks that started from the set's refresh on, per key. */
  since: Map<string, Map<string, number>>;
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

/** What a tick needs from a rule set, computed once per set. */
function prepare(ruleSet: RuleSet) {
  const enabled = ruleSet.rules.filter((r) => r.enabled);
  // Only the features the enabled rules read (directly or through a derived fact) are screened,
  // fetched and computed: the catalog also holds features for dashboards and future rules, and
  // one of them alone (a merchant's hour of amounts) would make every context refresh read the
  // whole last hour of traffic. Evidence shows a rule's own facts, so nothing visible changes.
  const read = factsRead(ruleSet.catalog, enabled.flatMap((r) => r.facts));
  const features: Feature[] = [];
  for (const info of ruleSet.catalog.facts.values()) if (info.kind === 'feature' && read.has(info.id)) features.push(info.def as Feature);
  const screens = new Map(EVENT_ENTITIES.map((e) => [e, screenPlan(features.filter((f) => f.entity === e))]));
  const floors = new Map(
    EVENT_ENTITIES.flatMap((e) => {
      const floor = volumeFloor(
        enabled.filter((r) => r.entity === e),
        features.filter((f) => f.entity === e),
      );
      return floor ? [[e, floor] as const] : [];
    }),
  );
  return {
    /** Ids of `features`. */
    read,
    ruleSet,
    evaluator: createRuleEvaluator(ruleSet),
    entitiesWithRules: new Set(enabled.map((r) => r.entity)),
    rulesOf: (entity: EntityType) => enabled.filter((r) => r.entity === entity),
    screens,
    /** Entity types whose rules all need a volume of events (detection/source.ts volumeFloor), with that floor. */
    floors,
    features,
    /**
     * Floored types whose keys can be parked (detection/source.ts Parked), with the horizon:
     * PARK_HORIZON_MS, or half the shortest window of their screened features if less.
     */
    parking: new Map(
      EVENT_ENTITIES.flatMap((e) => {
        const columns = screens.get(e)!;
        const windows = columns.map((c) => windowMs[c.feature.window]);
        return floors.has(e) && parkable(columns) ? [[e, { horizonMs: Math.min(PARK_HORIZON_MS, Math.min(...windows) / 2) }] as const] : [];
      }),
    ),
    stuckThresholds: ageThresholds(enabled.filter((r) => r.entity === 'order'), features),
    /**
     * Entity types with a rule that may read channel or merchant context: a fact of a context
     * entity, or a derived or baseline fact (which may build on one). Candidates of the other
     * types never wait for the context.
     */
    contextReaders: new Set(
      enabled
        .filter((r) =>
          r.facts.some((id) => {
            const info = ruleSet.catalog.facts.get(id);
            return !info || info.kind !== 'feature' || (CONTEXT_ENTITIES as readonly EntityType[]).includes(info.entity);
          }),
        )
        .map((r) => r.entity),
    ),
  };
}

export interface DetectorStats {
  ticks: number;
  /** New rows taken by ticks. */
  rows: number;
  /** Whether the last tick left new rows for the next one (detection has a backlog). */
  behind: boolean;
  /** Entities that received events and passed the SQL screen (some rule may hold for them). */
  screened: number;
  /** Entities whose features were computed exactly and whose rules ran. */
  evaluated: number;
  hits: number;
  opened: number;
  updated: number;
  lastTickMs: number;
  /** Whether the live ticks screen by volume floor (a hot set is in place for every floored type), or every touched entity. */
  floorsReady: boolean;
  /** Entities screened by id because they were in the hot set or had enough new events (see HotSet). */
  nearFloor: number;
  /** Touched entities near a floor not screened because they were parked (detection/source.ts Parked). */
  parkedSkips: number;
  /** Keys parked now. */
  parked: number;
}

/**
 * Every tick the leader finds the entities that received events since its last tick (by Kafka
 * position per partition), computes their features from ClickHouse with the rules' reference semantics, evaluates
 * only the rules of each entity type, and turns hits into cases. All state lives in ClickHouse:
 * a restart or a new leader decides from the same data (docs/adr/0002).
 */
export function createDetector(deps: DetectorDeps) {
  const now = deps.now ?? Date.now;
  // Replaced as a whole by setRuleSet (hot reload); a tick in progress keeps the set it started with.
  let active = prepare(deps.ruleSet);
  const longestWindow = () => Math.max(0, ...active.features.map((f) => windowMs[f.window]));
  const longest = (entity: EntityType) => Math.max(0, ...active.features.filter((f) => f.entity === entity).map((f) => windowMs[f.window]));
  /** Highest Kafka offset seen per partition; null until the first tick as leader. */
  let seen: Map<number, number> | null = null;
  let lastStuckScan = 0;
  /**
   * Per age threshold of the rules (ms), the event time (s) up to which processing attempts were
   * checked for crossing it; a threshold not in it (first scan of a leadership, or a rule edit)
   * is checked over the whole 24 hours.
   */
  let stuckCheckedTo = new Map<number, number>();
  /** Version of the last reconcile run whose orders were re-evaluated. */
  let reconciledVersion = '';
  /** While behind, the scan keeps starting where the rows not yet taken were written. */
  let backlogFromSec: number | null = null;
  let context: { at: number; tookMs: number; facts: Map<string, Record<string, number>> } = { at: 0, tookMs: 0, facts: new Map() };
  /** A context refresh running beside the ticks (live detection only). */
  let refreshing: Promise<void> | null = null;
  const stats: Omit<DetectorStats, 'floorsReady' | 'parked'> = { ticks: 0, rows: 0, behind: false, screened: 0, evaluated: 0, hits: 0, opened: 0, updated: 0, lastTickMs: 0, nearFloor: 0, parkedSkips: 0 };
  /**
   * Live only, for the entity types with a volume floor: the keys that had at least half of it
   * in the floor's window when the set was computed, and per key the rows matching the floor
   * feature's filter taken by ticks from the one that started the computation on (counted in
   * memory). Every such row of the window is in one or both: rows taken before that tick were
   * stored before it. A key outside `keys` had at most half - 1 matching events then, so with too few rows since it cannot reach the floor and is not
   * screened. The counts are dropped, and ticks screen every touched entity, when they pass
   * MAX_COUNTED_KEYS.
   */
  let hot: HotSet | null = null;
  /** Counts for the refresh in flight: rows taken by ticks since its snapshot. */
  let hotPending: Map<string, Map<string, number>> | null = null;
  let hotRefresh: { at: number; tookMs: number; running: boolean } = { at: 0, tookMs: 0, running: false };
  /**
   * Live only: per type, keys screened by id for which no rule could hold, with the rows taken
   * since that may change their features (detection/source.ts Parked). Valid for the rule set
   * they were screened for, while every tick's new rows are counted into them.
   */
  let parked: { prepared: ReturnType<typeof prepare>; keys: Map<string, Map<string, Parked>> } | null = null;
  const parkedCount = () => (parked ? [...parked.keys.values()].reduce((n, m) => n + m.size, 0) : 0);
  /** The parked keys of `entity` for the rules in force, created when missing. */
  function parkedKeysOf(entity: string): Map<string, Parked> {
    if (!parked || parked.prepared !== active) parked = { prepared: active, keys: new Map() };
    let keys = parked.keys.get(entity);
    if (!keys) parked.keys.set(entity, (keys = new Map()));
    return keys;
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
  async function contextFacts(nowMs: number, needed: Iterable<string>): Promise<Map<string, Record<string, number>>> {
    const age = nowMs - context.at;
    let missing = false;
    for (const key of needed) if (!context.facts.has(key)) missing = true;
    const due = age >= Math.max(5_000, 4 * context.tookMs) || (missing && age >= 500);
    if (deps.writtenBy) {
      if (due) await refreshContext(nowMs);
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
  }

  /** The running context refresh, or a new one (live detection only). */
  function startRefresh(nowMs: number): Promise<void> {
    if (!refreshing) {
      const pending = refreshContext(nowMs).finally(() => {
        refreshing = null;
      });
      // A failed refresh that no tick waits for is logged; the next tick due tries again.
      pending.catch((err: unknown) => deps.logger.warn('channel/merchant features not refreshed', { error: err instanceof Error ? err.message : String(err) }));
      refreshing = pending;
    }
    return refreshing;
  }

  async function refreshContext(nowMs: number): Promise<void> {
    const started = performance.now();
    // A rule set swapped in meanwhile has its own features: its result would be wrong for it.
    const prepared = active;
    const { features } = prepared;
    const facts = new Map<string, Record<string, number>>();
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
    if (prepared === active) context = { at: nowMs, tookMs: performance.now() - started, facts };
  }

  async function eventsOf(entity: EntityType, ids: string[], nowMs: number): Promise<Map<string, TimedEvent[]>> {
    const key = TOUCHED_COLUMN[entity as (typeof EVENT_ENTITIES)[number]];
    const fromSec = Math.floor((nowMs - longest(entity)) / 1000) - 1;
    const rows = await deps.http.query<EventRowOut>(
      entityEventsQuery(deps.database, entity, fromSec, deps.writtenBy?.(nowMs)),
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

  /**
   * Counts each floored type's keys of the new rows that may match the floor feature's filter
   * into `into` (per type, key -> rows): only those can bring a key closer to its floor.
   */
  function countKeys(into: Map<string, Map<string, number>>, rows: readonly Record<string, string | null>[], floors: ReadonlyMap<string, { filter: EventFilter | undefined }>) {
    for (const [entity, { filter }] of floors) {
      const column = TOUCHED_COLUMN[entity as (typeof EVENT_ENTITIES)[number]];
      let counts = into.get(entity);
      if (!counts) into.set(entity, (counts = new Map()));
      for (const row of rows) {
        const k = row[column];
        if (k && mayMatch(row, filter)) counts.set(k, (counts.get(k) ?? 0) + 1);
      }
    }
  }

  /**
   * Computes the hot set beside the ticks; the tick that starts it and those that take rows
   * meanwhile count them into hotPending, which becomes the new set's counts.
   */
  function startHotRefresh(nowMs: number): void {
    const prepared = active;
    // Parked keys not touched again until their horizon are screened when next touched anyway.
    for (const keys of parked?.keys.values() ?? []) for (const [k, p] of keys) if (p.until <= nowMs) keys.delete(k);
    hotRefresh = { ...hotRefresh, running: true };
    const pending = new Map<string, Map<string, number>>([...prepared.floors.keys()].map((e) => [e, new Map()]));
    hotPending = pending;
    const started = performance.now();
    // The first set of a leadership (or rule set): until it exists every touched entity is
    // screened, so it may use both threads, and each type's keys are used as soon as they are
    // ready (shortest window, so cheapest, first). A later refresh is swapped in whole: its
    // counts since start later than the set in use, so mixing the two would undercount.
    const first = hot === null;
    const floorsInOrder = [...prepared.floors].sort((a, b) => a[1].windowMs - b[1].windowMs);
    void (async () => {
      const keys = new Map<string, Set<string>>();
      for (const [entity, { floor, windowMs: w, filter }] of floorsInOrder) {
        const rows = await queryRows<{ k: string }>(
          deps.clickhouse,
          hotKeysQuery(deps.database, entity, Math.floor((nowMs - w) / 1000) - 1, Math.ceil(floor / 2), filter, first ? 2 : 1),
          `${entity} near volume floor`,
        );
        keys.set(entity, new Set(rows.map((r) => String(r.k))));
        if (first && prepared === active && hotPending === pending && (hot === null || hot.since === pending)) hot = { prepared, keys, since: pending };
      }
      // Kept only if still for the rules in force and the same leadership.
      if (prepared === active && hotPending === pending) {
        hot = { prepared, keys, since: pending };
        deps.logger.debug('hot set', { ms: Math.round(performance.now() - started), keys: Object.fromEntries([...keys].map(([e, k]) => [e, k.size])) });
      }
    })()
      .catch((err: unknown) => deps.logger.warn('entities near a volume floor not refreshed; every touched entity is screened meanwhile', { error: err instanceof Error ? err.message : String(err) }))
      .finally(() => {
        if (hotPending === pending) hotPending = null;
        hotRefresh = { at: nowMs, tookMs: performance.now() - started, running: false };
      });
  }

  async function tick(): Promise<void> {
    if (!deps.isLeader()) {
      seen = null;
      hot = null;
      hotPending = null;
      parked = null;
      stuckCheckedTo = new Map();
      backlogFromSec = null;
      stats.behind = false;
      return;
    }
    const nowMs = now();
    const t0 = performance.now();
    // A new leader (or a new rule set) has no context yet: start computing it now, so the first
    // tick with a candidate does not wait for all of it.
    if (context.at === 0 && !deps.writtenBy) void startRefresh(nowMs).catch(() => {});
    // The rule set this tick decides with: a reload meanwhile (setRuleSet) applies from the next tick.
    const prepared = active;
    const { ruleSet, evaluator, entitiesWithRules, rulesOf, screens, floors, parking, contextReaders, stuckThresholds, read, features } = prepared;
    const untilSec = deps.writtenBy?.(nowMs);
    // New rows are found by Kafka position, not by time: per partition, every offset above the
    // last one seen. Instances write batches of a partition in offset order, whereas a clock-based
    // watermark would skip a batch that took longer to land than another instance's later one.
    // ingested_at (the write attempt's time) only bounds the scan.
    const previous = seen ?? new Map<number, number>();
    const window = Math.floor((nowMs - (seen === null ? deps.startLookbackMs ?? 600_000 : SCAN_WINDOW_MS)) / 1000);
    const sinceSec = Math.max(deps.writtenFrom ?? 0, Math.min(window, backlogFromSec ?? window));
    const newRows = await queryRows<{ p: number; lo: string; o: string; n: string; channels: string[]; merchants: string[] }>(deps.clickhouse, newRowsQuery(deps.database, sinceSec, previous, untilSec, Math.floor((nowMs - longestWindow()) / 1000)), 'new rows');
    // Offsets of a partition only grow, so taking offsets up to base + share takes at most `share` rows.
    const share = Math.max(1, Math.floor((deps.maxRowsPerTick ?? 50_000) / Math.max(1, newRows.length)));
    const newest = new Map(previous);
    let taken = 0;
    let behind = false;
    for (const r of newRows) {
      const p = Number(r.p);
      const n = Number(r.n);
      // Offsets below the oldest new row are gaps or rows too old to matter: start the share at it.
      const base = Math.max(previous.get(p) ?? -1, Number(r.lo) - 1);
      if (n > share) behind = true;
      newest.set(p, n > share ? Math.min(Number(r.o), base + share) : Number(r.o));
      taken += Math.min(n, share);
    }
    const position = positionRange(previous, newest);
    const timings: Record<string, number> = { new_rows: performance.now() - t0 };

    // Volume floors (live only): which touched entities may have enough events for a rule.
    if (hot && hot.prepared !== active) hot = null;
    let nearFloor: Map<string, string[]> | null = null;
    // A hot set is refreshed while rows come in; the first one of a leadership (or rule set)
    // starts on its first tick, rows or not: after a quiet start it is in place when traffic
    // comes, instead of every touched entity being screened until it is.
    const hotDue = !hotRefresh.running && nowMs - hotRefresh.at >= HOT_REFRESH_EVERY_MS && (newRows.length > 0 || (hot === null && hotPending === null));
    if (floors.size > 0 && !deps.writtenBy && hotDue) startHotRefresh(nowMs);
    if (floors.size > 0 && !deps.writtenBy && newRows.length > 0) {
      const keysStarted = performance.now();
      const rows = hot || hotPending ? await queryRows<Record<string, string | null>>(deps.clickhouse, newKeysQuery(deps.database, sinceSec, position), 'new keys') : [];
      if (hotPending) {
        countKeys(hotPending, rows, floors);
        if (countedKeys(hotPending) > MAX_COUNTED_KEYS) hotPending = null;
      }
      // While the first set is used type by type, its counts are hotPending's.
      if (hot && hot.since !== hotPending) {
        countKeys(hot.since, rows, floors);
        if (countedKeys(hot.since) > MAX_COUNTED_KEYS) hot = null;
      }
      // Parked keys count every new row (none is missed: a tick without the rows drops them).
      if (parked && (parked.prepared !== prepared || !(hot || hotPending))) parked = null;
      if (parked) {
        for (const [entity, keys] of parked.keys) {
          const column = TOUCHED_COLUMN[entity as (typeof EVENT_ENTITIES)[number]];
          const columns = screens.get(entity as (typeof EVENT_ENTITIES)[number])!;
          for (const row of rows) {
            const k = row[column];
            const p = k ? keys.get(k) : undefined;
            if (p) growParked(columns, p, row);
          }
        }
      }
      if (hot) {
        nearFloor = new Map();
        for (const [entity, { floor }] of floors) {
          const column = TOUCHED_COLUMN[entity as (typeof EVENT_ENTITIES)[number]];
          // A type whose first set is not ready yet is screened in full.
          const inSet = hot.keys.get(entity);
          if (!inSet) continue;
          const since = hot.since.get(entity)!;
          const below = Math.ceil(floor / 2) - 1;
          const waiting = parked?.keys.get(entity);
          const columns = screens.get(entity as (typeof EVENT_ENTITIES)[number])!;
          const rules = rulesOf(entity as EntityType);
          const near = new Set<string>();
          const skipped = new Set<string>();
          for (const row of rows) {
            const k = row[column];
            if (!k || near.has(k) || skipped.has(k) || !(inSet.has(k) || below + (since.get(k) ?? 0) >= floor)) continue;
            const p = waiting?.get(k);
            // Only between its screen's now and its horizon (a clock stepped back is outside both).
            if (p && p.at <= nowMs && nowMs < p.until && !anyMayHold(rules, parkedBounds(columns, p))) {
              skipped.add(k);
              continue;
            }
            if (p) waiting!.delete(k);
            near.add(k);
          }
          nearFloor.set(entity, [...near]);
          stats.nearFloor += near.size;
          stats.parkedSkips += skipped.size;
        }
      }
      timings.new_keys = performance.now() - keysStarted;
    }

    // Stuck attempts fire on time passing, not on an event: every 10 s, per age threshold in the
    // rules, look at the attempts whose processing event crossed it since the last scan. One
    // that arrives already past it is a new row, screened below.
    const stuckDue = entitiesWithRules.has('order') && nowMs - lastStuckScan >= 10_000;
    if (stuckDue) lastStuckScan = nowMs;
    const stuckCuts = new Map<number, number>();
    let reconciledSeen: string | null = null;
    const neededContext = new Set(newRows.flatMap((r) => [...r.channels.map((c) => `channel|${c}`), ...r.merchants.map((m) => `merchant|${m}`)]));
    const candidates: Record<(typeof EVENT_ENTITIES)[number], Set<string>> = { ip: new Set(), device: new Set(), user: new Set(), order: new Set() };
    let hitCount = 0;

    /**
     * One entity type from screen to stored and published cases. The types run side by side and
     * each publishes its own cases as soon as they are decided: a card-testing IP does not wait
     * for the orders' 24-hour windows. (rule, entity) keys never span types, so their case
     * decisions cannot collide.
     */
    const detectType = async (entity: (typeof EVENT_ENTITIES)[number]) => {
      const found = candidates[entity];
      // Which entities may hit: every entity touched by the new rows, screened in SQL with exact
      // values or upper bounds of its features (detection/source.ts screenPlan). Only those for
      // which some rule may hold get the exact, reference computation below.
      if (newRows.length > 0) {
        const started = performance.now();
        const columns = screens.get(entity)!;
        const rules = rulesOf(entity);
        const having = screenHaving(rules, columns, nowMs);
        const near = nearFloor?.get(entity);
        // Keys screened by id come back whether or not a rule may hold (no HAVING), to be parked.
        const park = near ? parking.get(entity) : undefined;
        // Near a volume floor: only those entities, by id; otherwise every touched one.
        const rows = near
          ? near.length
            ? await deps.http.query<Record<string, string | number | null>>(
                entityScreenQuery(deps.database, entity, columns, nowMs, sinceSec, position, untilSec, park ? undefined : having, longest(entity), 'ids', park),
                { name: ENTITY_IDS_TABLE, structure: 'id String', rows: near.map((id) => ({ id })) },
                `${entity} screen`,
              )
            : []
          : await queryRows<Record<string, string | number | null>>(
              deps.clickhouse,
              entityScreenQuery(deps.database, entity, columns, nowMs, sinceSec, position, untilSec, having, longest(entity)),
              `${entity} screen`,
            );
        // Keys are parked only for the rules in force: after a reload during the screen, its keys
        // were judged by rules no longer in force.
        const waiting = park && prepared === active ? parkedKeysOf(entity) : undefined;
        for (const row of rows) {
          const key = String(row.entity_key);
          if (anyMayHold(rules, screenBounds(columns, row, nowMs))) {
            found.add(key);
            stats.screened++;
            continue;
          }
          if (!park || !waiting) continue;
          const p = parkedFrom(columns, row, nowMs, nowMs + park.horizonMs);
          if (!anyMayHold(rules, parkedBounds(columns, p))) waiting.set(key, p);
        }
        if (waiting && waiting.size > MAX_PARKED_PER_TYPE) waiting.clear();
        timings[`${entity}_screen`] = performance.now() - started;
      }
      if (entity === 'order' && stuckDue) {
        const fromSec = Math.floor((nowMs - 86_400_000) / 1000);
        for (const t of stuckThresholds) stuckCuts.set(t, Math.floor((nowMs - t) / 1000));
        const slices = [...stuckCuts].map(([t, cut]) => [stuckCheckedTo.get(t) ?? fromSec, cut] as const);
        const rows = slices.length ? await queryRows<{ oid: string }>(deps.clickhouse, stuckOrdersQuery(deps.database, fromSec, slices, untilSec), 'stuck orders') : [];
        for (const r of rows) found.add(r.oid);
        // The reconcile job's findings (late status changes, stuck attempts) feed the order rules:
        // each new run's orders are evaluated once, even if they received no event since.
        const reconciled = await queryRows<{ v: string; order_id: string }>(deps.clickhouse, reconciledOrdersQuery(deps.database, untilSec === undefined ? undefined : untilSec * 1000 + 999), 'reconciled orders');
        if (reconciled.length && reconciled[0]!.v !== reconciledVersion) {
          for (const r of reconciled) found.add(r.order_id);
          reconciledSeen = reconciled[0]!.v;
        }
      }
      if (found.size === 0) return;
      const ctxStarted = performance.now();
      const ctx = contextReaders.has(entity) ? await contextFacts(nowMs, neededContext) : context.facts;
      timings[`${entity}_context`] = performance.now() - ctxStarted;
      const hits: Hit[] = [];
      const ids = [...found];
      for (let i = 0; i < ids.length; i += 5_000) {
        const fetchStarted = performance.now();
        const events = await eventsOf(entity, ids.slice(i, i + 5_000), nowMs);
        timings[`${entity}_fetch`] = (timings[`${entity}_fetch`] ?? 0) + performance.now() - fetchStarted;
        const evalStarted = performance.now();
        for (const [entityId, list] of events) {
          const facts: Record<string, number> = computeFacts(ruleSet.catalog, { entity, entityId }, list, nowMs, read);
          const latest = list.reduce((a, b) => (b.occurredAtMs > a.occurredAtMs ? b : a));
          for (const key of [`channel|${latest.event.channel}`, `merchant|${latest.event.merchant_id}`]) {
            const c = ctx.get(key);
            if (c) Object.assign(facts, withoutOwn(c, features, list, nowMs));
          }
          stats.evaluated++;
          hits.push(...(await evaluator.evaluate(entity, entityId, facts)));
        }
        timings[`${entity}_eval`] = (timings[`${entity}_eval`] ?? 0) + performance.now() - evalStarted;
      }
      if (hits.length === 0) return;
      const casesStarted = performance.now();
      const { opened, updated } = await deps.cases.applyHits(hits, nowMs);
      for (const c of opened) deps.logger.info('case opened', { case_id: c.case_id, rule: c.rule_id, entity: `${c.entity_type} ${c.entity_id}`, severity: c.severity });
      hitCount += hits.length;
      stats.hits += hits.length;
      stats.opened += opened.length;
      stats.updated += updated.length;
      timings[`${entity}_cases`] = performance.now() - casesStarted;
    };
    // Every type is waited for, also when one fails: the tick is then repeated as a whole, and
    // none of its work may still be running when the next one starts.
    const outcomes = await Promise.allSettled(EVENT_ENTITIES.filter((e) => entitiesWithRules.has(e) && (newRows.length > 0 || (e === 'order' && stuckDue))).map(detectType));
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) throw failed.reason;
    stats.ticks++;
    stats.lastTickMs = now() - nowMs;
    deps.logger.debug('tick', { ms: stats.lastTickMs, rows: taken, behind, hits: hitCount, parked: parkedCount(), candidates: Object.fromEntries(EVENT_ENTITIES.map((e) => [e, candidates[e].size])), timings: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])) });
    if (reconciledSeen !== null) reconciledVersion = reconciledSeen;
    // Advance only after the cases were stored and published: a failed tick is repeated.
    seen = newest;
    if (stuckCuts.size) stuckCheckedTo = stuckCuts;
    backlogFromSec = behind ? sinceSec : null;
    stats.rows += taken;
    stats.behind = behind;
  }

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  // Ticks start every tickMs (a tick that takes longer is followed at once by the next), so
  // the time a tick takes does not add to the wait for the next one.
  const loop = () => {
    if (stopped) return;
    const started = Date.now();
    let failed = false;
    running = tick()
      .catch((err: unknown) => {
        failed = true;
        deps.logger.warn('detection tick failed; it is repeated on the next tick', { err });
      })
      .finally(() => {
        // Ticks start every tickMs. While detection has a backlog it takes at most about two
        // thirds of the time: its queries share the cores with ingest, and back-to-back ticks
        // during a burst halved ingest throughput (bench:ingest). Otherwise a tick's rows are
        // what arrived during the previous one, and a pause would only add to every case's
        // latency. After a failure it waits a full interval.
        const elapsed = Date.now() - started;
        const tickMs = deps.tickMs ?? 250;
        const wait = failed ? tickMs : Math.max(tickMs - elapsed, stats.behind ? elapsed / 2 : 0);
        if (!stopped) timer = setTimeout(loop, wait);
      });
  };
  return {
    start(): void {
      loop();
    },
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await running;
      await refreshing?.catch(() => {});
    },
    tick,
    /** Swaps in a new, already validated rule set; the next tick uses it. */
    setRuleSet(ruleSet: RuleSet): void {
      active = prepare(ruleSet);
      context = { at: 0, tookMs: 0, facts: new Map() };
    },
    ruleSet: (): RuleSet => active.ruleSet,
    stats: (): Readonly<DetectorStats> => ({ ...stats, floorsReady: hot !== null && hot.prepared === active && hot.keys.size === active.floors.size, parked: parkedCount() }),
  };
}
export type Detector = ReturnType<typeof createDetector>;
