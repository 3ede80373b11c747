import { expect, test } from 'vitest';
import { positionsOf, takeBatch } from './pipeline.ts';

const row = (id: string) => ({ event_id: id, occurred_at: '2026-11-25 10:00:00', head: '{' });
const dead = (reason: string) => ({ key: null, value: '{}', reason });

test('a batch takes the oldest entries and commits each partition up to the last one it holds', () => {
  const entries = [
    { partition: 0, offset: '10', row: row('a') },
    { partition: 1, offset: '5', dead: dead('bad') },
    { partition: 0, offset: '11', dead: dead('bad') },
    { partition: 1, offset: '6', row: row('b') },
    { partition: 0, offset: '12', row: row('c') },
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

test('a batch is named by the first and last offset of each partition it holds', () => {
  const at = (partition: number, offset: string) => ({ partition, offset });
  expect(positionsOf([at(2, '90'), at(0, '7'), at(2, '88'), at(2, '120'), at(0, '7')])).toEqual({ '0': '7', '2': '88-120' });
  expect(positionsOf([at(1, '18446744073709551614'), at(1, '9')])).toEqual({ '1': '9-18446744073709551614' });
  expect(positionsOf([])).toEqual({});
});
