import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { validateEvent } from '../../contract/index.ts';
import { EVENT_COLUMN_TYPES, lineOf, toPendingRow, type BinaryPendingRow } from '../../ingest/records.ts';
import { EVENT_INSERT_SETTINGS, createEventWriter, isTableChanged } from '../../ingest/writer.ts';
import { silentLogger } from '../../log/index.ts';
import { createIngestMetrics } from '../../metrics/registry.ts';
import { command, queryRows } from '../../storage/clickhouse.ts';
import { createClickHouseHttp } from '../../storage/http.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { makeEvent, repoRoot, services } from './helpers.ts';

/**
 * The RowBinary write path against the real server (18.16 here) and a current engine (chdb):
 * odd values written as RowBinary read back exactly as the same events written as JSONEachRow,
 * the path the project used before and still uses for a table that differs from migration 001.
 */

const s = services();
const db = s.config.clickhouseDatabase;
const http = createClickHouseHttp(s.config);
const binaryTable = ident(db, 'payment_events');
const jsonTable = ident(db, 'payment_events_json');
const columns = EVENT_COLUMN_TYPES.map(([name]) => name).filter((c) => c !== 'ingested_at');

const odd: Record<string, unknown>[] = [
  makeEvent(1),
  // Every optional field absent (nulls), a refund.
  {
    ...makeEvent(2),
    type: 'refund',
    status: 'processing',
    attempt: undefined,
    transaction_id: undefined,
    user_id: undefined,
    device_id: undefined,
    ip: undefined,
    source: undefined,
  },
  // Longest ids: 128 ASCII, 128 CJK (384 bytes, a two-byte length), 128 emoji (512 bytes).
  makeEvent(3, {
    event_id: 'e'.repeat(128),
    order_id: '订'.repeat(128),
    merchant_id: '😀'.repeat(128),
    channel: 'c'.repeat(64),
    failure_code: 'f'.repeat(64),
    status: 'failed',
  }),
  // Quotes, backslashes, control characters, NUL, U+FFFD, line separators.
  makeEvent(4, { event_id: 'e"\'\\\n\t\u0000\u2028x', user_id: 'u\ufffdv', device_id: '\u0001\u007f', transaction_id: 'Ω'.repeat(10) }),
  // Amounts at both ends; the earliest and latest timestamps the contract accepts; attempt bounds.
  makeEvent(5, { amount_minor: 0, occurred_at: '1970-01-01T00:00:00Z', attempt: 1 }),
  makeEvent(6, { amount_minor: 1e15, occurred_at: '2105-12-31T23:59:59.999Z', attempt: 100 }),
  makeEvent(7, { amount_minor: 2 ** 32, occurred_at: '2026-11-25T23:30:00.5-14:00', ip: '2001:db8::ff00:42:8329' }),
  // Extra fields: a large one (over 127 bytes, up to a 3-byte length) and odd JSON inside.
  makeEvent(8, { note: 'n'.repeat(40_000), meta: { nested: [1, 'two', null, { '😀': '\\"' }], big: 1e21, small: 5e-324 } }),
  makeEvent(9, { source: 'reconciliation', failure_code: 'unknown_new_code', status: 'timeout' }),
];

function valid(e: Record<string, unknown>) {
  const result = validateEvent(JSON.parse(JSON.stringify(e)));
  if (!result.ok) throw new Error(`fixture is invalid: ${result.reason}`);
  return result.value;
}

beforeAll(async () => {
  await migrate(s.clickhouse, db, silentLogger);
  await command(s.clickhouse, `CREATE TABLE ${jsonTable} AS ${binaryTable}`);
});
afterAll(() => s.cleanup());

const readBack = (table: string) =>
  queryRows<Record<string, unknown>>(s.clickhouse, `SELECT ${columns.join(', ')} FROM ${table} ORDER BY kafka_offset`, 'read back');

