/**
 * How detection's position statements cost as a topic's partitions grow: times `new rows` and
 * `new keys` (one clause per partition in their WHERE) on an empty migrated database, so what is
 * measured is ClickHouse planning the condition, not reading data. This is what caps
 * KAFKA_TOPIC_PARTITIONS. Usage: npm run bench:partitions [-- 16,64,128,256,512]
 */
import { loadConfig } from '../config/index.ts';
import { newKeysQuery, newRowsQuery, positionRange } from '../detection/index.ts';
import { silentLogger } from '../log/index.ts';
import { command, createClickHouse, queryRows } from '../storage/clickhouse.ts';
import { migrate } from '../storage/migrations.ts';
import { ident } from '../storage/sql.ts';

const counts = (process.argv[2] ?? '16,64,128,256,512').split(',').map(Number);
const database = `paysentinel_bench_partitions_${process.pid}`;
const config = loadConfig({ ...process.env, CLICKHOUSE_DATABASE: database });
const clickhouse = createClickHouse(config, { requestTimeoutMs: 300_000 });
const nowSec = Math.floor(Date.now() / 1000);
const positions = (n: number, offset: number) => new Map(Array.from({ length: n }, (_, p) => [p, offset + p] as [number, number]));
const timed = async (sql: string) => {
  const t = performance.now();
  await queryRows(clickhouse, sql, 'bench');
  return Math.round(performance.now() - t);
};

try {
  await migrate(clickhouse, database, silentLogger);
  console.log('partitions  new rows (ms)  new keys (ms)  statement bytes');
  for (const n of counts) {
    const rows = newRowsQuery(database, nowSec - 120, positions(n, 10));
    const keys = newKeysQuery(database, nowSec - 120, positionRange(positions(n, 10), positions(n, 1000)));
    console.log(
      `${String(n).padStart(10)}  ${String(await timed(rows)).padStart(13)}  ${String(await timed(keys)).padStart(13)}  ${String(rows.length).padStart(15)}`,
    );
  }
} finally {
  await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await clickhouse.close();
}
