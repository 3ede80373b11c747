import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { newRowsQuery, type PartitionRows } from '../../detection/positions.ts';
import { silentLogger } from '../../log/index.ts';
import { command, createClickHouse, queryRows } from '../../storage/clickhouse.ts';
import { eventsByPosition } from '../../storage/copies.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident, sql } from '../../storage/sql.ts';
import { services } from './helpers.ts';

/**
 * A detection tick finds its new rows in the copy ordered by Kafka position, and ClickHouse
 * reads whole index granules: the granule holding each partition's watermark is read in full.
 * With 8,192-row granules a tick at 5,000 events/s read ~110,000 rows for ~1,500 new ones
 * (migration 024); with 1,024-row granules the read stays near the new rows.
 */

const s = services();
const db = s.config.clickhouseDatabase;
const PARTITIONS = 6;
const PER_PARTITION = 20_000;
const NEW_PER_PARTITION = 100;
/** When the rows were written (from before the first insert): the tick's scan starts there. */
let writtenFromSec = 0;

beforeAll(async () => {
  await migrate(s.clickhouse, db, silentLogger);
  writtenFromSec = Math.floor(Date.now() / 1000) - 60;
  // Four inserts (four parts), merged into one as a busy table's older rows are.
  for (let i = 0; i < 4; i++) {
    const from = (i * PARTITIONS * PER_PARTITION) / 4;
    await command(
      s.clickhouse,
      sql`INSERT INTO ${ident(db, 'payment_events')} (event_id, occurred_at, occurred_ms, type, status, order_id, amount_minor, currency, channel, merchant_id, extra, kafka_partition, kafka_offset, ingested_at)
        SELECT concat('e', toString(number)), now(), 0, 'payment', 'succeeded', concat('o', toString(number)), 100, 'CNY', 'card', 'm-1', '',
          toUInt16(number % ${PARTITIONS}), intDiv(number, ${PARTITIONS}), now()
        FROM system.numbers WHERE number >= ${from} LIMIT ${(PARTITIONS * PER_PARTITION) / 4}`,
    );
  }
  await command(s.clickhouse, sql`OPTIMIZE TABLE ${eventsByPosition(db)} FINAL`);
}, 120_000);

afterAll(() => s.cleanup());

describe('the position copy (migration 024)', () => {
  test('a tick reading the rows above its watermark reads about those rows, not whole 8,192-row granules', async () => {
    const logged = createClickHouse(s.config, { logQueries: true });
    try {
      const seen = new Map(Array.from({ length: PARTITIONS }, (_, p) => [p, PER_PARTITION - 1 - NEW_PER_PARTITION]));
      const query = newRowsQuery(db, writtenFromSec, seen);
      const rows = await queryRows<PartitionRows>(logged, query);
      // What the tick learns: every partition's new rows, and no other.
      expect(rows.map((r) => [Number(r.p), Number(r.n)]).sort((a, b) => a[0]! - b[0]!)).toEqual(
        Array.from({ length: PARTITIONS }, (_, p) => [p, NEW_PER_PARTITION]),
      );
      await command(s.clickhouse, 'SYSTEM FLUSH LOGS');
      const [read] = await queryRows<{ read_rows: string }>(
        s.clickhouse,
        sql`SELECT read_rows FROM system.query_log WHERE type = 2 AND query LIKE ${`%${db}.payment_events_by_kafka_position%`} AND query LIKE '%min(kafka_offset)%'
          ORDER BY event_time DESC LIMIT 1`,
      );
      // At most two granules per partition (the watermark's and the next); 8,192-row granules read at least 49,152.
      expect(Number(read!.read_rows)).toBeGreaterThanOrEqual(PARTITIONS * NEW_PER_PARTITION);
      expect(Number(read!.read_rows)).toBeLessThanOrEqual(PARTITIONS * 2 * 1024);
    } finally {
      await logged.close();
    }
  });
});
