import { afterAll, describe, expect, test } from 'vitest';
import { silentLogger, type Logger } from '../../log/index.ts';
import { command, createClickHouse, queryRows } from '../../storage/clickhouse.ts';
import { MIGRATION_LOCK_TABLE, loadMigrations, migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { loadConfig } from '../../config/index.ts';

/**
 * Several instances started together (an upgrade, `start --roles` in three processes) each run
 * `migrate` on the same database: none may fail, and the schema ends as one run makes it.
 */
const config = loadConfig(process.env);
const clickhouse = createClickHouse(config);
const database = `paysentinel_migrate_${process.pid}_${Date.now()}`;
const others: string[] = [];
afterAll(async () => {
  for (const d of [database, ...others]) await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(d)}`);
  await clickhouse.close();
});

const tablesOf = async (d: string) =>
  (await queryRows<{ name: string }>(clickhouse, `SELECT name FROM system.tables WHERE database = '${d}' ORDER BY name`)).map((r) => r.name);
const recordedIn = async (d: string) =>
  (await queryRows<{ version: number }>(clickhouse, `SELECT DISTINCT version FROM ${ident(d)}.schema_migrations ORDER BY version`)).map((r) =>
    Number(r.version),
  );

/** A logger that keeps what it was told. */
function recordingLogger(lines: string[]): Logger {
  const log = (msg: string) => void lines.push(msg);
  const logger: Logger = { debug: log, info: log, warn: log, error: log, child: () => logger };
  return logger;
}

/** Creates the lock as another instance holds it, its owner's newest row `ageSeconds` ago (null: created, no row yet). */
async function holdLock(d: string, ageSeconds: number | null): Promise<void> {
  const lock = ident(d, MIGRATION_LOCK_TABLE);
  await command(clickhouse, `CREATE DATABASE IF NOT EXISTS ${ident(d)}`);
  await command(clickhouse, `CREATE TABLE ${lock} (holder String, owner UInt8, at DateTime) ENGINE = Log`);
  if (ageSeconds !== null) await command(clickhouse, `INSERT INTO ${lock} (holder, owner, at) SELECT 'other', 1, now() - ${ageSeconds}`);
}

/** The other instance's heartbeat. */
const beat = (d: string) => command(clickhouse, `INSERT INTO ${ident(d, MIGRATION_LOCK_TABLE)} (holder, owner, at) SELECT 'other', 0, now()`);

describe('migrate', () => {
  test('four instances migrating a new database at once all succeed, and every migration is recorded', async () => {
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => migrate(clickhouse, database, silentLogger)));
    expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    // Each migration was applied by exactly one of them.
    const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    expect(applied.sort((a, b) => a - b)).toEqual(loadMigrations(database).map((m) => m.version));
    const recorded = await queryRows<{ version: number }>(clickhouse, `SELECT DISTINCT version FROM ${ident(database)}.schema_migrations ORDER BY version`);
    expect(recorded.map((r) => Number(r.version))).toEqual(loadMigrations(database).map((m) => m.version));
    // A later start finds nothing to do.
    expect(await migrate(clickhouse, database, silentLogger)).toEqual([]);
    // No instance created again what a later migration dropped (a view into a dropped table makes
    // every insert fail), and the lock is gone.
    const tables = await tablesOf(database);
    expect(tables).toContain('attempt_summaries_mv');
    expect(
      tables.filter((t) =>
        [
          'payment_attempt_states',
          'payment_attempt_states_mv',
          'attempt_states',
          'attempt_states_mv',
          'payment_events_by_offset',
          'payment_events_by_offset_mv',
        ].includes(t),
      ),
    ).toEqual([]);
    expect(tables.filter((t) => t.startsWith(MIGRATION_LOCK_TABLE))).toEqual([]);
    await command(
      clickhouse,
      `INSERT INTO ${ident(database, 'payment_events')} (event_id, occurred_at, type, status, order_id, amount_minor, currency, channel, merchant_id, kafka_partition, kafka_offset, ingested_at) VALUES ('e1', now(), 'payment', 'succeeded', 'o1', 100, 'EUR', 'card', 'm1', 0, 0, now())`,
    );
  });

  test('an instance waits while another holds the lock, migrating nothing meanwhile, and migrates once it is released', async () => {
    const d = `${database}_held`;
    others.push(d);
    await holdLock(d, 0);
    const lines: string[] = [];
    let settled = false;
    const waiting = migrate(clickhouse, d, recordingLogger(lines), { lockPollMs: 100 }).finally(() => (settled = true));
    await expect.poll(() => lines, { timeout: 10_000 }).toContain('waiting for another instance to finish migrating');
    expect(settled).toBe(false);
    expect(await recordedIn(d)).toEqual([]);
    // The holder ends without having migrated (it released the lock).
    await command(clickhouse, `DROP TABLE ${ident(d, MIGRATION_LOCK_TABLE)}`);
    expect(await waiting).toEqual(loadMigrations(d).map((m) => m.version));
    expect((await tablesOf(d)).filter((t) => t.startsWith(MIGRATION_LOCK_TABLE))).toEqual([]);
  });

  test('a lock left by an instance that died is taken over: one whose heartbeat is old at once, one never beaten once stale', async () => {
    for (const [suffix, age, staleMs] of [
      ['old', 120, 30_000],
      ['empty', null, 1_500],
    ] as const) {
      const d = `${database}_${suffix}`;
      others.push(d);
      await holdLock(d, age);
      const lines: string[] = [];
      const t = Date.now();
      expect(await migrate(clickhouse, d, recordingLogger(lines), { lockPollMs: 100, lockStaleMs: staleMs })).toEqual(loadMigrations(d).map((m) => m.version));
      expect(lines).toContain('taking over a stale migration lock');
      if (age === null) expect(Date.now() - t).toBeGreaterThanOrEqual(staleMs);
      expect((await tablesOf(d)).filter((t) => t.startsWith(MIGRATION_LOCK_TABLE))).toEqual([]);
    }
  });

  test('a holder that keeps beating is not taken over, however long it holds the lock', async () => {
    const d = `${database}_beating`;
    others.push(d);
    await holdLock(d, 0);
    let settled = false;
    const lines: string[] = [];
    const waiting = migrate(clickhouse, d, recordingLogger(lines), { lockPollMs: 100, lockStaleMs: 2_000 }).finally(() => (settled = true));
    // Four times the stale limit, beating every half second.
    for (const end = Date.now() + 8_000; Date.now() < end; ) {
      await beat(d);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(settled).toBe(false);
    expect(lines).not.toContain('taking over a stale migration lock');
    expect(await recordedIn(d)).toEqual([]);
    // It stops beating (it died): the waiter takes over and migrates.
    expect(await waiting).toEqual(loadMigrations(d).map((m) => m.version));
    expect(lines).toContain('taking over a stale migration lock');
  });

  test('two instances waiting on one stale lock: one takes it over and migrates, the other then finds the work done', async () => {
    const d = `${database}_two`;
    others.push(d);
    await holdLock(d, 600);
    const options = { lockPollMs: 50, lockStaleMs: 30_000 };
    const results = await Promise.all([migrate(clickhouse, d, silentLogger, options), migrate(clickhouse, d, silentLogger, options)]);
    expect(results.flat().sort((a, b) => a - b)).toEqual(loadMigrations(d).map((m) => m.version));
    expect((await tablesOf(d)).filter((t) => t.startsWith(MIGRATION_LOCK_TABLE))).toEqual([]);
  });
});
