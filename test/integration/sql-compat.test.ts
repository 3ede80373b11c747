import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, test } from 'vitest';
import { shippedStatements } from '../sql-catalog.ts';
import { command, insertRows, queryRows } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { createClickHouseHttp } from '../../storage/http.ts';
import { ident, sql } from '../../storage/sql.ts';
import { silentLogger } from '../../log/index.ts';
import { repoRoot, services } from './helpers.ts';

const s = services();
afterAll(() => s.cleanup());

describe('SQL runs on the old and the current ClickHouse', () => {
  test('every shipped statement runs on the real server (18.16 here)', async () => {
    const failures: string[] = [];
    const http = createClickHouseHttp(s.config);
    for (const st of shippedStatements(s.config.clickhouseDatabase)) {
      try {
        // One row with a hostile value in the external table's (single, String) column.
        if (st.external) await http.query(st.sql, { ...st.external, rows: [{ [st.external.structure.split(' ')[0]!]: "it's" }] }, st.name);
        else await command(s.clickhouse, st.sql, st.name);
      } catch (err) {
        failures.push(`${st.name}: ${(err as Error).message}`);
      }
    }
    expect(failures).toEqual([]);
  });

  test('every shipped statement runs on a current ClickHouse engine (chdb)', () => {
    const statements = shippedStatements('paysentinel');
    const run = spawnSync('python3', ['test/compat/chdb_run.py'], { cwd: repoRoot, input: JSON.stringify(statements), encoding: 'utf8', timeout: 120_000 });
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as { fatal?: string; version: string; results: { name: string; ok: boolean; error?: string }[] };
    expect(out.fatal).toBeUndefined();
    expect(Number(out.version.split('.')[0])).toBeGreaterThanOrEqual(24);
    expect(out.results.filter((r) => !r.ok)).toEqual([]);
    expect(out.results).toHaveLength(statements.length);
  });

  test('migrations are recorded and applying them again changes nothing', async () => {
    await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
    expect(await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger)).toEqual([]);
    const rows = await queryRows<{ version: number; n: string }>(
      s.clickhouse,
      `SELECT version, count() AS n FROM ${ident(s.config.clickhouseDatabase, 'schema_migrations')} FINAL GROUP BY version`,
    );
    expect(rows.map((r) => Number(r.version))).toContain(1);
  });

  test('hostile strings round-trip verbatim through a real insert and select', async () => {
    const table = ident(s.config.clickhouseDatabase, 'hostile');
    await command(s.clickhouse, `CREATE TABLE IF NOT EXISTS ${table} (id UInt32, v String) ENGINE = MergeTree ORDER BY id`);
    const hostile = [
      "O'Brien",
      "''",
      'back\\slash\\',
      "'; DROP TABLE payment_events; --",
      "\\'; DROP TABLE x; --",
      'nul\0byte\0',
      'line\nbreak\r\ttab',
      '\x01\x02\x1b[31m\x7f',
      '支付成功 ✓ 😀 مرحبا',
      '"double" `back` $dollar {brace}',
      'x'.repeat(200_000),
    ];
    await insertRows(
      s.clickhouse,
      table.text,
      hostile.map((v, id) => ({ id, v })),
    );
    for (const [id, v] of hostile.entries()) {
      const byValue = await queryRows<{ id: number; v: string }>(s.clickhouse, sql`SELECT id, v FROM ${table} WHERE v = ${v}`);
      expect(byValue, `value #${id}`).toEqual([{ id, v }]);
    }
    const all = await queryRows<{ v: string }>(s.clickhouse, sql`SELECT v FROM ${table} WHERE v IN ${hostile} ORDER BY id`);
    expect(all.map((r) => r.v)).toEqual(hostile);
    expect(await queryRows(s.clickhouse, `SELECT count() AS n FROM ${ident(s.config.clickhouseDatabase, 'payment_events')}`)).toEqual([{ n: '0' }]);
  });
});
