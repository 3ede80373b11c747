import type { ValidEvent } from '../contract/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import type { IngestMetrics } from '../metrics/registry.ts';
import type { ClickHouseHttp } from '../storage/http.ts';
import { RowBinaryWriter } from '../storage/rowbinary.ts';
import { ident, sql, toDateTimeText, type SqlFragment } from '../storage/sql.ts';
import {
  EVENT_COLUMN_TYPES,
  encodeEventRow,
  keyBytesOf,
  lineOf,
  toPendingRow,
  type BinaryPendingRow,
  type JsonPendingRow,
  type PendingRow,
} from './records.ts';

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
  const ids = ident(LOOKUP_IDS_TABLE);
  return sql`SELECT event_id FROM ${table} WHERE occurred_at IN (SELECT occurred_at FROM ${ids}) AND event_id IN (SELECT event_id FROM ${ids})`;
}

/** The table's columns and their types, as the writer checks them before it sends RowBinary. */
export function eventColumnsQuery(table: SqlFragment): string {
  return sql`DESCRIBE TABLE ${table}`;
}

/**
 * The columns of EVENT_COLUMN_TYPES the table lacks or types differently, as "name: expected,
 * found" (empty when RowBinary can be sent). Columns the writer does not send are its defaults'
 * business and are not checked.
 */
export function columnMismatches(described: readonly { name: string; type: string }[]): string[] {
  const types = new Map(described.map((c) => [c.name, c.type]));
  return EVENT_COLUMN_TYPES.filter(([name, type]) => types.get(name) !== type).map(
    ([name, type]) => `${name}: expected ${type}, found ${types.get(name) ?? 'no column'}`,
  );
}

/**
 * Settings of the insert into payment_events. Its materialized views (detection's copies, the
 * incremental rates) are most of an insert's cost; pushed to concurrently instead of one after
 * another, a 10,000-row insert took a median 175 instead of 219 µs per row, faster in each of six
 * alternating rounds (docs/benchmarks.md, Ingest). The setting exists on 18.16 and current servers.
 */
export const EVENT_INSERT_SETTINGS = { parallel_view_processing: '1' } as const;

/** The insert format in use: RowBinary while the table is as migration 001 made it, else JSONEachRow. */
export type EventFormat = 'RowBinary' | 'JSONEachRow';

export interface WriteResult {
  stored: number;
  duplicates: number;
}

/** The table changed under a running writer so that its encoded rows no longer fit: a restart picks the format again. */
export const isTableChanged = (err: unknown): boolean => err instanceof PaysentinelError && err.code === 'TABLE_CHANGED';

/**
 * Writes event rows so that each event_id is stored once: rows whose (occurred_at, event_id) is
 * already in the table are skipped. The look-up runs on every attempt, so an insert that
 * succeeded on the server but whose answer was lost (timeout, crash) is not written again.
 *
 * Rows travel as RowBinary when payment_events has exactly the columns the encoder writes
 * (checked by `prepare()`, before any row is encoded), and as JSONEachRow otherwise (a table an
 * operator altered): binary data read with another column type would be misread, not refused.
 */
