import type { Logger } from '../log/index.ts';
import { anyMayHold } from '../rules/evaluate.ts';
import { fieldsOf, windowMs } from '../rules/features.ts';
import type { LoadedRule } from '../rules/load.ts';
import { entityKeyField, type EntityType, type EventFilter, type Feature } from '../rules/schema.ts';
import { ident, sql, sqlFragment } from '../storage/sql.ts';
import { TOUCHED_COLUMN, type EventEntity } from './entities.ts';
import { mayMatch, type NewKeyRow } from './positions.ts';
import { filterSql } from './query-parts.ts';

/**
 * Volume floors and hot sets: most entities are far from the number of events any of their
 * rules needs, so live ticks screen only the touched entities that may have reached it.
 */

/** The fewest events matching `filter` in `windowMs` (of feature `feature`) without which no rule of a type can hold. */
export interface VolumeFloor {
  feature: string;
  floor: number;
  windowMs: number;
  filter: EventFilter | undefined;
}

/** The volume floor of each floored entity type, as prepared.ts computes them once per rule set. */
export type Floors = ReadonlyMap<EventEntity, VolumeFloor>;

/**
 * What hot sets read of the rules in force (prepared.ts's PreparedRules, declared here so the
 * module that prepares rules depends on this one and not the other way round). The object's
 * identity tells one rule set from the next.
 */
