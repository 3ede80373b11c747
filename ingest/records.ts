import { toDateTimeText } from '../storage/sql.ts';
import { isUtf8 as isValidUtf8 } from 'node:buffer';
import { eventFields, type EventField, type ValidEvent } from '../contract/index.ts';
import { maxStringBytes, type RowBinaryWriter } from '../storage/rowbinary.ts';

/** A stored column that holds a field of the event (the rest say where the row came from). */
export type StoredEventField = EventField | 'occurred_ms';

/**
 * The stored fields of a payment event, in the table's order: the contract's fields, with
 * occurred_at split into seconds and milliseconds. Ingest writes them (EventRow) and detection
 * reads them back (detection/screen.ts), from this one list.
 */
export const STORED_EVENT_FIELDS: readonly StoredEventField[] = eventFields.flatMap((f): StoredEventField[] =>
  f === 'occurred_at' ? [f, 'occurred_ms'] : [f],
);

/** One row of paysentinel.payment_events, as sent in JSONEachRow: the event's fields, then its extra fields and where it came from. */
export interface EventRow {
  event_id: string;
  occurred_at: string;
  occurred_ms: number;
  type: string;
  status: string;
  order_id: string;
  attempt: number | null;
  transaction_id: string | null;
  amount_minor: number;
  currency: string;
  channel: string;
  merchant_id: string;
  user_id: string | null;
  device_id: string | null;
  ip: string | null;
  failure_code: string | null;
  source: string | null;
  extra: string;
  kafka_partition: number;
  kafka_offset: number;
  ingested_at: string;
}

/** Maps a validated event to its ClickHouse row. */
export function toEventRow(valid: ValidEvent, partition: number, offset: number, ingestedAt: string): EventRow {
  const e = valid.event;
  return {
    event_id: e.event_id,
    occurred_at: dateTimeTextOf(e.occurred_at, valid.occurredAtMs),
    occurred_ms: valid.occurredAtMs % 1000,
    type: e.type,
    status: e.status,
    order_id: e.order_id,
    attempt: e.attempt ?? null,
    transaction_id: e.transaction_id ?? null,
    amount_minor: e.amount_minor,
    currency: e.currency,
    channel: e.channel,
    merchant_id: e.merchant_id,
    user_id: e.user_id ?? null,
    device_id: e.device_id ?? null,
    ip: e.ip ?? null,
    failure_code: e.failure_code ?? null,
    source: e.source ?? null,
    extra: valid.extra,
    kafka_partition: partition,
    kafka_offset: offset,
    ingested_at: ingestedAt,
  };
}

/**
 * The columns ingest writes, with the exact types migration 001 gives them: the layout of a
 * RowBinary row (encodeEventRow). The writer sends RowBinary only while the table's columns
 * have exactly these types (ingest/writer.ts), since binary data read with another type is
 * misread, not refused.
 */
export const EVENT_COLUMN_TYPES = [
  ['event_id', 'String'],
  ['occurred_at', "DateTime('UTC')"],
  ['occurred_ms', 'UInt16'],
  ['type', "Enum8('payment' = 1, 'refund' = 2)"],
  ['status', "Enum8('processing' = 1, 'succeeded' = 2, 'failed' = 3, 'timeout' = 4)"],
  ['order_id', 'String'],
  ['attempt', 'Nullable(UInt8)'],
  ['transaction_id', 'Nullable(String)'],
  ['amount_minor', 'UInt64'],
  ['currency', 'String'],
  ['channel', 'String'],
  ['merchant_id', 'String'],
  ['user_id', 'Nullable(String)'],
  ['device_id', 'Nullable(String)'],
  ['ip', 'Nullable(String)'],
  ['failure_code', 'Nullable(String)'],
  ['source', 'Nullable(String)'],
  ['extra', 'String'],
  ['kafka_partition', 'UInt16'],
  ['kafka_offset', 'UInt64'],
  ['ingested_at', "DateTime('UTC')"],
] as const satisfies readonly (readonly [keyof EventRow, string])[];

/** Enum8 codes of the two enum columns, as in their types above. */
const TYPE_CODES: Record<string, number> = { payment: 1, refund: 2 };
const STATUS_CODES: Record<string, number> = { processing: 1, succeeded: 2, failed: 3, timeout: 4 };

/** A row on its way to ClickHouse as JSONEachRow: the dedup key and the line to send. */
export interface JsonPendingRow {
  event_id: string;
  occurred_at: string;
  /** The JSONEachRow line up to the value of `ingested_at`, its last field (see lineOf). */
  head: string;
}

/**
 * A row on its way to ClickHouse as RowBinary: every column but `ingested_at` (the last one,
 * 4 bytes added at the write). The bytes begin with event_id and occurred_at, which is the
 * dedup look-up's key row in RowBinary as it is (keyBytesOf).
 */
export interface BinaryPendingRow {
  event_id: string;
  bytes: Buffer;
}

export type PendingRow = JsonPendingRow | BinaryPendingRow;

/**
 * The row as it is sent: serialised once here, on arrival (JSON.stringify of a small object
 * yields a flat string; building it by concatenation was measured slower because of the garbage
 * rope strings leave). Only `ingested_at` is left open: it is the time of the write attempt,
 * so "ingested since T" really means visible since about T, which detection relies on.
 */
export function toPendingRow(valid: ValidEvent, partition: number, offset: number): JsonPendingRow {
  const { ingested_at: _, ...row } = toEventRow(valid, partition, offset, '');
  const json = JSON.stringify(row);
  return { event_id: row.event_id, occurred_at: row.occurred_at, head: json.slice(0, -1) + ',"ingested_at":"' };
}

