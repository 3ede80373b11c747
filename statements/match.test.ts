import { describe, expect, test } from 'vitest';
import { reconcile, type OurAttempt, type OurRefund, type StatementEntry } from './match.ts';

const T0 = Date.UTC(2026, 10, 25);
const period = { fromMs: T0, toMs: T0 + 86_400_000 };
let n = 0;
const line = (p: Partial<StatementEntry> = {}): StatementEntry => ({
  fileHash: 'f',
  line: ++n,
  type: 'payment',
  transactionId: 'tx1',
  orderId: 'o1',
  amountMinor: 1000,
  currency: 'CNY',
  occurredAtMs: T0 + 3_600_000,
  ...p,
});
const attempt = (p: Partial<OurAttempt> = {}): OurAttempt => ({
  orderId: 'o1',
  attempt: 1,
  transactionId: 'tx1',
  status: 'succeeded',
  amountMinor: 1000,
  currency: 'CNY',
  lastAtMs: T0 + 3_600_000,
  ...p,
});
const refund = (p: Partial<OurRefund> = {}): OurRefund => ({
  eventId: 'e1',
  orderId: 'o1',
  transactionId: 'tx1',
  amountMinor: 1000,
  currency: 'CNY',
  occurredAtMs: T0 + 7_200_000,
  ...p,
});

interface Case {
  name: string;
  lines?: StatementEntry[];
  attempts?: OurAttempt[];
  refunds?: OurRefund[];
  matches: string[];
  breaks: string[];
}

