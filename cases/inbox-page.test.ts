import { describe, expect, test } from 'vitest';
import { compareInboxKeys, inboxPageFrom, type InboxKey } from './store.ts';

const k = (case_id: string, sev_rank: number | string, opened_at: string): InboxKey => ({ case_id, sev_rank, opened_at });

describe('inbox order', () => {
  test('most severe first, newest first within a severity, then by id as bytes', () => {
    const keys = [
      k('C3', 1, '2026-03-01 10:00:00'),
      k('C1', 0, '2026-03-01 09:00:00'),
      k('C2', 1, '2026-03-01 11:00:00'),
      k('C5', 1, '2026-03-01 10:00:00'),
      k('C4', '0', '2026-03-01 12:00:00'),
      // 'é' is 0xC3 0xA9 in UTF-8: after every ASCII byte, as ClickHouse compares strings.
      k('é', 1, '2026-03-01 10:00:00'),
      k('Z', 1, '2026-03-01 10:00:00'),
    ];
    expect([...keys].sort(compareInboxKeys).map((x) => x.case_id)).toEqual(['C4', 'C1', 'C2', 'C3', 'C5', 'Z', 'é']);
  });
});

describe('inbox page from candidates', () => {
  const rows = Array.from({ length: 10 }, (_, i) => k(`C${i}`, 0, `2026-03-01 10:00:${String(59 - i).padStart(2, '0')}`));

  test('fewer candidates than asked: they were every row that passes, so the current state is the whole answer', () => {
    expect(inboxPageFrom(rows.slice(0, 3), 8, rows.slice(1, 3), 4)).toEqual(rows.slice(1, 3));
    expect(inboxPageFrom([], 8, [], 4)).toEqual([]);
  });

  test('cut-off candidates: the current rows up to the last candidate make the page when there are enough', () => {
    // C0..C7 asked and returned; their current state: C2 no longer passes; C9 is past the cut (its current
    // version sorts later than the candidate row of its older version) and is not taken.
    const current = [rows[0]!, rows[1]!, rows[3]!, rows[4]!, rows[9]!];
    expect(inboxPageFrom(rows.slice(0, 8), 8, current, 4)).toEqual([rows[0], rows[1], rows[3], rows[4]]);
  });

  test('cut-off candidates with too few current rows before the cut: unknown (null), so the caller asks over every case', () => {
    // Older versions crowded the candidates: only two cases still pass before the cut.
    expect(inboxPageFrom(rows.slice(0, 8), 8, [rows[0]!, rows[5]!, rows[9]!], 4)).toBeNull();
  });

  test('a current row equal to the last candidate counts as before the cut', () => {
    expect(inboxPageFrom(rows.slice(0, 4), 4, [rows[1]!, rows[3]!], 2)).toEqual([rows[1], rows[3]]);
  });
});
