/**
 * What each materialized view on payment_events costs an ingest insert: fresh migrated
 * databases, one with every view, one per view with only that view kept, one with none, receive
 * the same batches of simulator traffic in turn, each as ingest writes it (one RowBinary INSERT
 * over HTTP with ingest's insert settings). Prints per database the insert's wall time per row
 * and ClickHouse's CPU per row (user + system, from system.query_log: the figure a loaded
 * machine disturbs least), the rows and parts written and the uncompressed bytes. Then, in the
 * database with every view, what merging each of its tables costs: one OPTIMIZE ... FINAL per table
 * (every part merged into one, as background merges do over time), its CPU per row read.
 * Usage: npm run bench:views [-- BATCHES [ROWS_PER_BATCH]]  (default 10 batches of 10,000 rows)
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { loadConfig } from '../config/index.ts';
import { validateEvent } from '../contract/index.ts';
import { EVENT_COLUMN_TYPES, encodeEventRow } from '../ingest/records.ts';
import { EVENT_INSERT_SETTINGS } from '../ingest/writer.ts';
import { silentLogger } from '../log/index.ts';
import { createTrafficGenerator } from '../simulator/generate.ts';
import { classifyClickHouseError, command, createClickHouse, queryRows } from '../storage/clickhouse.ts';
import { createClickHouseHttp } from '../storage/http.ts';
import { migrate } from '../storage/migrations.ts';
import { RowBinaryWriter } from '../storage/rowbinary.ts';
import { ident, sql } from '../storage/sql.ts';

const batches = Number(process.argv[2] ?? 10);
const perBatch = Number(process.argv[3] ?? 10_000);
if (!Number.isInteger(batches) || batches < 1 || !Number.isInteger(perBatch) || perBatch < 1) {
  console.error('Usage: npm run bench:views [-- BATCHES [ROWS_PER_BATCH]] (positive integers)');
  process.exit(2);
}
const config = loadConfig();
const clickhouse = createClickHouse(config, { requestTimeoutMs: 300_000 });
const http = createClickHouseHttp(config, { timeoutMs: 300_000 });
/** The materialized views on payment_events after every migration. */
const VIEWS = [
  'payment_events_by_entity_mv',
  'payment_events_by_kafka_position_mv',
  'attempt_summaries_mv',
  'order_refunds_mv',
  'payment_changes_mv',
  'payment_events_by_transaction_mv',
] as const;
const run = randomUUID().slice(0, 8);
const variants = [
  { label: 'every view', drop: [] as string[] },
  ...VIEWS.map((view) => ({ label: `only ${view.replace(/^payment_|_mv$/g, '')}`, drop: VIEWS.filter((v) => v !== view) as string[] })),
  { label: 'no view', drop: [...VIEWS] as string[] },
].map((v, i) => ({ ...v, db: `paysentinel_bench_views_${run}_${i}` }));

