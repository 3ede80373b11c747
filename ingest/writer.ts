import type { Logger } from '../log/index.ts';
import type { IngestMetrics } from '../metrics/registry.ts';
import type { ClickHouseHttp } from '../storage/http.ts';
import { ident, raw, sql, type SqlFragment } from '../storage/sql.ts';
import { lineOf, toDateTimeText, type PendingRow } from './records.ts';


/** Keeps the first row of each event_id: a redelivery inside one batch counts once. */
export function uniqueByEventId<R extends { event_id: string }>(rows: readonly R[]): R[] {
  const seen = new Set<string>();
  const out: R[] = [];
  for (const row of rows) {
    if (seen.has(row.event_id)) continue;
    seen.add(row.event_id);
    out.push(row);
  }
  return out;
}

/** Name of the external table carrying a batch's event ids to the look-up. */
export const LOOKUP_IDS_TABLE = 'batch_ids';

/** Above this many distinct seconds in one batch the look-up uses a time range instead of a list. */
const MAX_LOOKUP_SECONDS = 2000;

/**
 * The look-up of already stored ids among a batch. The ids travel as the external table
 * `batch_ids` (see storage/external.ts), not as SQL literals. The batch's distinct
 * `occurred_at` seconds narrow the scan through the primary key: a late event in the batch
 * adds one second to read, where a min..max range would read everything in between.
 */
export function dedupLookupQuery(table: SqlFragment, rows: readonly { occurred_at: string }[]): string {
  const seconds = new Set<string>();
  for (const r of rows) seconds.add(r.occurred_at);
  let timeFilter: string;
  if (seconds.size <= MAX_LOOKUP_SECONDS) {
    timeFilter = sql`occurred_at IN ${[...seconds].map((t) => raw(sql`toDateTime(${t}, 'UTC')`))}`;
  } else {
    const sorted = [...seconds].sort();
    timeFilter = sql`occurred_at >= toDateTime(${sorted[0]!}, 'UTC') AND occurred_at <= toDateTime(${sorted[sorted.length - 1]!}, 'UTC')`;
  }
  return sql`SELECT event_id FROM ${table} WHERE ${raw(timeFilter)} AND event_id IN ${raw(LOOKUP_IDS_TABLE)}`;
}

export interface WriteResult {
  stored: number;
  duplicates: number;
}

/**
 * Writes event rows so that each event_id is stored once: rows whose (occurred_at, event_id) is
 * already in the table are skipped. The look-up runs on every attempt, so an insert that
 * succeeded on the server but whose answer was lost (timeout, crash) is not written again.
 */
export function createEventWriter(deps: { http: ClickHouseHttp; database: string; logger: Logger; metrics: IngestMetrics }) {
  const table = ident(deps.database, 'payment_events');

  async function existingIds(rows: readonly PendingRow[]): Promise<Set<string>> {
    const ids = { name: LOOKUP_IDS_TABLE, structure: 'event_id String', rows: rows.map((r) => ({ event_id: r.event_id })) };
    const found = await deps.http.query<{ event_id: string }>(dedupLookupQuery(table, rows), ids, 'dedup look-up');
    return new Set(found.map((r) => r.event_id));
  }

  return {
    /** One write attempt: look up, then insert what is new. Throws PaysentinelError (retriable when it may help). */
    async write(rows: readonly PendingRow[]): Promise<WriteResult> {
      const unique = uniqueByEventId(rows);
      if (unique.length === 0) return { stored: 0, duplicates: rows.length };
      const started = performance.now();
      const existing = await existingIds(unique);
      const looked = performance.now();
      const fresh = existing.size === 0 ? unique : unique.filter((r) => !existing.has(r.event_id));
      const ingestedAt = toDateTimeText(Date.now());
      await deps.http.insertLines(table, fresh.map((r) => lineOf(r, ingestedAt)), 'insert payment events');
      deps.logger.debug('batch written', { rows: fresh.length, lookupMs: Math.round(looked - started), insertMs: Math.round(performance.now() - looked) });
      deps.metrics.insertLatency.observe((performance.now() - started) / 1000);
      deps.metrics.batchSize.observe(fresh.length);
      return { stored: fresh.length, duplicates: rows.length - fresh.length };
    },
  };
}
