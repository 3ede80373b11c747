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

/** At most this many changes per poll are announced; pages reload their data anyway. */
const POLL_ROWS = 500;

/** The statements the feed sends (listed in storage/catalog.ts). */
export function liveQueries(database: string) {
  const versions = ident(database, 'case_versions');
  return {
    latest: () => `SELECT toString(max(version)) AS v FROM ${versions.text}`,
    since: (version: string) =>
      sql`SELECT case_id, version, status, severity FROM ${versions} WHERE version > toUInt64(${version}) ORDER BY version LIMIT ${POLL_ROWS}`,
  };
}

/**
 * Case changes for the browsers' live updates, from ClickHouse: whoever made them (detection,
 * the CLI, another console instance), every instance sees them. One poll per process while at
 * least one browser listens, however many listen.
 */
export function createCaseFeed(deps: { clickhouse: ClickHouseClient; database: string; intervalMs: number; logger: Logger }) {
  const q = liveQueries(deps.database);
  const listeners = new Set<(changes: CaseChangeNotice[]) => void>();
  let timer: NodeJS.Timeout | undefined;
  let last: string | undefined;
  let polling = false;

  async function poll(): Promise<void> {
    if (polling) return;
    polling = true;
    try {
      if (last === undefined) {
        last = (await queryRows<{ v: string }>(deps.clickhouse, q.latest(), 'live feed start'))[0]?.v ?? '0';
        return;
      }
      const rows = await queryRows<CaseChangeNotice>(deps.clickhouse, q.since(last), 'live feed');
      if (rows.length === 0) return;
      last = rows.at(-1)!.version;
      for (const listen of listeners) listen(rows);
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
        void poll();
        timer = setInterval(() => void poll(), deps.intervalMs);
      }
      return () => {
        listeners.delete(listen);
        if (listeners.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
          last = undefined;
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
