import { describe, expect, test } from 'vitest';
import { LIVE_OVERLAP_MS, announce, firstPoll, readable, unseen, type CaseChangeNotice } from './live.ts';

/** What a poll announces when every change it read is readable by the pages. */
const newChanges = (rows: readonly CaseChangeNotice[], seen: Map<string, number>, newest: number) => announce(unseen(rows, seen), seen, newest);

const change = (case_id: string, version: number): CaseChangeNotice => ({ case_id, version: String(version), status: 'open', severity: 'high' });

describe('live feed: what a poll announces', () => {
  test('each (case, version) once, oldest first, however often the overlapping polls read it', () => {
    const seen = new Map<string, number>();
    const first = newChanges([change('C2', 1_000), change('C1', 1_000), change('C1', 900)], seen, 800);
    expect(first.fresh.map((c) => `${c.case_id}@${c.version}`)).toEqual(['C1@900', 'C1@1000', 'C2@1000']);
    expect(first.newest).toBe(1_000);
    // The next poll reads the same rows again, a copy of one, and one more.
    const second = newChanges([change('C3', 1_100), change('C2', 1_000), change('C2', 1_000), change('C1', 1_000)], seen, first.newest);
    expect(second.fresh.map((c) => c.case_id)).toEqual(['C3']);
    expect(second.newest).toBe(1_100);
  });

  test('a change that becomes visible late, with a version older than the newest seen, is still announced', () => {
    const seen = new Map<string, number>();
    const { newest } = newChanges([change('C1', 10_000)], seen, 0);
    const late = newChanges([change('C1', 10_000), change('C2', 9_000)], seen, newest);
    expect(late.fresh.map((c) => c.case_id)).toEqual(['C2']);
    expect(late.newest).toBe(10_000);
  });

  test('forgets what is older than the overlap before the newest version, which no poll reads again', () => {
    const seen = new Map<string, number>();
    newChanges([change('C1', 1_000)], seen, 0);
    newChanges([change('C2', 1_000 + LIVE_OVERLAP_MS)], seen, 1_000);
    expect([...seen.keys()]).toEqual([`1000|C1`, `${1_000 + LIVE_OVERLAP_MS}|C2`]);
    newChanges([change('C3', 1_001 + LIVE_OVERLAP_MS)], seen, 1_000 + LIVE_OVERLAP_MS);
    expect([...seen.keys()]).toEqual([`${1_000 + LIVE_OVERLAP_MS}|C2`, `${1_001 + LIVE_OVERLAP_MS}|C3`]);
  });

  test('the first poll announces what was stored after the first browser subscribed, even before the poll read it; nothing older', () => {
    const seen = new Map<string, number>();
    const first = firstPoll([change('OLD', 4_000), change('NEW', 5_200), change('OLD2', 4_999)], seen, 5_000);
    expect(first.candidates.map((c) => c.case_id)).toEqual(['NEW']);
    expect(first.newest).toBe(4_999);
    const announced = announce(first.candidates, seen, first.newest);
    expect(announced.newest).toBe(5_200);
    // The next poll reads them all again and announces nothing twice.
    expect(newChanges([change('OLD', 4_000), change('NEW', 5_200), change('OLD2', 4_999)], seen, announced.newest).fresh).toEqual([]);
    // The newest version kept is the newest read, not the subscription's clock: a clock ahead of
    // the writers' must not move the next polls' reads above their changes.
    expect(firstPoll([change('OLD', 4_000)], new Map(), 5_000)).toEqual({ candidates: [], newest: 4_000 });
    expect(firstPoll([], new Map(), 5_000 + LIVE_OVERLAP_MS).newest).toBe(5_000);
  });

  test('a change is announced only once case_state holds its version (or a later one); until then the next poll reads it again', () => {
    const seen = new Map<string, number>();
    const waiting = new Map<string, number>();
    const rows = [change('C1', 1_000), change('C2', 1_100), change('C3', 1_200)];
    // case_state holds C1 at a later version, C2 at an earlier one, C3 not at all.
    const held = new Map([
      ['C1', 1_050],
      ['C2', 1_000],
    ]);
    const first = announce(readable(unseen(rows, seen), held, waiting, 50_000), seen, 900);
    expect(first.fresh.map((c) => c.case_id)).toEqual(['C1']);
    expect(first.newest).toBe(1_000);
    expect([...waiting]).toEqual([
      ['1100|C2', 50_000],
      ['1200|C3', 50_000],
    ]);
    // Not marked seen: the next poll's candidates, announced once case_state holds them.
    expect(unseen(rows, seen).map((c) => c.case_id)).toEqual(['C2', 'C3']);
    held.set('C2', 1_100).set('C3', 1_200);
    expect(announce(readable(unseen(rows, seen), held, waiting, 51_000), seen, first.newest).fresh.map((c) => c.case_id)).toEqual(['C2', 'C3']);
    expect(unseen(rows, seen)).toEqual([]);
    expect(waiting.size).toBe(0);
  });

  test('a change case_state never receives is let through after the overlap, not looked up forever', () => {
    const waiting = new Map<string, number>();
    const lost = [change('C9', 1_000)];
    expect(readable(lost, new Map(), waiting, 10_000)).toEqual([]);
    expect(readable(lost, new Map(), waiting, 10_000 + LIVE_OVERLAP_MS - 1)).toEqual([]);
    expect(readable(lost, new Map(), waiting, 10_000 + LIVE_OVERLAP_MS)).toEqual(lost);
    expect(waiting.size).toBe(0);
  });

  test('after the first poll (which reads twice the overlap back), the next polls find everything before the subscription seen', () => {
    const seen = new Map<string, number>();
    const startedAt = 1_000_000;
    // Stored 90 s and 30 s before the subscription: read by the first poll, not news.
    const before = [change('A', startedAt - 90_000), change('B', startedAt - 30_000)];
    const first = firstPoll(before, seen, startedAt);
    expect(first.candidates).toEqual([]);
    // The next poll reads from the overlap before the newest version kept.
    const from = first.newest - LIVE_OVERLAP_MS;
    expect(from).toBeGreaterThanOrEqual(startedAt - 2 * LIVE_OVERLAP_MS);
    expect(
      newChanges(
        before.filter((c) => Number(c.version) >= from),
        seen,
        first.newest,
      ).fresh,
    ).toEqual([]);
  });

  test('a version copied twice is one candidate', () => {
    expect(unseen([change('C1', 1_000), change('C1', 1_000), change('C1', 1_001)], new Map()).map((c) => c.version)).toEqual(['1000', '1001']);
  });
});