// Expected outcomes as "kind:line" (statement line number, 0 = none) so every line and attempt is accounted for.
const cases: Case[] = [
  { name: 'same transaction id, amount and currency: a match', lines: [line({ line: 1 })], attempts: [attempt()], matches: ['transaction_id:1'], breaks: [] },
  {
    name: 'no transaction id on the line: order + amount + currency',
    lines: [line({ line: 1, transactionId: '' })],
    attempts: [attempt()],
    matches: ['order_amount:1'],
    breaks: [],
  },
  {
    name: 'unknown transaction id falls back to the order',
    lines: [line({ line: 1, transactionId: 'other' })],
    attempts: [attempt()],
    matches: ['order_amount:1'],
    breaks: [],
  },
  {
    name: 'charged, we have nothing',
    lines: [line({ line: 1, transactionId: 'tx9', orderId: 'o9' })],
    attempts: [],
    matches: [],
    breaks: ['charged_not_recorded:1'],
  },
  ...(['failed', 'timeout', 'processing'] as const).map((status) => ({
    name: `charged while our latest status is ${status}`,
    lines: [line({ line: 1 })],
    attempts: [attempt({ status })],
    matches: [],
    breaks: ['charged_not_recorded:1'],
  })),
  { name: 'recorded succeeded in the period, not on the statement', attempts: [attempt()], matches: [], breaks: ['recorded_not_settled:0'] },
  {
    name: 'succeeded outside the period (grace margin) and not on the statement: not ours to report here',
    attempts: [attempt({ lastAtMs: T0 - 60_000 }), attempt({ orderId: 'o2', transactionId: 'tx2', lastAtMs: period.toMs })],
    matches: [],
    breaks: [],
  },
  { name: 'a failed attempt not on the statement is fine', attempts: [attempt({ status: 'failed' })], matches: [], breaks: [] },
  { name: 'amount differs', lines: [line({ line: 1, amountMinor: 999 })], attempts: [attempt()], matches: [], breaks: ['amount_mismatch:1'] },
  { name: 'currency differs', lines: [line({ line: 1, currency: 'USD' })], attempts: [attempt()], matches: [], breaks: ['currency_mismatch:1'] },
  {
    name: 'the same transaction settled twice',
    lines: [line({ line: 1 }), line({ line: 2 })],
    attempts: [attempt()],
    matches: ['transaction_id:1'],
    breaks: ['duplicate_settlement:2'],
  },
  {
    name: 'double click: a second charge on the order with its own transaction id, we recorded one attempt',
    lines: [line({ line: 1 }), line({ line: 2, transactionId: 'tx2' })],
    attempts: [attempt()],
    matches: ['transaction_id:1'],
    breaks: ['duplicate_settlement:2'],
  },
  {
    name: 'two open attempts of the order with the amount: ambiguous, never guessed',
    lines: [line({ line: 1, transactionId: '' })],
    attempts: [attempt({ transactionId: '' }), attempt({ attempt: 2, transactionId: '' })],
    matches: [],
    breaks: ['ambiguous:1'],
  },
  {
    name: 'of two attempts with the amount only one succeeded: it is the best candidate',
    lines: [line({ line: 1, transactionId: '' })],
    attempts: [attempt({ transactionId: '', status: 'failed' }), attempt({ attempt: 2, transactionId: '' })],
    matches: ['order_amount:1'],
    breaks: [],
  },
  {
    name: 'two attempts share a transaction id: ambiguous',
    lines: [line({ line: 1 })],
    attempts: [attempt({ status: 'failed' }), attempt({ attempt: 2, status: 'failed' })],
    matches: [],
    breaks: ['ambiguous:1'],
  },
  {
    name: 'the only open attempt of the order, another amount: amount mismatch',
    lines: [line({ line: 1, transactionId: '', amountMinor: 1200 })],
    attempts: [attempt({ transactionId: '' })],
    matches: [],
    breaks: ['amount_mismatch:1'],
  },
  {
    name: 'refund matched by transaction id',
    lines: [line({ line: 1 }), line({ line: 2, type: 'refund' })],
    attempts: [attempt()],
    refunds: [refund()],
    matches: ['transaction_id:1', 'transaction_id:2'],
    breaks: [],
  },
  {
    name: 'refund amounts differ',
    lines: [line({ line: 1, type: 'refund', amountMinor: 500 })],
    refunds: [refund()],
    matches: [],
    breaks: ['refund_mismatch:1'],
  },
  { name: 'refund on the statement only', lines: [line({ line: 1, type: 'refund' })], matches: [], breaks: ['refund_mismatch:1'] },
  { name: 'refund recorded only', refunds: [refund()], matches: [], breaks: ['refund_mismatch:0'] },
  {
    name: 'two equal partial refunds are interchangeable',
    lines: [line({ line: 1, type: 'refund', amountMinor: 100 }), line({ line: 2, type: 'refund', amountMinor: 100 })],
    refunds: [refund({ amountMinor: 100 }), refund({ eventId: 'e2', amountMinor: 100 })],
    matches: ['transaction_id:1', 'transaction_id:2'],
    breaks: [],
  },
  {
    name: 'a refund that could be either of two different ones: ambiguous',
    lines: [line({ line: 1, type: 'refund', amountMinor: 100 })],
    refunds: [refund({ amountMinor: 200 }), refund({ eventId: 'e2', amountMinor: 300, occurredAtMs: period.toMs + 1 })],
    matches: [],
    breaks: ['ambiguous:1'],
  },
];

