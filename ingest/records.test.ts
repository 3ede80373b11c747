import { describe, expect, test } from 'vitest';
import { eventFields, validateEvent } from '../contract/index.ts';
import { DEAD_LETTER_RAW_BYTES, STORED_EVENT_FIELDS, lineOf, toDeadLetter, toEventRow, toPendingRow } from './records.ts';

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
