import type { Logger } from '../log/index.ts';
import type { IngestMetrics } from '../metrics/registry.ts';
import type { ClickHouseHttp } from '../storage/http.ts';
import { ident, raw, sql, toDateTimeText, type SqlFragment } from '../storage/sql.ts';
import { lineOf, type PendingRow } from './records.ts';

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

/** Name of the external table carrying a batch's keys to the look-up. */
export const LOOKUP_IDS_TABLE = 'batch_ids';

/** Columns of that table: the stored key of each row, (occurred_at, event_id). */
export const LOOKUP_IDS_STRUCTURE = "event_id String, occurred_at DateTime('UTC')";

/**
 * The look-up of already stored ids among a batch. The batch's keys travel as the external
 * table `batch_ids` (see storage/http.ts), never as SQL text, so the statement has the same size
 * for one row or a million. `occurred_at IN (SELECT ...)` still narrows the scan through the
 * primary key (ClickHouse builds the set before it selects the ranges to read): a late event
 * in the batch adds its own second to read, where a min..max range would read everything in
 * between.
 */
export function dedupLookupQuery(table: SqlFragment): string {
  const ids = raw(LOOKUP_IDS_TABLE);
  return sql`SELECT event_id FROM ${table} WHERE occurred_at IN (SELECT occurred_at FROM ${ids}) AND event_id IN (SELECT event_id FROM ${ids})`;
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
  const lookup = dedupLookupQuery(table);

  async function existingIds(rows: readonly PendingRow[]): Promise<Set<string>> {
    const keys = { name: LOOKUP_IDS_TABLE, structure: LOOKUP_IDS_STRUCTURE, rows: rows.map((r) => ({ event_id: r.event_id, occurred_at: r.occurred_at })) };
    const found = await deps.http.query<{ event_id: string }>(lookup, keys, 'dedup look-up');
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
      await deps.http.insertLines(
        table,
        fresh.map((r) => lineOf(r, ingestedAt)),
        'insert payment events',
      );
      deps.logger.debug('batch written', { rows: fresh.length, lookupMs: Math.round(looked - started), insertMs: Math.round(performance.now() - looked) });
      deps.metrics.insertLatency.observe((performance.now() - started) / 1000);
      deps.metrics.batchSize.observe(fresh.length);
      return { stored: fresh.length, duplicates: rows.length - fresh.length };
    },
  };
}