describe('reconcile', () => {
  test.each(cases)('$name', ({ lines = [], attempts = [], refunds = [], matches, breaks }) => {
    const result = reconcile({ period, lines, attempts, refunds });
    expect(result.matches.map((m) => `${m.by}:${m.line.line}`).sort()).toEqual([...matches].sort());
    expect(result.breaks.map((b) => `${b.kind}:${b.line?.line ?? 0}`).sort()).toEqual([...breaks].sort());
  });

  test('every line and every attempt succeeded in the period ends in exactly one place', () => {
    const lines = [
      line({ line: 1 }),
      line({ line: 2 }),
      line({ line: 3, transactionId: 'tx3', orderId: 'o3' }),
      line({ line: 4, transactionId: 'tx4', orderId: 'o4', amountMinor: 5 }),
    ];
    const attempts = [attempt(), attempt({ orderId: 'o4', transactionId: 'tx4' }), attempt({ orderId: 'o5', transactionId: 'tx5' })];
    const r = reconcile({ period, lines, attempts, refunds: [] });
    const places = [...r.matches.map((m) => m.line.line), ...r.breaks.flatMap((b) => (b.line ? [b.line.line] : []))].sort();
    expect(places).toEqual([1, 2, 3, 4]);
    const attemptPlaces = [...r.matches.map((m) => m.attempt), ...r.breaks.filter((b) => b.kind !== 'duplicate_settlement').map((b) => b.attempt)].filter(
      Boolean,
    );
    expect(new Set(attemptPlaces).size).toBe(attemptPlaces.length);
    expect(attemptPlaces).toHaveLength(3);
  });

  test('the answer does not depend on the order rows arrive in', () => {
    const lines = [line({ line: 1, transactionId: '' }), line({ line: 2, transactionId: '' }), line({ line: 3, transactionId: 'tx2', orderId: 'o2' })];
    const attempts = [attempt({ transactionId: '' }), attempt({ orderId: 'o2', transactionId: 'tx2', status: 'failed' })];
    const a = reconcile({ period, lines, attempts, refunds: [] });
    const b = reconcile({ period, lines: [...lines].reverse(), attempts, refunds: [] });
    const key = (r: ReturnType<typeof reconcile>) =>
      JSON.stringify([r.matches.map((m) => m.line.line).sort(), r.breaks.map((x) => `${x.kind}:${x.line?.line}`).sort()]);
    expect(key(a)).toBe(key(b));
  });
});

describe('attempts near a period cut', () => {
  // Our clock says 23:59:50, the platform's 00:00:05 of the next day: the charge is on the next statement.
  const cut = period.toMs;
  const late = attempt({ lastAtMs: cut - 10_000 });
  const nextDay = line({ line: 7, fileHash: 'next', occurredAtMs: cut + 5_000 });
  test('without the neighbour statement the attempt looks not settled', () => {
    expect(reconcile({ period, lines: [], attempts: [late], refunds: [] }).breaks.map((b) => b.kind)).toEqual(['recorded_not_settled']);
  });
  test.each([
    ['the same transaction id', nextDay],
    ['no transaction id on the line, same order, amount and currency', { ...nextDay, transactionId: '' }],
  ])('settled across the cut (%s): no break in this period', (_name, near) => {
    expect(reconcile({ period, lines: [], attempts: [late], refunds: [], nearby: [near] }).breaks).toEqual([]);
  });
  test('a neighbour line of another amount, or of another transaction, does not excuse it', () => {
    for (const near of [
      { ...nextDay, transactionId: '', amountMinor: 999 },
      { ...nextDay, transactionId: 'tx-other' },
    ])
      expect(reconcile({ period, lines: [], attempts: [late], refunds: [], nearby: [near] }).breaks.map((b) => b.kind)).toEqual(['recorded_not_settled']);
  });
  test('a refund we recorded just before the cut, refunded on the next statement: no break', () => {
    const r = refund({ occurredAtMs: cut - 1_000 });
    expect(reconcile({ period, lines: [], attempts: [], refunds: [r] }).breaks.map((b) => b.kind)).toEqual(['refund_mismatch']);
    const near = line({ line: 8, fileHash: 'next', type: 'refund', occurredAtMs: cut + 2_000 });
    expect(reconcile({ period, lines: [], attempts: [], refunds: [r], nearby: [near] }).breaks).toEqual([]);
  });
  test('neighbour lines never become matches or breaks of this period', () => {
    const r = reconcile({
      period,
      lines: [],
      attempts: [],
      refunds: [],
      nearby: [nextDay, line({ line: 9, fileHash: 'prev', occurredAtMs: period.fromMs - 1 })],
    });
    expect(r).toEqual({ matches: [], breaks: [] });
  });
});
