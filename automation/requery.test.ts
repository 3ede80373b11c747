import { describe, expect, test } from 'vitest';
import { oldestFirst, pickDue, type Stuck } from './requery.ts';

const stuck = (order: string, began: number, attempt = 1): Stuck => ({ order_id: order, attempt, transaction_id: '', began });
const names = (list: readonly Stuck[]) => list.map((a) => `${a.order_id}#${a.attempt}`);

describe('pickDue: which attempts a requery run asks about', () => {
  // Sorted oldest first, as the run sorts its candidates.
  const candidates = [stuck('a', 100), stuck('b', 100), stuck('b', 100, 2), stuck('c', 200), stuck('d', 300), stuck('e', 400)];

  test('the oldest first, at most the limit, none asked within REQUERY_AFTER', () => {
    expect(names(pickDue(candidates, new Set(), 3, null))).toEqual(['a#1', 'b#1', 'b#2']);
    expect(names(pickDue(candidates, new Set(['b|1', 'c|1']), 3, null))).toEqual(['a#1', 'b#2', 'd#1']);
  });

  test('when the run read as many waiting attempts as it asked for, none after the last of them: the unread ones are older', () => {
    // The waiting list's front ended at c: the list may hold attempts between c and d that this run did not read.
    expect(names(pickDue(candidates, new Set(), 5, stuck('c', 200)))).toEqual(['a#1', 'b#1', 'b#2', 'c#1']);
    // Most of the front settled or was asked: fewer than the limit, rather than a newer one before an older one.
    expect(names(pickDue(candidates, new Set(['a|1', 'b|1', 'b|2']), 3, stuck('c', 200)))).toEqual(['c#1']);
    // The same second: ordered by order id, then attempt.
    expect(names(pickDue(candidates, new Set(), 5, stuck('b', 100)))).toEqual(['a#1', 'b#1']);
  });
});

describe('oldestFirst: the order of the waiting list as ClickHouse reads it', () => {
  test('order ids compare by their UTF-8 bytes, as ClickHouse orders strings', () => {
    // U+FFFD is EF BF BD in UTF-8, U+1F600 F0 9F 98 80: ClickHouse puts U+FFFD first; UTF-16 would not (D83D < FFFD).
    const list = [stuck('o-\u{1F600}', 100), stuck('o-\uFFFD', 100), stuck('o-a', 100, 2), stuck('o-a', 100), stuck('n', 200)];
    expect(names([...list].sort(oldestFirst))).toEqual(['o-a#1', 'o-a#2', 'o-\uFFFD#1', 'o-\u{1F600}#1', 'n#1']);
  });

  test('with non-ASCII ids, a run whose read ended at an id asks about nothing past it in the server’s order', () => {
    const sorted = [stuck('o-\uFFFD', 100), stuck('o-\u{1F600}', 100)];
    expect(names(pickDue(sorted, new Set(), 5, stuck('o-\uFFFD', 100)))).toEqual(['o-\uFFFD#1']);
  });
});
