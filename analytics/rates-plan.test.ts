import { describe, expect, test } from 'vitest';
import { planWrites } from './rates.ts';
import { bucketRanges } from './rate-items.ts';

const at = (hh: number, mm: number) => Date.UTC(2026, 10, 25, hh, mm);
const hm = (ms: number) => new Date(ms).toISOString().slice(11, 16);

describe('which 5-minute buckets an incremental rates run writes', () => {
  test('every bucket of its window, and the closed buckets its changes touched', () => {
    // Window 10:05-10:10; a late callback touched 09:20 (and the open bucket 10:10, not yet closed).
    expect(planWrites({ fromMs: at(10, 5), toMs: at(10, 10) }, [at(9, 20), at(10, 5), at(10, 10)], at(0, 0)).map(hm)).toEqual(['09:20', '10:05']);
  });

  test('a touched bucket before the items are complete is left as stored (re-run by hand)', () => {
    expect(planWrites({ fromMs: at(10, 5), toMs: at(10, 10) }, [at(9, 20)], at(9, 30)).map(hm)).toEqual(['10:05']);
  });

  test('nothing closed and nothing touched: nothing to write', () => {
    expect(planWrites({ fromMs: at(10, 10), toMs: at(10, 10) }, [], at(0, 0))).toEqual([]);
  });
});

describe('the key ranges a bucket statement reads', () => {
  test('adjacent buckets join into one range, others stay apart', () => {
    expect(bucketRanges([900, 0, 300, 1800, 300])).toEqual([
      [0, 600],
      [900, 1200],
      [1800, 2100],
    ]);
  });
});
