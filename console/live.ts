import type { Logger } from '../log/index.ts';
import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, sql } from '../storage/sql.ts';

/** One stored case change, as the live feed announces it. */
export interface CaseChangeNotice {
  case_id: string;
  version: string;
  status: string;
  severity: string;
}

/** A change as a poll reads it: with its entity, by which case_state is looked up. */
export interface CaseChangeRow extends CaseChangeNotice {
  entity_type: string;
  entity_id: string;
}

/** At most this many changes per poll are read, the newest; pages reload their data on any change anyway. */
const POLL_ROWS = 2_000;

/** At most this many changes are looked up in case_state per statement (bounds the statement's size). */
const CHECK_ROWS = 200;

/**
 * Each poll reads again the changes of this long before the newest one it has seen. A version is
 * the writer's clock when it decided the change, and its insert may become visible after a later
 * version's (several writers, a slow insert): such a change is still announced, once, if it
 * becomes visible within this time. A change case_state does not hold yet is read again too.
 */
export const LIVE_OVERLAP_MS = 60_000;

/** The statements the feed sends (listed in test/sql-catalog.ts). */
export function liveQueries(database: string) {
  // case_feed (migration 026) is ordered by version: a poll reads only the changes it asks for.
  const changes = ident(database, 'case_feed');
  const state = ident(database, 'case_state');
  return {
    /** The newest changes with a version of at least `from`, one row per (case, version): a version may be copied twice. */
    since: (from: number) =>
      sql`SELECT case_id, version, status, severity, entity_type, entity_id FROM ${changes} WHERE version >= ${Math.max(0, Math.floor(from))}
  ORDER BY version DESC, case_id LIMIT 1 BY case_id, version LIMIT ${POLL_ROWS}`,
    /**
     * The newest version case_state holds of each of these cases, found by its key. The inbox
     * reads case_state, filled by another view of the same INSERT, possibly later: a change is
     * announced only once this reaches its version, so a page reloaded for it shows it.
     */
    held: (rows: readonly CaseChangeRow[]) =>
      sql`SELECT case_id, max(version) AS held_version FROM ${state}
  WHERE entity_type IN ${[...new Set(rows.map((r) => r.entity_type))]} AND entity_id IN ${[...new Set(rows.map((r) => r.entity_id))]}
    AND case_id IN ${[...new Set(rows.map((r) => r.case_id))]}
  GROUP BY case_id`,
  };
}

/** How `seen` and `waitingSince` name a change: its version and case. */
const changeKey = (c: CaseChangeNotice): string => `${c.version}|${c.case_id}`;

/** The rows of a poll not announced before, one per (case, version). Pure. */
export function unseen<T extends CaseChangeNotice>(rows: readonly T[], seen: ReadonlyMap<string, number>): T[] {
  const out = new Map<string, T>();
  for (const r of rows) {
    const key = changeKey(r);
    if (!seen.has(key) && !out.has(key)) out.set(key, r);
  }
  return [...out.values()];
}

/**
 * Marks `ready` announced in `seen` and returns them oldest first, with the new newest version.
 * `seen` forgets what is older than `LIVE_OVERLAP_MS` before the newest version, which the next
 * poll no longer reads. Pure but for `seen`.
 */
export function announce<T extends CaseChangeNotice>(ready: readonly T[], seen: Map<string, number>, newest: number): { fresh: T[]; newest: number } {
  const fresh = unseen(ready, seen);
  for (const r of fresh) {
    seen.set(changeKey(r), Number(r.version));
    newest = Math.max(newest, Number(r.version));
  }
  for (const [key, version] of seen) if (version < newest - LIVE_OVERLAP_MS) seen.delete(key);
  fresh.sort((a, b) => Number(a.version) - Number(b.version) || (a.case_id < b.case_id ? -1 : 1));
  return { fresh, newest };
}

/**
 * The first poll after the first browser subscribed at `startedAt` (it reads from twice the
 * overlap before it): changes with an older version are marked seen and never announced (the page
 * already shows them); the others are `candidates`, news once the pages can read them.
 */
export function firstPoll<T extends CaseChangeNotice>(rows: readonly T[], seen: Map<string, number>, startedAt: number): { candidates: T[]; newest: number } {
  // The newest version kept is one read (the writers' clocks), never this process's own clock:
  // were it ahead of theirs by more than the overlap, later polls would read above their changes.
  const before = announce(
    rows.filter((r) => Number(r.version) < startedAt),
    seen,
    startedAt - LIVE_OVERLAP_MS,
  );
  return {
    candidates: unseen(
      rows.filter((r) => Number(r.version) >= startedAt),
      seen,
    ),
    newest: before.newest,
  };
}

