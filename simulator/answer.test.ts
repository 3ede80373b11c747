import { describe, expect, test } from 'vitest';
import { commandProblem, type PaymentCommand } from '../contract/command.ts';
import { validateEvent } from '../contract/validate.ts';
import { answerCommand, rememberingSink, type OrderFacts } from './answer.ts';

const order: OrderFacts = { channel: 'bank_transfer', merchant_id: 'm-1', user_id: 'u-1', amount_minor: 25_000, currency: 'CNY' };
const command = (patch: Partial<PaymentCommand>): PaymentCommand => ({
  command_id: 'K' + 'a'.repeat(24),
  type: 'requery_status',
  case_id: 'C1',
  rule_id: 'stuck_processing',
  order_id: 'o-1',
  attempt: 1,
  transaction_id: 'T1',
  issued_at: '2026-11-25T10:00:00Z',
  expires_at: '2026-11-25T10:10:00Z',
  reason: 'r',
  ...patch,
});
const NOW = Date.UTC(2026, 10, 25, 10, 1);

describe('the simulated gateway', () => {
  test('a status query finds the stuck attempt succeeded, as a status_query event of the contract, with an id derived from the command', () => {
    const c = command({});
    expect(commandProblem(c)).toBeNull();
    const { event, result } = answerCommand(c, order, NOW);
    expect(result).toBeUndefined();
    expect(event).toMatchObject({
      event_id: `ans-${c.command_id}`,
      type: 'payment',
      status: 'succeeded',
      source: 'status_query',
      order_id: 'o-1',
      attempt: 1,
      amount_minor: 25_000,
    });
    expect(validateEvent(event).ok).toBe(true);
    // The same command answered again is the same event: ingest stores it once.
    expect(answerCommand(c, order, NOW + 5_000).event!.event_id).toBe(event!.event_id);
  });

  test('a refund is a refund event of the amount and a done result; a block is confirmed; a retry refused; an unknown order fails', () => {
    const refund = answerCommand(command({ type: 'refund', attempt: 2, amount_minor: 12_900, currency: 'CNY' }), order, NOW);
    expect(refund.event).toMatchObject({ type: 'refund', status: 'succeeded', attempt: 2, amount_minor: 12_900 });
    expect(validateEvent(refund.event).ok).toBe(true);
    expect(refund.result).toMatchObject({ status: 'done' });
    expect(
      answerCommand(command({ type: 'block', order_id: undefined, entity_type: 'ip', entity_id: '203.0.113.9', ttl: 3600 }), undefined, NOW).result,
    ).toMatchObject({
      status: 'done',
      detail: 'blocked ip 203.0.113.9 for 3600 s',
    });
    expect(answerCommand(command({ type: 'retry' }), order, NOW).result).toMatchObject({ status: 'rejected' });
    expect(answerCommand(command({}), undefined, NOW)).toEqual({ result: expect.objectContaining({ status: 'failed' }) });
  });

  test('the sink remembers the orders it sends, and passes everything on', async () => {
    const sent: unknown[] = [];
    const orders = new Map<string, OrderFacts>();
    const sink = rememberingSink({ send: async (r) => (sent.push(r), []) }, orders);
    await sink.send({
      topic: 't',
      messages: [{ value: JSON.stringify({ order_id: 'o-9', channel: 'alipay', merchant_id: 'm', amount_minor: 5, currency: 'USD' }) }, { value: '{broken' }],
    });
    expect(sent).toHaveLength(1);
    expect(orders.get('o-9')).toMatchObject({ channel: 'alipay', amount_minor: 5, currency: 'USD' });
  });
});
