import type { Logger } from '../log/index.ts';
import type { IngestMetrics } from '../metrics/registry.ts';
import { insertRows, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, sql, type SqlFragment } from '../storage/sql.ts';
import type { EventRow } from './records.ts';

/** Look-ups are chunked so one statement stays well inside max_query_size. */
const LOOKUP_CHUNK = 5000;

/** Keeps the first row of each event_id: a redelivery inside one batch counts once. */
export function uniqueByEventId(rows: readonly EventRow[]): EventRow[] {
  const seen = new Set<string>();
  const out: EventRow[] = [];
  for (const row of rows) {
    if (seen.has(row.event_id)) continue;
    seen.add(row.event_id);
    out.push(row);
  }
  return out;
}

/** The look-up of already stored ids among `rows` (one chunk), narrowed to the rows' time range. */
export function dedupLookupQuery(table: SqlFragment, rows: readonly EventRow[]): string {
  let min = rows[0]!.occurred_at;
  let max = min;
  for (const r of rows) {
    if (r.occurred_at < min) min = r.occurred_at;
    if (r.occurred_at > max) max = r.occurred_at;
  }
  const ids = rows.map((r) => r.event_id);
  return sql`SELECT event_id FROM ${table} WHERE occurred_at >= toDateTime(${min}, 'UTC') AND occurred_at <= toDateTime(${max}, 'UTC') AND event_id IN ${ids}`;
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
export function createEventWriter(deps: { clickhouse: ClickHouseClient; database: string; logger: Logger; metrics: IngestMetrics }) {
  const table = ident(deps.database, 'payment_events');

  async function existingIds(rows: readonly EventRow[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (let i = 0; i < rows.length; i += LOOKUP_CHUNK) {
      const query = dedupLookupQuery(table, rows.slice(i, i + LOOKUP_CHUNK));
      for (const row of await queryRows<{ event_id: string }>(deps.clickhouse, query, 'dedup look-up')) found.add(row.event_id);
    }
    return found;
  }

  return {
    /** One write attempt: look up, then insert what is new. Throws PaysentinelError (retriable when it may help). */
    async write(rows: readonly EventRow[]): Promise<WriteResult> {
      const unique = uniqueByEventId(rows);
      if (unique.length === 0) return { stored: 0, duplicates: rows.length };
      const started = performance.now();
      const existing = await existingIds(unique);
      const fresh = existing.size === 0 ? unique : unique.filter((r) => !existing.has(r.event_id));
      await insertRows(deps.clickhouse, table.text, fresh, 'insert payment events');
      deps.metrics.insertLatency.observe((performance.now() - started) / 1000);
      deps.metrics.batchSize.observe(fresh.length);
      return { stored: fresh.length, duplicates: rows.length - fresh.length };
    },
  };
}