const generator = createTrafficGenerator({ seed: 5, rate: 20_000, durationMs: 36_000_000, startMs: Date.now() - 3_600_000 });
const encoder = new RowBinaryWriter();
let offset = 0;
/** One batch as ingest sends it: each row's RowBinary bytes followed by ingested_at. */
function nextBatch(): Buffer<ArrayBuffer> {
  const rows: Buffer[] = [];
  const ingestedAt = Buffer.alloc(4);
  ingestedAt.writeUInt32LE(Math.floor(Date.now() / 1000));
  for (let item = generator.next(); item && rows.length < 2 * perBatch; item = generator.next()) {
    if (item.kind !== 'event' || !item.event) continue;
    const checked = validateEvent(item.event);
    if (checked.ok) rows.push(encodeEventRow(encoder, checked.value, offset % 6, offset++).bytes, ingestedAt);
  }
  return Buffer.concat(rows) as Buffer<ArrayBuffer>;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const columns = EVENT_COLUMN_TYPES.map(([name]) => ident(name));
const settings = { ...EVENT_INSERT_SETTINGS, log_queries: '1' };
try {
  for (const v of variants) {
    await migrate(clickhouse, v.db, silentLogger);
    for (const view of v.drop) await command(clickhouse, `DROP TABLE ${ident(v.db, view).text}`, 'drop view');
  }
  const wall = new Map<string, number[]>(variants.map((v) => [v.db, []]));
  const load: number[] = [];
  for (let i = 0; i < batches; i++) {
    const body = nextBatch();
    load.push(os.loadavg()[0]!);
    // Rotate which goes first, so none always meets the others' background merges.
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(i + k) % variants.length]!;
      const t = performance.now();
      await http.insertRowBinary(ident(v.db, 'payment_events'), columns, body, 'bench insert', settings);
      wall.get(v.db)!.push(((performance.now() - t) * 1000) / perBatch);
    }
    process.stderr.write(`\r  ${i + 1} of ${batches} batches`);
  }
  process.stderr.write('\n');
  await command(clickhouse, 'SYSTEM FLUSH LOGS');
  console.log(
    `${batches} batches of ${perBatch.toLocaleString('en-US')} simulator events, one RowBinary INSERT each, medians; ` +
      `load average ${Math.min(...load).toFixed(1)}-${Math.max(...load).toFixed(1)}, ${os.cpus().length} cores`,
  );
  console.log(`${''.padEnd(28)}  wall µs/row  CPU µs/row  rows written  parts  uncompressed MB`);
  for (const v of variants) {
    const logged = await queryRows<{ cpu: string; rows: string; parts: string; bytes: string }>(
      clickhouse,
      sql`SELECT
        ProfileEvents.Values[indexOf(ProfileEvents.Names, 'UserTimeMicroseconds')]
          + ProfileEvents.Values[indexOf(ProfileEvents.Names, 'SystemTimeMicroseconds')] AS cpu,
        ProfileEvents.Values[indexOf(ProfileEvents.Names, 'MergeTreeDataWriterRows')] AS rows,
        ProfileEvents.Values[indexOf(ProfileEvents.Names, 'MergeTreeDataWriterBlocks')] AS parts,
        ProfileEvents.Values[indexOf(ProfileEvents.Names, 'MergeTreeDataWriterUncompressedBytes')] AS bytes
      FROM system.query_log
      WHERE type = 2 AND event_date >= yesterday() AND startsWith(query, ${`INSERT INTO ${ident(v.db, 'payment_events').text}`})`,
      'read the inserts from query_log',
    );
    const m = (f: (r: (typeof logged)[number]) => string) => median(logged.map((r) => Number(f(r))));
    console.log(
      `${v.label.padEnd(28)}  ${median(wall.get(v.db)!).toFixed(1).padStart(11)}  ${(m((r) => r.cpu) / perBatch).toFixed(1).padStart(10)}  ` +
        `${m((r) => r.rows)
          .toLocaleString('en-US')
          .padStart(12)}  ${String(m((r) => r.parts)).padStart(5)}  ${(m((r) => r.bytes) / 1e6).toFixed(1).padStart(15)}`,
    );
  }
  await mergeCosts(variants[0]!.db);
} finally {
  for (const v of variants) await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(v.db).text}`).catch(() => {});
  await clickhouse.close();
}

/**
 * Merges every table of `db` that holds rows into one part (OPTIMIZE ... FINAL) and prints, per
 * table, the rows it held, the merge's wall time and its CPU per row (system.query_log).
 */
async function mergeCosts(db: string): Promise<void> {
  const tables = await queryRows<{ name: string; rows: string; parts: string }>(
    clickhouse,
    sql`SELECT table AS name, sum(rows) AS rows, count() AS parts FROM system.parts WHERE database = ${db} AND active GROUP BY name HAVING rows >= 1000 ORDER BY name`,
    'read the parts',
  );
  const ids = new Map<string, string>();
  for (const t of tables) {
    const id = randomUUID();
    ids.set(t.name, id);
    try {
      await clickhouse.command({ query: `OPTIMIZE TABLE ${ident(db, t.name).text} FINAL`, query_id: id, clickhouse_settings: { log_queries: 1 } });
    } catch (err) {
      throw classifyClickHouseError(err, `optimize ${t.name}`);
    }
  }
  await command(clickhouse, 'SYSTEM FLUSH LOGS');
  console.log(`\nMerging each table of the database with every view into one part (OPTIMIZE ... FINAL):`);
  console.log(`${'table'.padEnd(36)}  rows before  parts  wall ms  CPU µs/row`);
  for (const t of tables) {
    const [logged] = await queryRows<{ cpu: string; ms: string }>(
      clickhouse,
      sql`SELECT
        ProfileEvents.Values[indexOf(ProfileEvents.Names, 'UserTimeMicroseconds')]
          + ProfileEvents.Values[indexOf(ProfileEvents.Names, 'SystemTimeMicroseconds')] AS cpu,
        query_duration_ms AS ms
      FROM system.query_log WHERE type = 2 AND event_date >= yesterday() AND query_id = ${ids.get(t.name)!}`,
      'read the merge from query_log',
    );
    const rows = Number(t.rows);
    console.log(
      `${t.name.padEnd(36)}  ${rows.toLocaleString('en-US').padStart(11)}  ${t.parts.padStart(5)}  ${(logged?.ms ?? '?').padStart(7)}  ` +
        `${logged ? (Number(logged.cpu) / rows).toFixed(2).padStart(10) : '         ?'}`,
    );
  }
}
