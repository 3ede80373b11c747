import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { eventFields, validateEvent } from '../contract/index.ts';
import { RowBinaryWriter } from '../storage/rowbinary.ts';
import {
  DEAD_LETTER_RAW_BYTES,
  EVENT_COLUMN_TYPES,
  STORED_EVENT_FIELDS,
  encodeEventRow,
  keyBytesOf,
  lineOf,
  toDeadLetter,
  toEventRow,
  toPendingRow,
} from './records.ts';
import { columnMismatches } from './writer.ts';

const base = {
  event_id: 'e"1\\\n',
  occurred_at: '2026-11-25T10:15:00.123Z',
  type: 'payment',
  status: 'failed',
  order_id: "o'1",
  attempt: 2,
  amount_minor: 1e15,
  currency: 'CNY',
  channel: '支付宝',
  merchant_id: 'm\u0000x',
  failure_code: 'network_error',
};

test.each([
  ['all optional fields absent', base],
  ['every optional field set', { ...base, transaction_id: 't', user_id: 'u', device_id: 'd', ip: '::1', source: 'client', note: { x: [1, '😀'] } }],
  [
    'offset timestamp and refund',
    { ...base, type: 'refund', status: 'succeeded', attempt: undefined, failure_code: undefined, occurred_at: '2026-11-25T18:15:00.5+08:00' },
  ],
  ['lower-case z', { ...base, occurred_at: '2026-11-25t10:15:00z' }],
])('the fast JSON line equals the row object (%s)', (_name, input) => {
  const valid = validateEvent(JSON.parse(JSON.stringify(input)));
  expect(valid.ok).toBe(true);
  if (!valid.ok) return;
  const fast = toPendingRow(valid.value, 3, 42);
  const row = toEventRow(valid.value, 3, 42, '2026-11-25 10:16:00');
  expect(JSON.parse(lineOf(fast, '2026-11-25 10:16:00'))).toEqual(row);
  expect(fast).toMatchObject({ event_id: row.event_id, occurred_at: row.occurred_at });
});

test("the stored event columns are the contract's fields, with occurred_ms after occurred_at", () => {
  expect(STORED_EVENT_FIELDS).toEqual(['event_id', 'occurred_at', 'occurred_ms', ...eventFields.slice(2)]);
  expect(eventFields.slice(0, 3)).toEqual(['event_id', 'occurred_at', 'type']);
});

describe('dead-letter records stay under the broker limit', () => {
  const source = { topic: 't', partition: 2, offset: '9' };
  const now = new Date(Date.UTC(2026, 11, 6));
  test('a message up to the bound is kept whole', () => {
    const value = Buffer.from('{"a":"' + 'x'.repeat(1000) + '"}');
    const d = toDeadLetter('bad', source, Buffer.from('k'), value, now);
    expect(d).toMatchObject({ raw: value.toString('utf8'), raw_encoding: 'utf8', raw_bytes: value.length, raw_truncated: false, key: 'k' });
  });
  test('a larger message keeps its first bytes, its size and the flag; the record fits a 1 MB broker limit', () => {
    const value = Buffer.alloc(5 * 1024 * 1024, 0xff);
    const d = toDeadLetter('over the limit', source, Buffer.alloc(100_000, 0x61), value, now);
    expect(d.raw_truncated).toBe(true);
    expect(d.raw_bytes).toBe(5 * 1024 * 1024);
    expect(Buffer.from(d.raw, 'base64')).toEqual(value.subarray(0, DEAD_LETTER_RAW_BYTES));
    expect(d.key).toHaveLength(4096);
    expect(Buffer.byteLength(JSON.stringify(d))).toBeLessThan(1_000_000);
  });
});

describe('RowBinary rows', () => {
  test('EVENT_COLUMN_TYPES are the columns and types of migration 001, in order', () => {
    const ddl = readFileSync(new URL('../storage/migrations/001_payment_events.sql', import.meta.url), 'utf8');
    const body = ddl.slice(ddl.indexOf('\n(\n') + 3, ddl.indexOf('\n)'));
    const columns = body
      .split('\n')
      .map((line) => line.trim().replace(/,$/, ''))
      .filter(Boolean)
      .map((line) => [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)]);
    expect(columns).toEqual(EVENT_COLUMN_TYPES.map(([name, type]) => [name, type]));
  });

  test('the key bytes of a row are its event_id and occurred_at, also for a long id (two-byte length)', () => {
    for (const id of ['e-1', '订'.repeat(128)]) {
      const valid = validateEvent({ ...base, event_id: id });
      if (!valid.ok) throw new Error(valid.reason);
      const row = encodeEventRow(new RowBinaryWriter(), valid.value, 1, 2);
      const key = keyBytesOf(row);
      const idBytes = Buffer.from(id, 'utf8');
      const prefix = idBytes.length < 128 ? 1 : 2;
      expect(key.length).toBe(prefix + idBytes.length + 4);
      expect(key.subarray(prefix, prefix + idBytes.length).toString('utf8')).toBe(id);
      expect(key.readUInt32LE(prefix + idBytes.length)).toBe(Date.UTC(2026, 10, 25, 10, 15, 0) / 1000);
      expect(row.event_id).toBe(id);
    }
  });

  test('columnMismatches names each column the encoder would misplace', () => {
    const described = EVENT_COLUMN_TYPES.map(([name, type]) => ({ name, type }));
    expect(columnMismatches([...described, { name: 'added_later', type: 'UInt8' }])).toEqual([]);
    expect(columnMismatches(described.map((c) => (c.name === 'extra' ? { ...c, type: 'FixedString(16)' } : c)))).toEqual([
      'extra: expected String, found FixedString(16)',
    ]);
    expect(columnMismatches(described.filter((c) => c.name !== 'source'))).toEqual(['source: expected Nullable(String), found no column']);
  });
});