export function createEventWriter(deps: { http: ClickHouseHttp; database: string; logger: Logger; metrics: IngestMetrics }) {
  const table = ident(deps.database, 'payment_events');
  const lookup = dedupLookupQuery(table);
  const columns = EVENT_COLUMN_TYPES.map(([name]) => ident(name));
  const encoder = new RowBinaryWriter();
  let format: EventFormat | null = null;

  async function mismatches(): Promise<string[]> {
    return columnMismatches(await deps.http.select<{ name: string; type: string }>(eventColumnsQuery(table), 'read the columns of payment_events'));
  }

  async function existingIds(rows: readonly PendingRow[]): Promise<Set<string>> {
    const keys =
      format === 'RowBinary'
        ? { name: LOOKUP_IDS_TABLE, structure: LOOKUP_IDS_STRUCTURE, rows: { rowBinary: Buffer.concat(rows.map((r) => keyBytesOf(r as BinaryPendingRow))) } }
        : {
            name: LOOKUP_IDS_TABLE,
            structure: LOOKUP_IDS_STRUCTURE,
            rows: (rows as JsonPendingRow[]).map((r) => ({ event_id: r.event_id, occurred_at: r.occurred_at })),
          };
    const found = await deps.http.query<{ event_id: string }>(lookup, keys, 'dedup look-up');
    return new Set(found.map((r) => r.event_id));
  }

  /** The rows followed each by the write's ingested_at (4 bytes): the RowBinary body of an insert. */
  function binaryBody(rows: readonly PendingRow[], ingestedAtSeconds: number): Buffer<ArrayBuffer> {
    let size = 0;
    for (const r of rows) size += (r as BinaryPendingRow).bytes.length + 4;
    const body = Buffer.allocUnsafe(size);
    let at = 0;
    for (const r of rows) {
      at += (r as BinaryPendingRow).bytes.copy(body, at);
      at = body.writeUInt32LE(ingestedAtSeconds, at);
    }
    return body;
  }

  async function insert(rows: readonly PendingRow[], nowMs: number): Promise<void> {
    if (format === 'RowBinary') {
      try {
        await deps.http.insertRowBinary(table, columns, binaryBody(rows, Math.floor(nowMs / 1000)), 'insert payment events', EVENT_INSERT_SETTINGS);
      } catch (err) {
        // A refusal of binary rows is only believed once the table is known to be unchanged.
        if (err instanceof PaysentinelError && !err.retriable) {
          const changed = await mismatches().catch(() => []);
          if (changed.length > 0)
            throw new PaysentinelError('TABLE_CHANGED', `payment_events changed while ingest was writing RowBinary (${changed.join('; ')})`, {
              cause: err,
            });
        }
        throw err;
      }
    } else {
      const ingestedAt = toDateTimeText(nowMs);
      await deps.http.insertLines(
        table,
        (rows as JsonPendingRow[]).map((r) => lineOf(r, ingestedAt)),
        'insert payment events',
        EVENT_INSERT_SETTINGS,
      );
    }
  }

  return {
    /** Picks the insert format from the table's columns; to be called (and retried) before the first encode. */
    async prepare(): Promise<EventFormat> {
      const found = await mismatches();
      format = found.length === 0 ? 'RowBinary' : 'JSONEachRow';
      if (found.length > 0) deps.logger.warn('payment_events differs from migration 001; ingest writes JSONEachRow instead of RowBinary', { columns: found });
      return format;
    },
    get format(): EventFormat | null {
      return format;
    },
    /** The row to buffer for a valid event, in the format in use. */
    encode(valid: ValidEvent, partition: number, offset: number): PendingRow {
      if (format === 'RowBinary') return encodeEventRow(encoder, valid, partition, offset);
      if (format === null) throw new Error('createEventWriter: prepare() must resolve before encode()');
      return toPendingRow(valid, partition, offset);
    },
    /** One write attempt: look up, then insert what is new. Throws PaysentinelError (retriable when it may help). */
    async write(rows: readonly PendingRow[]): Promise<WriteResult> {
      const unique = uniqueByEventId(rows);
      if (unique.length === 0) return { stored: 0, duplicates: rows.length };
      const started = performance.now();
      const existing = await existingIds(unique);
      const looked = performance.now();
      const fresh = existing.size === 0 ? unique : unique.filter((r) => !existing.has(r.event_id));
      await insert(fresh, Date.now());
      deps.logger.debug('batch written', { rows: fresh.length, lookupMs: Math.round(looked - started), insertMs: Math.round(performance.now() - looked) });
      deps.metrics.insertLatency.observe((performance.now() - started) / 1000);
      deps.metrics.batchSize.observe(fresh.length);
      return { stored: fresh.length, duplicates: rows.length - fresh.length };
    },
  };
}