/** Completes a pending row's line with the write attempt's time ('YYYY-MM-DD hh:mm:ss'). */
export const lineOf = (row: JsonPendingRow, ingestedAt: string): string => row.head + ingestedAt + '"}';

/** A binary row's bytes besides its strings: occurred_at 4, occurred_ms 2, type and status 2, attempt 2, amount 8, six null flags, partition 2, offset 8. */
const FIXED_ROW_BYTES = 34;

/**
 * Encodes the event as a RowBinary row of EVENT_COLUMN_TYPES without `ingested_at` (added at
 * the write, as for JSON). Same values as toEventRow: the row ClickHouse reads back is equal.
 */
export function encodeEventRow(w: RowBinaryWriter, valid: ValidEvent, partition: number, offset: number): BinaryPendingRow {
  const e = valid.event;
  const extra = valid.extra;
  w.begin(
    FIXED_ROW_BYTES +
      maxStringBytes(e.event_id) +
      maxStringBytes(e.order_id) +
      maxStringBytes(e.currency) +
      maxStringBytes(e.channel) +
      maxStringBytes(e.merchant_id) +
      maxStringBytes(extra) +
      (e.transaction_id === undefined ? 0 : maxStringBytes(e.transaction_id)) +
      (e.user_id === undefined ? 0 : maxStringBytes(e.user_id)) +
      (e.device_id === undefined ? 0 : maxStringBytes(e.device_id)) +
      (e.ip === undefined ? 0 : maxStringBytes(e.ip)) +
      (e.failure_code === undefined ? 0 : maxStringBytes(e.failure_code)) +
      (e.source === undefined ? 0 : maxStringBytes(e.source)),
  );
  const ms = valid.occurredAtMs;
  w.string(e.event_id);
  w.uint32(Math.floor(ms / 1000));
  w.uint16(ms % 1000);
  w.uint8(TYPE_CODES[e.type]!);
  w.uint8(STATUS_CODES[e.status]!);
  w.string(e.order_id);
  w.nullableUint8(e.attempt);
  w.nullableString(e.transaction_id);
  w.uint64(e.amount_minor);
  w.string(e.currency);
  w.string(e.channel);
  w.string(e.merchant_id);
  w.nullableString(e.user_id);
  w.nullableString(e.device_id);
  w.nullableString(e.ip);
  w.nullableString(e.failure_code);
  w.nullableString(e.source);
  w.string(extra);
  w.uint16(partition);
  w.uint64(offset);
  return { event_id: e.event_id, bytes: w.end() };
}

/** The leading (event_id, occurred_at) of a binary row: one row of the look-up's key table in RowBinary. */
export function keyBytesOf(row: BinaryPendingRow): Buffer {
  const b = row.bytes;
  let length = 0;
  let shift = 0;
  let i = 0;
  for (;;) {
    const byte = b[i++]!;
    length += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) break;
    shift += 7;
  }
  return b.subarray(0, i + length + 4);
}

/** UTC 'YYYY-MM-DD hh:mm:ss'; for the common `...Z` form it is cut from the text without a Date. */
function dateTimeTextOf(text: string, epochMs: number): string {
  const last = text.charCodeAt(text.length - 1);
  if ((last === 90 || last === 122) && text.charCodeAt(10) === 84 /* T */) return text.slice(0, 10) + ' ' + text.slice(11, 19);
  return toDateTimeText(epochMs);
}

/** Where a message came from, carried into the dead-letter record. */
export interface MessageSource {
  topic: string;
  partition: number;
  offset: string;
}

/** Most bytes of a message kept in its dead-letter record: the record must stay under the broker's message limit (1 MB by default). */
export const DEAD_LETTER_RAW_BYTES = 256 * 1024;
/** Most bytes of a message key kept in its dead-letter record. */
const DEAD_LETTER_KEY_BYTES = 4 * 1024;

/** The JSON body of a dead-letter message: why, where from, and the original bytes (the first DEAD_LETTER_RAW_BYTES of them). */
export interface DeadLetter {
  reason: string;
  source: MessageSource;
  key: string | null;
  raw: string;
  raw_encoding: 'utf8' | 'base64';
  /** Size of the original message in bytes. */
  raw_bytes: number;
  /** True when `raw` holds only the first DEAD_LETTER_RAW_BYTES: the whole message is still at `source` in Kafka while it is retained. */
  raw_truncated: boolean;
  failed_at: string;
}

/** Builds the dead-letter record; bytes that are not valid UTF-8 are kept as base64. */
export function toDeadLetter(reason: string, source: MessageSource, key: Buffer | null, value: Buffer | null, now: Date): DeadLetter {
  const bytes = value ?? Buffer.alloc(0);
  const utf8 = Buffer.isBuffer(bytes) && isValidUtf8(bytes);
  const kept = bytes.length > DEAD_LETTER_RAW_BYTES ? bytes.subarray(0, DEAD_LETTER_RAW_BYTES) : bytes;
  return {
    reason,
    source,
    key: key === null ? null : key.subarray(0, DEAD_LETTER_KEY_BYTES).toString('utf8'),
    raw: utf8 ? kept.toString('utf8') : kept.toString('base64'),
    raw_encoding: utf8 ? 'utf8' : 'base64',
    raw_bytes: bytes.length,
    raw_truncated: kept.length < bytes.length,
    failed_at: now.toISOString(),
  };
}
