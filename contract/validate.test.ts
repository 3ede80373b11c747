import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { eventFields, PaymentEventSchema } from './schema.ts';
import { decodeEvent, parseRfc3339, validateEvent } from './validate.ts';

const valid = {
  event_id: 'evt-1',
  occurred_at: '2026-11-25T10:15:00.123Z',
  type: 'payment',
  status: 'failed',
  order_id: 'ord-1',
  attempt: 1,
  amount_minor: 1999,
  currency: 'CNY',
  channel: 'alipay',
  merchant_id: 'm-1',
  failure_code: 'network_error',
};

const buf = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

describe('the event field list', () => {
  test("is the schema's properties in the schema's order", () => {
    expect([...eventFields]).toEqual(Object.keys(PaymentEventSchema.properties));
  });
});

describe('payment event contract', () => {
  test('the committed JSON Schema file is generated from the TypeScript source', () => {
    const file = JSON.parse(readFileSync(new URL('./payment-event.v1.schema.json', import.meta.url), 'utf8'));
    expect(file).toEqual(JSON.parse(JSON.stringify(PaymentEventSchema)));
  });

  test('accepts a valid event and keeps unknown fields', () => {
    const result = decodeEvent(buf({ ...valid, risk_score: 0.7, meta: { a: [1] } }), 65536);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value.occurredAtMs).toBe(Date.UTC(2026, 10, 25, 10, 15, 0, 123));
    expect(JSON.parse(result.value.extra)).toEqual({ risk_score: 0.7, meta: { a: [1] } });
  });

  test('a refund needs no attempt; a succeeded payment needs no failure code', () => {
    const { attempt: _a, failure_code: _f, ...rest } = valid;
    expect(validateEvent({ ...rest, type: 'refund', status: 'succeeded' }).ok).toBe(true);
    expect(validateEvent({ ...rest, attempt: 2, status: 'succeeded' }).ok).toBe(true);
  });

  test('boundary values are accepted', () => {
    for (const patch of [
      { amount_minor: 0 },
      { amount_minor: 1e15 },
      { attempt: 100 },
      { event_id: 'x'.repeat(128) },
      { order_id: '订'.repeat(128) },
      { ip: '::1' },
      { ip: '203.0.113.9' },
      { occurred_at: '2026-11-25T18:15:00+08:00' },
      { occurred_at: '1970-01-01T00:00:00Z' },
      { failure_code: 'some_new_code' },
    ]) {
      expect(validateEvent({ ...valid, ...patch }), JSON.stringify(patch)).toMatchObject({ ok: true });
    }
  });

  test.each([
    ['not JSON', '{"event_id":', /not valid JSON/],
    ['an array', '[1,2]', /not a JSON object/],
    ['a string', '"hello"', /not a JSON object/],
    ['missing order_id', { ...valid, order_id: undefined }, /missing required field "order_id"/],
    ['payment without attempt', { ...valid, attempt: undefined }, /missing required field "attempt"/],
    ['failed without failure_code', { ...valid, failure_code: undefined }, /missing required field "failure_code"/],
    ['timeout without failure_code', { ...valid, status: 'timeout', failure_code: undefined }, /missing required field "failure_code"/],
    ['attempt 0', { ...valid, attempt: 0 }, /field "attempt" must be >= 1/],
    ['attempt 101', { ...valid, attempt: 101 }, /field "attempt" must be <= 100/],
    ['fractional attempt', { ...valid, attempt: 1.5 }, /field "attempt" must be integer/],
    ['negative amount', { ...valid, amount_minor: -1 }, /amount_minor/],
    ['amount over 10^15', { ...valid, amount_minor: 1e15 + 1 }, /amount_minor/],
    ['amount as string', { ...valid, amount_minor: '1999' }, /amount_minor/],
    ['lower-case currency', { ...valid, currency: 'cny' }, /currency/],
    ['unknown status', { ...valid, status: 'pending' }, /field "status" must be one of: processing, succeeded, failed, timeout/],
    ['unknown type', { ...valid, type: 'chargeback' }, /field "type" must be one of/],
    ['unknown source', { ...valid, source: 'fax' }, /field "source" must be one of/],
    ['bad ip', { ...valid, ip: '999.1.1.1' }, /not a valid IPv4 or IPv6 address/],
    ['timestamp without offset', { ...valid, occurred_at: '2026-11-25T10:15:00' }, /RFC 3339/],
    ['impossible date', { ...valid, occurred_at: '2026-02-30T10:15:00Z' }, /RFC 3339/],
    ['timestamp before 1970', { ...valid, occurred_at: '1969-12-31T23:59:59Z' }, /RFC 3339/],
    ['empty event_id', { ...valid, event_id: '' }, /event_id/],
    ['event_id of 129 chars', { ...valid, event_id: 'x'.repeat(129) }, /event_id/],
    ['channel of 65 chars', { ...valid, channel: 'c'.repeat(65) }, /channel/],
  ])('rejects %s with a readable reason', (_name, input, reason) => {
    const result = decodeEvent(buf(input), 65536);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });

  test('rejects a contract field with an unpaired surrogate escape (it has no UTF-8 form), and only then', () => {
    for (const [field, text] of [
      ['event_id', 'e-\\ud800'],
      ['user_id', 'u-\\udc00x'],
      ['channel', '\\uDBFF'],
    ] as const) {
      const raw = Buffer.from(JSON.stringify({ ...valid, [field]: 'X' }).replace('"X"', `"${text}"`));
      expect(decodeEvent(raw, 65536)).toEqual({ ok: false, reason: `field "${field}" is not valid Unicode (an unpaired surrogate escape)` });
    }
    expect(validateEvent({ ...valid, order_id: 'o\ud800' })).toMatchObject({ ok: false, reason: expect.stringMatching(/order_id.*unpaired surrogate/) });
    // Escaped pairs, escaped BMP characters and unpaired surrogates in extra fields (kept as JSON text) are fine.
    const fine = Buffer.from(
      JSON.stringify({ ...valid, event_id: 'X', note: 'Y' })
        .replace('"X"', '"\\ud83d\\ude00\\u00e9"')
        .replace('"Y"', '"\\ud800"'),
    );
    const decoded = decodeEvent(fine, 65536);
    expect(decoded).toMatchObject({ ok: true, value: { event: { event_id: '😀é' } } });
    if (decoded.ok) expect(decoded.value.extra).toBe('{"note":"\\ud800"}');
  });

  test('rejects messages over the size limit and invalid UTF-8', () => {
    const big = buf({ ...valid, note: 'x'.repeat(70_000) });
    expect(decodeEvent(big, 65536)).toMatchObject({ ok: false, reason: expect.stringMatching(/over the 65536-byte limit/) });
    expect(decodeEvent(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 65536)).toMatchObject({ ok: false, reason: 'message is not valid UTF-8' });
    expect(decodeEvent(null, 65536)).toMatchObject({ ok: false, reason: 'empty message' });
  });

  test('parseRfc3339 applies offsets and keeps milliseconds', () => {
    expect(parseRfc3339('2026-11-25T18:15:00.5+08:00')).toBe(Date.UTC(2026, 10, 25, 10, 15, 0, 500));
    expect(parseRfc3339('2026-11-25t10:15:00.123456789z')).toBe(Date.UTC(2026, 10, 25, 10, 15, 0, 123));
    expect(parseRfc3339('2026-11-25T24:00:00Z')).toBeNull();
    expect(parseRfc3339('2024-02-29T00:00:00Z')).toBe(Date.UTC(2024, 1, 29));
    expect(parseRfc3339('2100-02-29T00:00:00Z')).toBeNull();
    expect(parseRfc3339('2000-02-29T00:00:00Z')).toBe(Date.UTC(2000, 1, 29));
  });

  test('parseRfc3339 answers as the regular expression it replaced, on valid and broken timestamps', () => {
    // The pattern and arithmetic parseRfc3339 used before it read characters itself.
    const pattern = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|([+-])(\d{2}):(\d{2}))$/;
    const reference = (value: string): number | null => {
      const m = pattern.exec(value);
      if (!m) return null;
      const [, y, mo, d, h, mi, s, frac, , sign, oh, om] = m.map((x) => x ?? '');
      const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number) as [number, number, number, number, number, number];
      const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
      const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0;
      if (month < 1 || month > 12 || day < 1 || day > days || hour > 23 || minute > 59 || second > 59) return null;
      if (sign && (Number(oh) > 23 || Number(om) > 59)) return null;
      const offsetMin = sign ? (sign === '-' ? -1 : 1) * (Number(oh) * 60 + Number(om)) : 0;
      const ms = frac ? Number(frac.slice(1).padEnd(3, '0').slice(0, 3)) : 0;
      const epoch = Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMin * 60_000;
      // Years 0-99 are read by Date.UTC as 1900-1999; the pattern let 0070 through as 1970.
      return epoch < 0 || epoch > Date.UTC(2106, 0, 1) - 1 || year < 1969 ? null : epoch;
    };
    const seeds = [
      '2026-11-25T10:15:00Z',
      '2026-11-25t10:15:00.5z',
      '2026-11-25 10:15:00.123456789+08:00',
      '1969-12-31T23:30:00-01:00',
      '1970-01-01T00:00:00Z',
      '2105-12-31T23:59:59.999Z',
      '2024-02-29T00:00:00-23:59',
      '2026-11-25T10:15:00.1234567890Z',
      '0070-01-01T00:00:00Z',
    ];
    const alphabet = '0123456789-:.TtZz +x١';
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let valid = 0;
    for (let i = 0; i < 20_000; i++) {
      let text = seeds[random(seeds.length)]!;
      for (let edits = random(3); edits > 0; edits--) {
        const at = random(text.length + 1);
        const what = random(3);
        const char = alphabet[random(alphabet.length)]!;
        text =
          what === 0
            ? text.slice(0, at) + char + text.slice(at + 1)
            : what === 1
              ? text.slice(0, at) + char + text.slice(at)
              : text.slice(0, at) + text.slice(at + 1);
      }
      const expected = reference(text);
      if (expected !== null) valid++;
      expect([text, parseRfc3339(text)]).toEqual([text, expected]);
    }
    expect(valid).toBeGreaterThan(2_000);
    for (const text of seeds) expect([text, parseRfc3339(text)]).toEqual([text, reference(text)]);
  });
});
