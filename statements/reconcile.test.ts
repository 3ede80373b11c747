import { expect, test } from 'vitest';
import { tsvEscape, tsvUnescape } from '../storage/tsv.ts';
import type { Match } from './match.ts';
import { matchRow, matchText } from './reconcile.ts';

const hostile = ["it's", 'tab\there', 'new\nline', 'back\\slash', 'nul\0', '订单-1', ''];
const matches: Match[] = hostile.flatMap((id, i) => [
  {
    line: { fileHash: 'ab12', line: i + 2, type: 'payment', transactionId: id, orderId: `o-${id}`, amountMinor: 1250 + i, currency: 'CNY', occurredAtMs: 0 },
    attempt: { orderId: `o-${id}`, attempt: 2, transactionId: id, status: 'succeeded', amountMinor: 1250 + i, currency: 'CNY', lastAtMs: 0 },
    by: 'transaction_id',
  },
  {
    line: { fileHash: 'ab12', line: 100 + i, type: 'refund', transactionId: '', orderId: id, amountMinor: 5, currency: 'JPY', occurredAtMs: 0 },
    refund: { eventId: `e\t${id}`, orderId: id, transactionId: '', amountMinor: 5, currency: 'JPY', occurredAtMs: 0 },
    by: 'order_amount',
  },
]);

test('the matches text written directly is the generic TSV of their rows, cell for cell', () => {
  const head = ["ch'an\tnel", '2026-11-25 00:00:00', '2026-11-26 00:00:00', 1764000000000123] as const;
  const text = [...matchText(head.map(tsvEscape).join('\t'), matches)].join('');
  expect(text).toBe(matches.map((m) => [...head, ...matchRow(m)].map(tsvEscape).join('\t') + '\n').join(''));
  // And every id reads back as it was.
  const back = text
    .trimEnd()
    .split('\n')
    .map((l) => l.split('\t').map(tsvUnescape));
  expect(back.map((r) => r[8])).toEqual(matches.map((m) => m.line.transactionId));
  expect(back.map((r) => r[11])).toEqual(matches.map((m) => m.refund?.eventId ?? ''));
});