export interface FlooredRules {
  readonly floors: Floors;
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
export function volumeFloor(rules: readonly Pick<LoadedRule, 'conditions'>[], features: readonly Feature[]): VolumeFloor | null {
  if (!rules.length) return null;
  let best: (VolumeFloor & { narrow: number }) | null = null;
  for (const f of features) {
    const counted = f.aggregation === 'count' || ((f.aggregation === 'distinct_count' || f.aggregation === 'followed_by') && fieldsOf(f).length > 0);
    if (!counted) continue;
    const mayHoldWith = (n: number) => anyMayHold(rules, new Map([[f.id, { lo: 0, hi: n }]]));
    if (mayHoldWith(2)) continue;
    let n = 3;
    while (n <= 100_000 && !mayHoldWith(n)) n++;
    if (n > 100_000) continue;
    const narrow = Object.keys(f.filter ?? {}).length;
    if (!best || narrow > best.narrow || (narrow === best.narrow && n > best.floor))
      best = { feature: f.id, floor: n, windowMs: windowMs[f.window], filter: f.filter, narrow };
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
  const matching = sqlFragment`occurred_at >= toDateTime(${fromSec}, 'UTC') AND ${filterSql(filter)} AND ${key} != ''`;
  const events = ident(database, 'payment_events');
  return sql`SELECT ${key} AS k FROM ${events} WHERE ${matching} GROUP BY k HAVING count() >= ${atLeast} SETTINGS max_threads = ${threads}`;
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

/** Per floored entity type, key -> rows that may match the floor feature's filter. */
type Counts = Map<string, Map<string, number>>;

const countedKeys = (counts: ReadonlyMap<string, ReadonlyMap<string, number>>): number => [...counts.values()].reduce((n, m) => n + m.size, 0);

/**
 * Counts each floored type's keys of the new rows that may match the floor feature's filter
 * into `into` (per type, key -> rows): only those can bring a key closer to its floor.
 */
function countKeys(into: Counts, rows: readonly NewKeyRow[], floors: ReadonlyMap<string, { filter: EventFilter | undefined }>) {
  for (const [entity, { filter }] of floors) {
    const column = TOUCHED_COLUMN[entity as EventEntity];
    let counts = into.get(entity);
    if (!counts) into.set(entity, (counts = new Map()));
    for (const row of rows) {
      const k = row[column];
      if (k && mayMatch(row, filter)) counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  }
}

interface HotSet {
  prepared: FlooredRules;
  /** Per floored entity type, the keys that had at least half the floor (events matching the floor feature's filter) when the set was computed. */
  keys: Map<string, Set<string>>;
  /** Per floored entity type, rows matching the floor feature's filter taken by the ticks that started from the set's refresh on, per key. */
  since: Counts;
}

/** The touched keys of each floored type a tick screens by id, with how many were near a floor and how many of those stayed parked. */
export interface NearFloor {
  ids: Map<EventEntity, string[]>;
  near: number;
  skipped: number;
}

export interface HotSetsDeps {
  /** The keys of `entity` with at least `atLeast` stored events matching `filter` since `fromSec` (hotKeysQuery on `threads` threads). */
  readKeys(entity: EventEntity, fromSec: number, atLeast: number, filter: EventFilter | undefined, threads: number): Promise<string[]>;
  logger: Logger;
  /** The rules in force: a set is used only for the rules it was computed for. */
  current: () => FlooredRules;
}

/**
 * Live only, for the entity types with a volume floor: the keys that had at least half of it
 * in the floor's window when the set was computed, and per key the rows matching the floor
 * feature's filter taken by ticks from the one that started the computation on (counted in
 * memory). Every such row of the window is in one or both: rows taken before that tick were
 * stored before it. A key outside the set had at most half - 1 matching events then, so with too
 * few rows since it cannot reach the floor and is not screened. The counts are dropped, and
 * ticks screen every touched entity, when they pass MAX_COUNTED_KEYS.
 */
export function createHotSets(deps: HotSetsDeps) {
  let hot: HotSet | null = null;
  /** Counts for the refresh in flight: rows taken by ticks since its snapshot. */
  let pending: Counts | null = null;
  let refreshed: { at: number; tookMs: number; running: boolean } = { at: 0, tookMs: 0, running: false };

  return {
    /** Whether ticks screen by volume floor: a set for the rules in force is in place for every floored type. */
    ready(): boolean {
      const current = deps.current();
      return hot !== null && hot.prepared === current && hot.keys.size === current.floors.size;
    },

    /** Drops a set computed for rules no longer in force. */
    dropStale(): void {
      if (hot && hot.prepared !== deps.current()) hot = null;
    },

    /**
     * Whether a refresh starts now. A set is refreshed while rows come in; the first one of a
     * leadership (or rule set) starts on its first tick, rows or not: after a quiet start it is
     * in place when traffic comes, instead of every touched entity being screened until it is.
     */
    due(nowMs: number, anyRows: boolean): boolean {
      return !refreshed.running && nowMs - refreshed.at >= HOT_REFRESH_EVERY_MS && (anyRows || (hot === null && pending === null));
    },

    /**
     * Computes a set for the rules in force beside the ticks; the tick that starts it and those
     * that take rows meanwhile count them into its pending counts, which become the set's.
     * Resolves when it is done (a failure is logged; ticks screen every touched entity meanwhile).
     */
    refresh(nowMs: number): Promise<void> {
      const prepared = deps.current();
      refreshed = { ...refreshed, running: true };
      const counts: Counts = new Map<string, Map<string, number>>([...prepared.floors.keys()].map((e) => [e, new Map()]));
      pending = counts;
      const started = performance.now();
      // The first set of a leadership (or rule set): until it exists every touched entity is
      // screened, so it may use both threads, and each type's keys are used as soon as they are
      // ready (shortest window, so cheapest, first). A later refresh is swapped in whole: its
      // counts since start later than the set in use, so mixing the two would undercount.
      const first = hot === null;
      const floorsInOrder = [...prepared.floors].sort((a, b) => a[1].windowMs - b[1].windowMs);
      return (async () => {
        const keys = new Map<string, Set<string>>();
        for (const [entity, { floor, windowMs: w, filter }] of floorsInOrder) {
          keys.set(entity, new Set(await deps.readKeys(entity, Math.floor((nowMs - w) / 1000) - 1, Math.ceil(floor / 2), filter, first ? 2 : 1)));
          if (first && prepared === deps.current() && pending === counts && (hot === null || hot.since === counts)) hot = { prepared, keys, since: counts };
        }
        // Kept only if still for the rules in force and the same leadership.
        if (prepared === deps.current() && pending === counts) {
          hot = { prepared, keys, since: counts };
          deps.logger.debug('hot set', { ms: Math.round(performance.now() - started), keys: Object.fromEntries([...keys].map(([e, k]) => [e, k.size])) });
        }
      })()
        .catch((err: unknown) =>
          deps.logger.warn('entities near a volume floor not refreshed; every touched entity is screened meanwhile', {
            error: err instanceof Error ? err.message : String(err),
          }),
        )
        .finally(() => {
          if (pending === counts) pending = null;
          refreshed = { at: nowMs, tookMs: performance.now() - started, running: false };
        });
    },

    /** Whether new rows are counted (a set is in place or being computed): only then are their keys worth reading. */
    counting(): boolean {
      return hot !== null || pending !== null;
    },

    /** Counts a tick's new rows (positions.ts newKeysQuery) into the pending refresh and the set in use. */
    count(rows: readonly NewKeyRow[], floors: Floors): void {
      if (pending) {
        countKeys(pending, rows, floors);
        if (countedKeys(pending) > MAX_COUNTED_KEYS) pending = null;
      }
      // While the first set is used type by type, its counts are the pending ones.
      if (hot && hot.since !== pending) {
        countKeys(hot.since, rows, floors);
        if (countedKeys(hot.since) > MAX_COUNTED_KEYS) hot = null;
      }
    },

    /**
     * Per floored type whose set is ready, the touched keys that may have reached the floor: in
     * the set, or with enough rows since. `parkedFor` gives, per type, whether a key stays
     * parked (parked-keys.ts); those are left out. Null without a set: every touched entity is screened.
     */
    nearFloor(rows: readonly NewKeyRow[], floors: Floors, parkedFor: (entity: EventEntity) => ((key: string) => boolean) | undefined): NearFloor | null {
      if (!hot) return null;
      const out: NearFloor = { ids: new Map(), near: 0, skipped: 0 };
      for (const [entity, { floor }] of floors) {
        const column = TOUCHED_COLUMN[entity];
        // A type whose first set is not ready yet is screened in full.
        const inSet = hot.keys.get(entity);
        if (!inSet) continue;
        const since = hot.since.get(entity)!;
        const below = Math.ceil(floor / 2) - 1;
        const stays = parkedFor(entity);
        const near = new Set<string>();
        const skipped = new Set<string>();
        for (const row of rows) {
          const k = row[column];
          if (!k || near.has(k) || skipped.has(k) || !(inSet.has(k) || below + (since.get(k) ?? 0) >= floor)) continue;
          if (stays?.(k)) {
            skipped.add(k);
            continue;
          }
          near.add(k);
        }
        out.ids.set(entity, [...near]);
        out.near += near.size;
        out.skipped += skipped.size;
      }
      return out;
    },

    /** Leadership lost: a refresh in flight is not taken, and the next leadership starts a first set. */
    reset(): void {
      hot = null;
      pending = null;
    },
  };
}
export type HotSets = ReturnType<typeof createHotSets>;
