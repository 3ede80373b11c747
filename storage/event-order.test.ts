import { expect, test } from 'vitest';
import type { PaymentEvent } from '../contract/index.ts';
import { computeFeature, timed } from '../rules/features.ts';
import type { Feature } from '../rules/schema.ts';
import { isLater } from './event-order.ts';

const at = (occurredAtMs: number, status: string, eventId: string) => ({ occurredAtMs, status, eventId });

test('later by time; at the same instant a final status beats processing, then the larger event id', () => {
  expect(isLater(at(2, 'processing', 'a'), at(1, 'succeeded', 'z'))).toBe(true);
  expect(isLater(at(1, 'succeeded', 'a'), at(1, 'processing', 'z'))).toBe(true);
  expect(isLater(at(1, 'processing', 'z'), at(1, 'succeeded', 'a'))).toBe(false);
  expect(isLater(at(1, 'failed', 'b'), at(1, 'succeeded', 'a'))).toBe(true);
  expect(isLater(at(1, 'failed', 'a'), at(1, 'failed', 'a'))).toBe(false);
});

test("the rules' reference takes an attempt reported processing and succeeded in the same millisecond as no longer processing, in either arrival order", () => {
  const feature = {
    id: 'age',
    description: '',
    entity: 'order',
    window: '24h',
    aggregation: 'age',
    field: 'attempt',
    filter: { type: ['payment'] },
    latest: { status: ['processing'] },
  } as unknown as Feature;
  const at = '2026-11-25T10:00:00.250Z';
  const event = (event_id: string, status: 'processing' | 'succeeded'): PaymentEvent => ({
    event_id,
    occurred_at: at,
    type: 'payment',
    status,
    order_id: 'o1',
    attempt: 1,
    amount_minor: 100,
    currency: 'CNY',
    channel: 'alipay',
    merchant_id: 'm1',
  });
  const now = Date.parse(at) + 3_600_000;
  for (const events of [
    [event('p', 'processing'), event('s', 'succeeded')],
    [event('s', 'succeeded'), event('p', 'processing')],
  ]) {
    expect(computeFeature(feature, 'o1', timed(events), now)).toBe(0);
  }
  // Still processing when nothing final was reported: an hour old.
  expect(computeFeature(feature, 'o1', timed([event('p', 'processing')]), now)).toBe(3_600_000);
});

test('event ids compare by their UTF-8 bytes, as ClickHouse compares strings', () => {
  // U+FF01 is 0xEF 0xBC 0x81 in UTF-8, an emoji starts 0xF0: the emoji is larger in bytes, smaller in UTF-16 units.
  expect(isLater(at(1, 'failed', '😀'), at(1, 'failed', '！'))).toBe(true);
  expect(isLater(at(1, 'failed', '！'), at(1, 'failed', '😀'))).toBe(false);
});
