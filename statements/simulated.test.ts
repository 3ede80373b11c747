import { describe, expect, test } from 'vitest';
import { createTrafficGenerator } from '../simulator/generate.ts';
import type { PaymentEvent } from '../contract/index.ts';
import { parseStatement } from './formats.ts';
import { breakKinds } from './match.ts';
import { simulatedStatement } from './simulated.ts';
import type { SettledLine, StatementFormat } from './types.ts';
import { writeStatement } from './write.ts';

const START = Date.UTC(2026, 10, 25, 2);
const period = { fromMs: Date.UTC(2026, 10, 25), toMs: Date.UTC(2026, 10, 26) };

function traffic(): PaymentEvent[] {
  const gen = createTrafficGenerator({ seed: 7, rate: 200, durationMs: 60_000, startMs: START, scenarios: ['duplicate-charge', 'charged-but-failed'] });
  return [...gen].flatMap((item) => (item.event ? [item.event] : []));
}

describe('simulated statements', () => {
  const events = traffic();
  test.each([
    ['generic', 'alipay', true],
    ['wechat', 'wechat_pay', true],
    ['alipay', 'alipay', false],
    ['stripe', 'card', true],
  ] as const)('%s: written and parsed back line for line, one break of each kind injected', (format, channel, currencies) => {
    const statement = simulatedStatement(events, channel, period, { currencies, inject: true });
    expect(statement.notInjected.map((n) => n.kind)).toEqual(currencies ? [] : ['currency_mismatch']);
    const parsed = parseStatement(format as StatementFormat, writeStatement(format, statement.lines, period));
    expect(parsed.ok, parsed.ok ? '' : JSON.stringify(parsed.problem)).toBe(true);
    if (!parsed.ok) return;
    const settled = parsed.statement.lines.filter((l): l is SettledLine => l.status === 'settled');
    expect(settled).toHaveLength(statement.lines.length);
    const back = settled.map((l) => ({
      transactionId: l.transactionId,
      orderId: l.orderId,
      type: l.type,
      amountMinor: l.amountMinor,
      currency: l.currency,
      occurredAtMs: Math.floor(l.occurredAtMs / 1000),
    }));
    const written = statement.lines.map((l) => ({
      transactionId: l.transactionId,
      orderId: l.orderId,
      type: l.type,
      amountMinor: l.amountMinor,
      currency: l.currency,
      occurredAtMs: Math.floor(l.occurredAtMs / 1000),
    }));
    expect(back).toEqual(written);
    // One injected break of every kind the format can express, each on its own order.
    expect(statement.injected.map((i) => i.kind).sort()).toEqual(breakKinds.filter((k) => currencies || k !== 'currency_mismatch').sort());
    expect(new Set(statement.injected.map((i) => i.order_id)).size).toBe(statement.injected.length);
  });
});
