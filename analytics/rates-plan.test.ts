import { describe, expect, test } from 'vitest';
import { changesReadFrom, planWrites, stepSlices, takeWithin } from './rates.ts';
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

  test('the closed buckets the history pass just completed, also when nothing in them changed', () => {
    // History completed 09:42:30 .. 10:00; the 09:40 bucket is only partly complete and stays as stored.
    expect(planWrites({ fromMs: at(10, 5), toMs: at(10, 10) }, [], at(9, 42) + 30_000, { fromMs: at(9, 42) + 30_000, toMs: at(10, 0) }).map(hm)).toEqual([
      '09:45',
      '09:50',
      '09:55',
      '10:05',
    ]);
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

describe('slices of a catch-up', () => {
  test.each([
    { name: 'all fit', counts: [3, 4, 2], max: 10, taken: 3 },
    { name: 'stops before the one that overflows', counts: [3, 4, 5], max: 10, taken: 2 },
    { name: 'exactly the maximum', counts: [5, 5, 1], max: 10, taken: 2 },
    { name: 'one second above the maximum is still taken alone', counts: [50, 1], max: 10, taken: 1 },
    { name: 'nothing to take', counts: [], max: 10, taken: 0 },
  ])('$name', ({ counts, max, taken }) => {
    expect(takeWithin(counts, max)).toBe(taken);
  });
});

describe("where a run reads payment_changes from when the server's clock steps", () => {
  const cursor = { seenToSec: 100_000 - 15, serverAtSec: 100_000, serverUptime: 5_000 };

  test('a clock that kept time: from the cursor', () => {
    expect(changesReadFrom(cursor, { nowSec: 100_060, uptime: 5_060 }, 15)).toEqual({ fromSec: 99_985, steppedBackSec: 0 });
  });

  test('a step back within the overlap: from the cursor, the overlap covers it', () => {
    expect(changesReadFrom(cursor, { nowSec: 100_050, uptime: 5_060 }, 15)).toEqual({ fromSec: 99_985, steppedBackSec: 0 });
  });

  test('a step back of 30 s that the clock still runs ahead of the cursor: every row since the last run', () => {
    // 60 s passed (uptime), the clock shows 30 s: rows stored since have seen_at >= 100_030 - 60.
    expect(changesReadFrom(cursor, { nowSec: 100_030, uptime: 5_060 }, 15)).toEqual({ fromSec: 100_030 - 60 - 15, steppedBackSec: 30 });
  });

  test('a step back of 10 minutes', () => {
    expect(changesReadFrom(cursor, { nowSec: 99_460, uptime: 5_060 }, 15)).toEqual({ fromSec: 99_460 - 60 - 15, steppedBackSec: 600 });
  });

  test('a server restarted with its clock behind the cursor: everything since it started', () => {
    expect(changesReadFrom(cursor, { nowSec: 99_000, uptime: 120 }, 15)).toEqual({ fromSec: 99_000 - 120 - 15, steppedBackSec: 1_000 });
  });

  test('a server restarted with a clock that kept time: from the cursor', () => {
    expect(changesReadFrom(cursor, { nowSec: 100_300, uptime: 120 }, 15)).toEqual({ fromSec: 99_985, steppedBackSec: 0 });
  });

  test('a cursor from before the server clock was recorded: from the cursor', () => {
    expect(changesReadFrom({ ...cursor, serverAtSec: 0, serverUptime: 0 }, { nowSec: 50_000, uptime: 10 }, 15)).toEqual({ fromSec: 99_985, steppedBackSec: 0 });
  });
});

describe('cutting a range into slices of at most N events (backfill, history pass)', () => {
  // Per 10-second step, newest first, as historyPerStepQuery returns them.
  const steps = [
    { k: 1_050, n: 40 },
    { k: 1_040, n: 70 },
    { k: 1_020, n: 10 },
    { k: 1_000, n: 30 },
  ];

  test('newest first, each at most N events, the last reaching down to the range start', () => {
    expect(stepSlices(steps, 995_000, 1_060_000, 100)).toEqual([
      { fromMs: 1_050_000, toMs: 1_060_000, events: 40 },
      { fromMs: 1_020_000, toMs: 1_050_000, events: 80 },
      { fromMs: 995_000, toMs: 1_020_000, events: 30 },
    ]);
  });

  test('one step over N is a slice of its own; the slices cover the range without gaps', () => {
    const slices = stepSlices(steps, 995_000, 1_060_000, 20);
    expect(slices.map((s) => s.events)).toEqual([40, 70, 10, 30]);
    for (let i = 1; i < slices.length; i++) expect(slices[i]!.toMs).toBe(slices[i - 1]!.fromMs);
    expect(slices.at(-1)!.fromMs).toBe(995_000);
  });

  test('a range without events is one empty slice', () => {
    expect(stepSlices([], 0, 60_000, 100)).toEqual([{ fromMs: 0, toMs: 60_000, events: 0 }]);
  });
});