describe('RowBinary insert', () => {
  test('odd values read back identical to the same events written as JSONEachRow', async () => {
    const writer = createEventWriter({ http, database: db, logger: silentLogger, metrics: createIngestMetrics() });
    expect(await writer.prepare()).toBe('RowBinary');
    const rows = odd.map((e, i) => writer.encode(valid(e), 3, 2 ** 40 + i));
    expect(await writer.write(rows)).toEqual({ stored: odd.length, duplicates: 0 });
    await http.insertLines(
      jsonTable,
      odd.map((e, i) => lineOf(toPendingRow(valid(e), 3, 2 ** 40 + i), '2026-01-01 00:00:00')),
      'insert json',
    );
    const binary = await readBack(binaryTable.text);
    expect(binary).toHaveLength(odd.length);
    expect(binary).toEqual(await readBack(jsonTable.text));
    // Spot checks that the comparison is about the values that matter.
    expect(binary[1]).toMatchObject({ attempt: null, user_id: null, ip: null, type: 'refund' });
    expect(binary[3]).toMatchObject({ user_id: 'u\ufffdv', event_id: 'e"\'\\\n\t\u0000\u2028x' });
    expect(binary[5]).toMatchObject({ amount_minor: '1000000000000000', occurred_at: '2105-12-31 23:59:59', occurred_ms: 999, attempt: 100 });
    // 18.16 prints the DateTime 0 as zeros.
    expect(binary[4]).toMatchObject({ occurred_at: expect.stringMatching(/^(1970-01-01|0000-00-00) 00:00:00$/), amount_minor: '0' });
    expect(binary[0]).toMatchObject({ kafka_offset: String(2 ** 40), kafka_partition: 3 });
    // The views (pushed to concurrently, EVENT_INSERT_SETTINGS) got every row too.
    const [copies] = await queryRows<{ offsets: string; orders: string }>(
      s.clickhouse,
      `SELECT (SELECT count() FROM ${ident(db, 'payment_events_by_kafka_position')}) AS offsets, (SELECT countIf(entity_type = 'order') FROM ` +
        `${ident(db, 'payment_events_by_entity')}) AS orders`,
    );
    expect(copies).toEqual({ offsets: String(odd.length), orders: String(odd.length) });
  });

  test('a redelivery is found by the look-up: stored once', async () => {
    const writer = createEventWriter({ http, database: db, logger: silentLogger, metrics: createIngestMetrics() });
    await writer.prepare();
    const again = odd.map((e, i) => writer.encode(valid(e), 3, 2 ** 40 + i));
    expect(await writer.write(again)).toEqual({ stored: 0, duplicates: odd.length });
  });

  test('a current ClickHouse engine (chdb) reads the same RowBinary bytes as the same values, and knows the insert settings', async () => {
    const writer = createEventWriter({ http, database: db, logger: silentLogger, metrics: createIngestMetrics() });
    await writer.prepare();
    const body = Buffer.concat(
      odd.map((e, i) => {
        const ts = Buffer.alloc(4);
        ts.writeUInt32LE(Date.UTC(2026, 0, 1) / 1000);
        return Buffer.concat([(writer.encode(valid(e), 3, 2 ** 40 + i) as BinaryPendingRow).bytes, ts]);
      }),
    );
    const dir = mkdtempSync(join(tmpdir(), 'rowbinary-'));
    try {
      const file = join(dir, 'rows.bin');
      writeFileSync(file, body);
      const structure = EVENT_COLUMN_TYPES.map(([name, type]) => `${name} ${type}`).join(', ');
      const script = `import chdb, sys\nprint(chdb.query(sys.argv[1], 'JSONEachRow'))`;
      const settings = Object.entries(EVENT_INSERT_SETTINGS)
        .map(([k, v]) => `${k} = ${v}`)
        .join(', ');
      const quoted = structure.replace(/'/g, "\\'");
      const query = `SELECT ${columns.join(', ')} FROM file('${file}', 'RowBinary', '${quoted}') ORDER BY kafka_offset SETTINGS ${settings}`;
      const run = spawnSync('python3', ['-c', script, query], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
      expect(run.status, run.stderr).toBe(0);
      const current = run.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      const old = await readBack(binaryTable.text);
      // Current servers print 64-bit integers as numbers by default, 18.16 quotes them; 18.16
      // prints the DateTime 0 as zeros. Neither is a difference in what is stored.
      const unquote = (r: Record<string, unknown>) => ({
        ...r,
        amount_minor: String(r.amount_minor),
        kafka_offset: String(r.kafka_offset),
        occurred_at: r.occurred_at === '0000-00-00 00:00:00' ? '1970-01-01 00:00:00' : r.occurred_at,
      });
      expect(current.map(unquote)).toEqual(old.map(unquote));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a table that differs from migration 001 gets JSONEachRow; one changed under a running writer stops it', async () => {
    const altered = `${db}_altered`;
    await command(s.clickhouse, `CREATE DATABASE IF NOT EXISTS ${ident(altered)}`);
    try {
      await command(s.clickhouse, `CREATE TABLE ${ident(altered, 'payment_events')} AS ${binaryTable}`);
      const writer = createEventWriter({ http, database: altered, logger: silentLogger, metrics: createIngestMetrics() });
      expect(await writer.prepare()).toBe('RowBinary');
      const rows = [writer.encode(valid(makeEvent(20)), 0, 0)];
      await command(s.clickhouse, `ALTER TABLE ${ident(altered, 'payment_events')} MODIFY COLUMN extra FixedString(16)`);
      const err = await writer.write(rows).catch((e: unknown) => e);
      expect(isTableChanged(err), String(err)).toBe(true);
      expect(String(err)).toMatch(/extra: expected String, found FixedString\(16\)/);
      expect(await scalarCount(altered)).toBe(0);

      const restarted = createEventWriter({ http, database: altered, logger: silentLogger, metrics: createIngestMetrics() });
      expect(await restarted.prepare()).toBe('JSONEachRow');
      expect(await restarted.write([restarted.encode(valid(makeEvent(20)), 0, 0)])).toEqual({ stored: 1, duplicates: 0 });
    } finally {
      await command(s.clickhouse, `DROP DATABASE IF EXISTS ${ident(altered)}`);
    }
  });
});

async function scalarCount(database: string): Promise<number> {
  const rows = await queryRows<{ n: string }>(s.clickhouse, `SELECT count() AS n FROM ${ident(database, 'payment_events')}`);
  return Number(rows[0]!.n);
}
