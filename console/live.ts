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

/** At most this many changes per poll are read, the newest; pages reload their data on any change anyway. */
const POLL_ROWS = 2_000;

/**
 * Each poll reads again the changes of this long before the newest one it has seen. A version is
 * the writer's clock when it decided the change, and its insert may become visible after a later
 * version's (several writers, a slow insert): such a change is still announced, once, if it
 * becomes visible within this time.
 */
export const LIVE_OVERLAP_MS = 60_000;

/** The statements the feed sends (listed in test/sql-catalog.ts). */
export function liveQueries(database: string) {
  // case_changes (migration 023) is ordered by version: a poll reads only the changes it asks for.
  const changes = ident(database, 'case_changes');
  return {
    /** The newest changes with a version of at least `from`, one row per (case, version): a version may be copied twice. */
    since: (from: number) =>
      sql`SELECT case_id, version, status, severity FROM ${changes} WHERE version >= ${Math.max(0, Math.floor(from))}
  ORDER BY version DESC, case_id LIMIT 1 BY case_id, version LIMIT ${POLL_ROWS}`,
  };
}

/**
 * What a poll announces: the changes not announced before, oldest first. `seen` (case id and
 * version) is updated, and forgets what is older than `LIVE_OVERLAP_MS` before the newest
 * version, which the next poll no longer reads. Returns the new newest version too. Pure but for `seen`.
 */
export function newChanges(rows: readonly CaseChangeNotice[], seen: Map<string, number>, newest: number): { fresh: CaseChangeNotice[]; newest: number } {
  const fresh: CaseChangeNotice[] = [];
  for (const r of rows) {
    const key = `${r.version}|${r.case_id}`;
    if (seen.has(key)) continue;
    seen.set(key, Number(r.version));
    fresh.push(r);
    newest = Math.max(newest, Number(r.version));
  }
  for (const [key, version] of seen) if (version < newest - LIVE_OVERLAP_MS) seen.delete(key);
  fresh.sort((a, b) => Number(a.version) - Number(b.version) || (a.case_id < b.case_id ? -1 : 1));
  return { fresh, newest };
}

/**
 * The first poll after the first browser subscribed at `startedAt` (it reads from the overlap
 * before it): changes with an older version are marked seen and not announced (the page already
 * shows them); the others are news.
 */
export function firstPoll(rows: readonly CaseChangeNotice[], seen: Map<string, number>, startedAt: number): { fresh: CaseChangeNotice[]; newest: number } {
  // The newest version kept is one read (the writers' clocks), never this process's own clock:
  // were it ahead of theirs by more than the overlap, later polls would read above their changes.
  const before = newChanges(
    rows.filter((r) => Number(r.version) < startedAt),
    seen,
    startedAt - LIVE_OVERLAP_MS,
  );
  return newChanges(
    rows.filter((r) => Number(r.version) >= startedAt),
    seen,
    before.newest,
  );
}

/**
 * Case changes for the browsers' live updates, from ClickHouse: whoever made them (detection,
 * the CLI, another console instance), every instance sees them. One poll per process while at
 * least one browser listens, however many listen.
 */
export function createCaseFeed(deps: { clickhouse: ClickHouseClient; database: string; intervalMs: number; logger: Logger; now?: () => number }) {
  const q = liveQueries(deps.database);
  const listeners = new Set<(changes: CaseChangeNotice[]) => void>();
  let timer: NodeJS.Timeout | undefined;
  /** The newest version seen; undefined until the first poll of a subscription has read it. */
  let newest: number | undefined;
  /** When the first listener subscribed (this process's clock, as versions are their writers'). */
  let startedAt = 0;
  const seen = new Map<string, number>();
  let polling = false;

  async function poll(): Promise<void> {
    if (polling) return;
    polling = true;
    try {
      if (newest === undefined) {
        // What was stored before the first browser listened is not news; what follows is, even a
        // change stored between the subscription and this first poll's read (a slow server).
        const from = startedAt;
        const rows = await queryRows<CaseChangeNotice>(deps.clickhouse, q.since(from - LIVE_OVERLAP_MS), 'live feed');
        const split = firstPoll(rows, seen, from);
        newest = split.newest;
        if (split.fresh.length > 0) for (const listen of listeners) listen(split.fresh);
        return;
      }
      const result = newChanges(await queryRows<CaseChangeNotice>(deps.clickhouse, q.since(newest - LIVE_OVERLAP_MS), 'live feed'), seen, newest);
      newest = result.newest;
      if (result.fresh.length === 0) return;
      for (const listen of listeners) listen(result.fresh);
    } catch (err) {
      // The next poll tries again; browsers keep their connection.
      deps.logger.warn('live feed poll failed', { err });
    } finally {
      polling = false;
    }
  }

  return {
    /** Calls `listen` with each batch of new changes until the returned function is called. */
    subscribe(listen: (changes: CaseChangeNotice[]) => void): () => void {
      listeners.add(listen);
      if (!timer) {
        startedAt = (deps.now ?? Date.now)();
        void poll();
        timer = setInterval(() => void poll(), deps.intervalMs);
      }
      return () => {
        listeners.delete(listen);
        if (listeners.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
          newest = undefined;
          seen.clear();
        }
      };
    },
    stop(): void {
      listeners.clear();
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
export type CaseFeed = ReturnType<typeof createCaseFeed>;
