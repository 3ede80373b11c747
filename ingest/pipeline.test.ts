import { expect, test } from 'vitest';
import { positionsOf, takeBatch } from './pipeline.ts';

const row = (id: string) => ({ event_id: id, occurred_at: '2026-11-25 10:00:00', head: '{' });
const dead = (reason: string) => ({ key: null, value: '{}', reason });

test('a batch takes the oldest entries and commits each partition up to the last one it holds', () => {
  const entries = [
    { partition: 0, offset: '10', bytes: 100, row: row('a') },
    { partition: 1, offset: '5', bytes: 100, dead: dead('bad') },
    { partition: 0, offset: '11', bytes: 100, dead: dead('bad') },
    { partition: 1, offset: '6', bytes: 100, row: row('b') },
    { partition: 0, offset: '12', bytes: 100, row: row('c') },
  ];
  const first = takeBatch(entries, 3);
  expect(first.rows.map((r) => r.row!.event_id)).toEqual(['a']);
  expect(first.dead).toHaveLength(2);
  // Partition 0 up to 11 (the dead letter), partition 1 up to 5: offset 6 is not in this batch.
  expect([...first.offsets]).toEqual([
    [0, '11'],
    [1, '5'],
  ]);
  expect(entries).toHaveLength(2);
  const second = takeBatch(entries, 10);
  expect(second.rows.map((r) => r.row!.event_id)).toEqual(['b', 'c']);
  expect([...second.offsets]).toEqual([
    [1, '6'],
    [0, '12'],
  ]);
  expect(entries).toHaveLength(0);
});

test('a batch stops before the entry that would take it past its bytes, and always takes one', () => {
  const at = (offset: number, bytes: number) => ({ partition: 0, offset: String(offset), bytes, row: row(`e${offset}`) });
  const entries = [at(1, 400), at(2, 500), at(3, 200), at(4, 5_000), at(5, 10)];
  const first = takeBatch(entries, 100, 1_000);
  expect(first.entries.map((e) => e.offset)).toEqual(['1', '2']);
  expect(first.bytes).toBe(900);
  expect([...first.offsets]).toEqual([[0, '2']]);
  // One entry larger than the cap is a batch of its own, never a batch of none.
  expect(takeBatch(entries, 100, 1_000).entries.map((e) => e.offset)).toEqual(['3']);
  const big = takeBatch(entries, 100, 1_000);
  expect(big.entries.map((e) => e.offset)).toEqual(['4']);
  expect(big.bytes).toBe(5_000);
  // The row limit still applies, and without a byte limit only it does.
  expect(takeBatch([at(6, 1), at(7, 1), at(8, 1)], 2).entries).toHaveLength(2);
  expect(entries.map((e) => e.offset)).toEqual(['5']);
});

test('a batch is named by the first and last offset of each partition it holds', () => {
  const at = (partition: number, offset: string) => ({ partition, offset });
  expect(positionsOf([at(2, '90'), at(0, '7'), at(2, '88'), at(2, '120'), at(0, '7')])).toEqual({ '0': '7', '2': '88-120' });
  expect(positionsOf([at(1, '18446744073709551614'), at(1, '9')])).toEqual({ '1': '9-18446744073709551614' });
  expect(positionsOf([])).toEqual({});
});
