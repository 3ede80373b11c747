import { describe, expect, test } from 'vitest';
import { callbackDelayRows, exactQuantiles, insertChangedRecordsQuery } from './reconcile-queries.ts';
import { cutSlices, seenToAfter } from './reconcile.ts';
import { sqlFragment } from '../storage/sql.ts';

/** ClickHouse's quantileExact on the expanded values: the value at index floor(level * n) of the sorted values. */
function expanded(values: number[], level: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[level < 1 ? Math.floor(level * sorted.length) : sorted.length - 1]!;
}

describe('callback delay percentiles from delay counts', () => {
  test('pick what quantilesExact picks from the same values (checked on 18.16: 0..9 gives 5, 9, 9, 9; 0..6 gives 3, 6, 6, 6)', () => {
    const counts = (n: number) => Array.from({ length: n }, (_, i) => ({ value: i, n: 1 }));
    expect(exactQuantiles(counts(10), [0.5, 0.9, 0.95, 0.99]).quantiles).toEqual([5, 9, 9, 9]);
    expect(exactQuantiles(counts(7), [0.5, 0.9, 0.95, 0.99]).quantiles).toEqual([3, 6, 6, 6]);
  });

  test('counts stand for repeated values, in any order', () => {
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 50; round++) {
      const values = Array.from({ length: 1 + Math.floor(next() * 300) }, () => Math.floor(next() * 40) * 250);
      const byValue = new Map<number, number>();
      for (const v of values) byValue.set(v, (byValue.get(v) ?? 0) + 1);
      const counts = [...byValue.entries()].map(([value, n]) => ({ value, n })).reverse();
      const levels = [0.5, 0.9, 0.95, 0.99];
      const got = exactQuantiles(counts, levels);
      expect(got.n).toBe(values.length);
      expect(got.max).toBe(Math.max(...values));
      expect(got.quantiles).toEqual(levels.map((l) => expanded(values, l)));
    }
  });

  test('no delays: the all-channels row with zeros, as 18.16 gives for no rows', () => {
    expect(callbackDelayRows([])).toEqual([{ channel: '', attempts: 0, p50: 0, p90: 0, p95: 0, p99: 0, max: 0 }]);
  });

  test('a row per channel and one for all channels', () => {
    const rows = callbackDelayRows([
      { channel: 'card', delayMs: 1000, n: 3 },
      { channel: 'alipay', delayMs: 5000, n: 1 },
      { channel: 'card', delayMs: 2000, n: 1 },
    ]);
    expect(rows.map((r) => [r.channel, r.attempts, r.p50, r.max])).toEqual([
      ['', 5, 1000, 5000],
      ['alipay', 1, 5000, 5000],
      ['card', 4, 1000, 2000],
    ]);
  });
});

describe('changed records statement', () => {
  test('reads the changed orders from the order-ordered copy with a time bound, and their current records by order', () => {
    const text = insertChangedRecordsQuery('db', {
      generation: 3,
      version: 4,
      coveredFromMs: Date.UTC(2026, 10, 25, 10),
      orders: sqlFragment`SELECT order_id FROM db.payment_changes`,
    });
    expect(text).toContain("entity_type = 'order' AND entity_key IN (SELECT order_id FROM db.payment_changes)");
    // An hour (ATTEMPT_LEAD_MS) before the records' coverage.
    expect(text).toContain(`occurred_at >= toDateTime(${Date.UTC(2026, 10, 25, 9) / 1000}, 'UTC')`);
    expect(text).toContain('WHERE generation = 3 AND order_id IN (SELECT order_id FROM db.payment_changes)');
  });
});

describe('slices of counts', () => {
  test('each slice holds at most the maximum (a single larger key alone), the first from the start, the last open-ended', () => {
    const counts = [
      { k: 10, n: 3 },
      { k: 20, n: 4 },
      { k: 30, n: 9 },
      { k: 40, n: 1 },
      { k: 50, n: 1 },
    ];
    expect(cutSlices(counts, 7, 5)).toEqual([
      { from: 5, to: 30, n: 7 },
      { from: 30, to: 40, n: 9 },
      { from: 40, to: null, n: 2 },
    ]);
    expect(cutSlices([], 7, 5)).toEqual([]);
  });
});

describe('the reconcile cursor after a run', () => {
  test('stops the overlap before now, never moves back, except after a step back of the clock', () => {
    expect(seenToAfter({ seenToSec: 1000, steppedBackSec: 0 }, 1200, 1300, 15)).toBe(1200);
    expect(seenToAfter({ seenToSec: 1000, steppedBackSec: 0 }, 1400, 1300, 15)).toBe(1285);
    // A late row counted before the cursor does not move it back...
    expect(seenToAfter({ seenToSec: 1000, steppedBackSec: 0 }, 900, 1300, 15)).toBe(1000);
    // ...but after the clock stepped back 600 s, the rows stored since are before it: it follows the clock.
    expect(seenToAfter({ seenToSec: 1000, steppedBackSec: 600 }, 720, 700, 15)).toBe(685);
  });
});
