import { describe, expect, test } from 'vitest';
import { parseMessageTemplate } from '../rules/index.ts';
import { customerMessage, formatAmount, messageReport } from './customer-message.ts';
import { buildStory, type OrderReport } from './orders.ts';

const report = (patch: Partial<OrderReport>): OrderReport => ({
  event_id: 'e',
  occurred_at: '2026-03-01 10:03:07',
  occurred_ms: 0,
  ingested_at: '2026-03-01 10:03:08',
  type: 'payment',
  status: 'processing',
  order_id: 'O-1',
  attempt: 1,
  transaction_id: 'T-1',
  amount_minor: '1250',
  currency: 'CNY',
  channel: 'alipay',
  merchant_id: 'm',
  user_id: null,
  device_id: null,
  ip: null,
  failure_code: null,
  source: 'client',
  ...patch,
});

describe('customer message facts', () => {
  test.each([
    ['1250', 'CNY', '12.50'],
    ['1250', 'JPY', '1250'],
    ['1250', 'KWD', '1.250'],
    ['5', 'USD', '0.05'],
    ['0', 'EUR', '0.00'],
    ['-1250', 'CNY', '-12.50'],
    ['1000000000000000', 'CNY', '10000000000000.00'],
    ['1250', 'XYZ', '1250 (minor units)'],
  ])('%s minor units of %s are %s', (minor, currency, shown) => {
    expect(formatAmount(minor, currency)).toBe(shown);
  });

  test('the message is about the succeeded attempt, at the time its success was first reported', () => {
    const story = buildStory(
      'O-1',
      [
        report({ event_id: 'a', attempt: 1, status: 'failed', occurred_at: '2026-03-01 10:00:00' }),
        report({ event_id: 'b', attempt: 2, status: 'processing', occurred_at: '2026-03-01 10:02:00', transaction_id: 'T-2' }),
        report({ event_id: 'c', attempt: 2, status: 'succeeded', occurred_at: '2026-03-01 10:03:59', transaction_id: 'T-2', source: 'gateway_callback' }),
        report({ event_id: 'd', attempt: 2, status: 'succeeded', occurred_at: '2026-03-01 10:09:00', transaction_id: 'T-2', source: 'status_query' }),
        report({ event_id: 'e', attempt: 3, status: 'failed', occurred_at: '2026-03-01 10:10:00', transaction_id: 'T-3' }),
      ],
      [],
    );
    expect(messageReport(story)?.event_id).toBe('c');
    const parsed = parseMessageTemplate('m', 'Your payment of {amount} {currency} for order {order_id} went through at {time} ({channel}, {transaction_id}).');
    if (!parsed.ok) throw new Error('template');
    const messages = new Map([['charged_but_failed', parsed.parts]]);
    expect(customerMessage({ rule_id: 'charged_but_failed', entity_type: 'order' }, story, messages)).toBe(
      'Your payment of 12.50 CNY for order O-1 went through at 2026-03-01 10:03 UTC (alipay, T-2).',
    );
    // No template for the rule, not an order case, or nothing stored: no message.
    expect(customerMessage({ rule_id: 'other', entity_type: 'order' }, story, messages)).toBeNull();
    expect(customerMessage({ rule_id: 'charged_but_failed', entity_type: 'ip' }, story, messages)).toBeNull();
    expect(customerMessage({ rule_id: 'charged_but_failed', entity_type: 'order' }, null, messages)).toBeNull();
  });

  test('an order still processing: the latest attempt, when it started processing; a missing transaction id is said so', () => {
    const story = buildStory('O-2', [report({ order_id: 'O-2', transaction_id: null, occurred_at: '2026-03-01 23:59:59' })], []);
    const parsed = parseMessageTemplate('m', '{time} {transaction_id}');
    if (!parsed.ok) throw new Error('template');
    expect(customerMessage({ rule_id: 'r', entity_type: 'order' }, story, new Map([['r', parsed.parts]]))).toBe('2026-03-01 23:59 UTC not assigned yet');
  });
});
