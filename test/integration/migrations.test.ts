import { afterAll, describe, expect, test } from 'vitest';
import { silentLogger } from '../../log/index.ts';
import { command, createClickHouse, queryRows } from '../../storage/clickhouse.ts';
import { loadMigrations, migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { loadConfig } from '../../config/index.ts';

/**
 * Several instances started together (an upgrade, `start --roles` in three processes) each run
 * `migrate` on the same database: none may fail, and the schema ends as one run makes it.
 */
const config = loadConfig(process.env);
const clickhouse = createClickHouse(config);
const database = `paysentinel_migrate_${process.pid}_${Date.now()}`;
afterAll(async () => {
  await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`);
  await clickhouse.close();
});

describe('migrate', () => {
  test('four instances migrating a new database at once all succeed, and every migration is recorded', async () => {
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => migrate(clickhouse, database, silentLogger)));
    expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    const recorded = await queryRows<{ version: number }>(clickhouse, `SELECT DISTINCT version FROM ${ident(database)}.schema_migrations ORDER BY version`);
    expect(recorded.map((r) => Number(r.version))).toEqual(loadMigrations(database).map((m) => m.version));
    // A later start finds nothing to do.
    expect(await migrate(clickhouse, database, silentLogger)).toEqual([]);
  });
});
