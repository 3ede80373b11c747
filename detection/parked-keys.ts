import { anyMayHold } from '../rules/evaluate.ts';
import type { LoadedRule } from '../rules/load.ts';
import { TOUCHED_COLUMN, type EventEntity } from './entities.ts';
import { mayMatch, type NewKeyRow } from './positions.ts';
import type { ScreenColumn, ScreenRow } from './screen.ts';

/**
 * At most this many keys of one type are parked (about 250 bytes each: under 25 MB for the three
 * floored types); past it the type's parked keys are dropped, and are screened when next touched
 * as before. Expired ones are dropped at each hot set refresh.
 */
const MAX_PARKED_PER_TYPE = 30_000;

/**
 * How long a parked key's bounds are taken to hold: long enough to skip many ticks, short against
 * the windows (a rate's bound uses the part of its window this leaves).
 */
export const PARK_HORIZON_MS = 30_000;

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
  columns.length > 0 &&
  columns.every(
    ({ feature: f }) => f.aggregation === 'count' || f.aggregation === 'distinct_count' || f.aggregation === 'followed_by' || f.aggregation === 'rate',
  );

/** A parked key from its screen row (entityScreenQuery with `park`). */
export function parkedFrom(columns: readonly ScreenColumn[], row: ScreenRow, at: number, until: number): Parked {
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
export function growParked(columns: readonly ScreenColumn[], p: Parked, row: NewKeyRow): void {
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

type Rules = readonly Pick<LoadedRule, 'conditions'>[];

/**
 * What parked keys read of the rules in force (prepared.ts's PreparedRules, declared here so the
 * module that prepares rules depends on this one and not the other way round): each type's
 * screen columns. The object's identity tells one rule set from the next.
 */
export interface ScreenedRules {
  readonly screens: ReadonlyMap<EventEntity, readonly ScreenColumn[]>;
}

/**
 * Live only: per type, keys screened by id for which no rule could hold, with the rows taken
 * since that may change their features (Parked). Valid for the rule set they were screened
 * for, while every tick's new rows are counted into them.
 */
export function createParkedKeys(deps: { current: () => ScreenedRules }) {
  let parked: { prepared: ScreenedRules; keys: Map<string, Map<string, Parked>> } | null = null;

  /** The parked keys of `entity` for the rules in force, created when missing. */
  function keysOf(entity: string): Map<string, Parked> {
    const current = deps.current();
    if (!parked || parked.prepared !== current) parked = { prepared: current, keys: new Map() };
    let keys = parked.keys.get(entity);
    if (!keys) parked.keys.set(entity, (keys = new Map()));
    return keys;
  }

  return {
    /** Keys parked now. */
    count(): number {
      return parked ? [...parked.keys.values()].reduce((n, m) => n + m.size, 0) : 0;
    },

    /** Drops the keys past their horizon: they are screened when next touched anyway. */
    dropExpired(nowMs: number): void {
      for (const keys of parked?.keys.values() ?? []) for (const [k, p] of keys) if (p.until <= nowMs) keys.delete(k);
    },

    /**
     * Counts a tick's new rows (positions.ts newKeysQuery) into the parked keys they touch. None
     * may be missed: the keys are dropped when they were parked for other rules than `prepared`
     * or when the tick did not read the rows (`counted` false).
     */
    grow(rows: readonly NewKeyRow[], prepared: ScreenedRules, counted: boolean): void {
      if (parked && (parked.prepared !== prepared || !counted)) parked = null;
      if (!parked) return;
      for (const [entity, keys] of parked.keys) {
        const column = TOUCHED_COLUMN[entity as EventEntity];
        const columns = prepared.screens.get(entity as EventEntity)!;
        for (const row of rows) {
          const k = row[column];
          const p = k ? keys.get(k) : undefined;
          if (p) growParked(columns, p, row);
        }
      }
    },

    /**
     * Whether a touched key of `entity` stays parked at `nowMs`: between its screen's now and its
     * horizon (a clock stepped back is outside both), its bounds still let none of `rules` hold.
     * A key that does not is unparked, to be screened. Undefined when none of the type is parked.
     */
    stays(entity: EventEntity, rules: Rules, columns: readonly ScreenColumn[], nowMs: number): ((key: string) => boolean) | undefined {
      const waiting = parked?.keys.get(entity);
      if (!waiting) return undefined;
      return (key) => {
        const p = waiting.get(key);
        if (!p) return false;
        if (p.at <= nowMs && nowMs < p.until && !anyMayHold(rules, parkedBounds(columns, p))) return true;
        waiting.delete(key);
        return false;
      };
    },

    /**
     * Parks the keys of a screen by id (screen.ts with `park`) for which no rule could hold, with
     * their bounds until `nowMs + horizonMs`. `park(key, row)` takes each such row; `done()` ends
     * the screen (a type over MAX_PARKED_PER_TYPE keys is dropped).
     */
    parker(
      entity: EventEntity,
      rules: Rules,
      columns: readonly ScreenColumn[],
      nowMs: number,
      horizonMs: number,
    ): { park(key: string, row: ScreenRow): void; done(): void } {
      const waiting = keysOf(entity);
      return {
        park(key, row) {
          const p = parkedFrom(columns, row, nowMs, nowMs + horizonMs);
          if (!anyMayHold(rules, parkedBounds(columns, p))) waiting.set(key, p);
        },
        done() {
          if (waiting.size > MAX_PARKED_PER_TYPE) waiting.clear();
        },
      };
    },

    /** Leadership lost: the next leadership's ticks did not count the rows since. */
    reset(): void {
      parked = null;
    },
  };
}
export type ParkedKeys = ReturnType<typeof createParkedKeys>;
