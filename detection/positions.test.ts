import { describe, expect, test } from 'vitest';
import { newRowsQuery, takeShare } from './positions.ts';

describe('newRowsQuery', () => {
  test('takes, per partition, the offsets above the last seen one and every partition not seen, without NOT IN', () => {
    const q = newRowsQuery(
      'db',
      100,
      new Map([
        [3, 70],
        [0, 41],
      ]),
    );
    expect(q).toContain(
      '(kafka_partition = 0 AND kafka_offset > 41) OR (kafka_partition = 3 AND kafka_offset > 70) ' +
        'OR kafka_partition < 0 OR (kafka_partition > 0 AND kafka_partition < 3) OR kafka_partition > 3',
    );
    expect(q).not.toContain('NOT IN');
    expect(newRowsQuery('db', 100, new Map())).toContain('AND (1)');
  });
});

describe('takeShare: the rows of a tick', () => {
  const part = (p: number, lo: number, o: number, n: number) => ({ p, lo: String(lo), o: String(o), n: String(n), channels: [], merchants: [] });

  test('every new row while they fit; offsets only move up', () => {
    expect(takeShare(new Map([[0, 10]]), [part(0, 11, 20, 10), part(1, 0, 4, 5)], 100)).toEqual({
      newest: new Map([
        [0, 20],
        [1, 4],
      ]),
      taken: 15,
      behind: false,
    });
    expect(
      takeShare(
        new Map([
          [0, 10],
          [2, 7],
        ]),
        [],
        100,
      ),
    ).toEqual({
      newest: new Map([
        [0, 10],
        [2, 7],
      ]),
      taken: 0,
      behind: false,
    });
  });

  test('past the limit each partition with new rows takes an even share, from its oldest new row, and the rest waits', () => {
    // Partition 0 has a gap (offsets 11-99 were too old or never written): its share starts at 100.
    const { newest, taken, behind } = takeShare(new Map([[0, 10]]), [part(0, 100, 500, 401), part(1, 0, 9, 10)], 100);
    expect(newest).toEqual(
      new Map([
        [0, 149],
        [1, 9],
      ]),
    );
    expect(taken).toBe(60);
    expect(behind).toBe(true);
  });
});