/**
 * The candidates the pages can read: case_state (`held`: its newest version per case) holds their
 * version. The others wait in `waitingSince` (key: when this process first found it waiting) and
 * stay unseen, so the next poll reads them again; one still waiting after LIVE_OVERLAP_MS (its
 * INSERT failed between the two views) is let through, so it is not looked up forever. Pure but
 * for `waitingSince`, which keeps only the candidates still waiting.
 */
export function readable<T extends CaseChangeNotice>(
  candidates: readonly T[],
  held: ReadonlyMap<string, number>,
  waitingSince: Map<string, number>,
  now: number,
): T[] {
  const ready: T[] = [];
  const still = new Map<string, number>();
  for (const c of candidates) {
    const key = changeKey(c);
    const since = waitingSince.get(key) ?? now;
    if ((held.get(c.case_id) ?? -1) >= Number(c.version) || now - since >= LIVE_OVERLAP_MS) ready.push(c);
    else still.set(key, since);
  }
  waitingSince.clear();
  for (const [key, since] of still) waitingSince.set(key, since);
  return ready;
}

/**
 * Case changes for the browsers' live updates, from ClickHouse: whoever made them (detection,
 * the CLI, another console instance), every instance sees them. One poll per process while at
 * least one browser listens, however many listen.
 */
export function createCaseFeed(deps: { clickhouse: ClickHouseClient; database: string; intervalMs: number; logger: Logger; now?: () => number }) {
  const q = liveQueries(deps.database);
  const listeners = new Set<(changes: CaseChangeNotice[]) => void>();
  const clock = deps.now ?? Date.now;
  let timer: NodeJS.Timeout | undefined;
  /**
   * What the polls since the first listener subscribed know. A new object when listeners come back
   * after all had left: a poll still running from before writes into the old one, not this one.
   */
  interface Session {
    /** When the first listener subscribed (this process's clock, as versions are their writers'). */
    startedAt: number;
    /** The newest version seen; undefined until the first poll has read it. */
    newest?: number;
    seen: Map<string, number>;
    waitingSince: Map<string, number>;
    polling: boolean;
  }
  let session: Session | undefined;

  /** The newest version case_state holds of each candidate's case, looked up by key in bounded statements. */
  async function heldVersions(candidates: readonly CaseChangeRow[]): Promise<Map<string, number>> {
    const held = new Map<string, number>();
    for (let i = 0; i < candidates.length; i += CHECK_ROWS) {
      const rows = await queryRows<{ case_id: string; held_version: string }>(deps.clickhouse, q.held(candidates.slice(i, i + CHECK_ROWS)), 'live feed check');
      for (const r of rows) held.set(r.case_id, Number(r.held_version));
    }
    return held;
  }

  async function poll(): Promise<void> {
    const s = session;
    if (!s || s.polling) return;
    s.polling = true;
    try {
      let candidates: CaseChangeRow[];
      let base: number;
      if (s.newest === undefined) {
        // What was stored before the first browser listened is not news; what follows is, even a
        // change stored between the subscription and this first poll's read (a slow server). The
        // read goes back twice the overlap: the next polls read from the overlap before the newest
        // version kept, which may be as old as the overlap before the subscription, and find all of
        // it seen.
        const rows = await queryRows<CaseChangeRow>(deps.clickhouse, q.since(s.startedAt - 2 * LIVE_OVERLAP_MS), 'live feed');
        ({ candidates, newest: base } = firstPoll(rows, s.seen, s.startedAt));
        s.newest = base;
      } else {
        base = s.newest;
        candidates = unseen(await queryRows<CaseChangeRow>(deps.clickhouse, q.since(base - LIVE_OVERLAP_MS), 'live feed'), s.seen);
      }
      if (candidates.length === 0) return;
      // A change case_state does not hold yet stays unseen: the next poll reads it again.
      const result = announce(readable(candidates, await heldVersions(candidates), s.waitingSince, clock()), s.seen, base);
      s.newest = result.newest;
      if (result.fresh.length === 0 || session !== s) return;
      const notices = result.fresh.map(({ case_id, version, status, severity }) => ({ case_id, version, status, severity }));
      for (const listen of listeners) listen(notices);
    } catch (err) {
      // The next poll tries again; browsers keep their connection.
      deps.logger.warn('live feed poll failed', { err });
    } finally {
      s.polling = false;
    }
  }

  return {
    /** Calls `listen` with each batch of new changes until the returned function is called. */
    subscribe(listen: (changes: CaseChangeNotice[]) => void): () => void {
      listeners.add(listen);
      if (!timer) {
        session = { startedAt: clock(), seen: new Map(), waitingSince: new Map(), polling: false };
        void poll();
        timer = setInterval(() => void poll(), deps.intervalMs);
      }
      return () => {
        listeners.delete(listen);
        if (listeners.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
          session = undefined;
        }
      };
    },
    stop(): void {
      listeners.clear();
      if (timer) clearInterval(timer);
      timer = undefined;
      session = undefined;
    },
  };
}
export type CaseFeed = ReturnType<typeof createCaseFeed>;
