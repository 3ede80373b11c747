import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { Logger } from '../log/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import { command, queryRows, type ClickHouseClient } from './clickhouse.ts';
import { ident, sql } from './sql.ts';

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

export interface Migration {
  version: number;
  name: string;
  /** Statements with `{db}` replaced by the database name. */
  statements: string[];
}

/** Splits a migration file into statements (on `;` at the end of a line), dropping comments. */
export function splitStatements(text: string): string[] {
  return text
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter((s) => s.length > 0);
}

/** Loads the versioned migrations shipped in storage/migrations, in order. */
export function loadMigrations(database: string): Migration[] {
  const db = ident(database).text;
  return readdirSync(MIGRATIONS_DIR)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => ({
      version: Number(file.slice(0, 3)),
      name: file.replace(/\.sql$/, ''),
      statements: splitStatements(readFileSync(new URL(file, MIGRATIONS_DIR), 'utf8').replaceAll('{db}', db)),
    }));
}

/**
 * The table and columns an `ALTER TABLE db.t ADD COLUMN a ..., ADD COLUMN b ...` adds, or null
 * for any other statement. 18.16 has no ADD COLUMN IF NOT EXISTS, so `migrate` skips such a
 * statement when every column exists already: a migration cut short after its ALTER can run again.
 */
export function addedColumns(statement: string): { database: string; table: string; columns: string[] } | null {
  const m = /^ALTER\s+TABLE\s+([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\s+(ADD\s+COLUMN\s[\s\S]*)$/i.exec(statement.trim());
  if (!m) return null;
  const columns = [...m[3]!.matchAll(/(?:^|,)\s*ADD\s+COLUMN\s+([A-Za-z_][A-Za-z0-9_]*)/gi)].map((c) => c[1]!);
  return columns.length ? { database: m[1]!, table: m[2]!, columns } : null;
}

/** Which of `columns` the table has (system.columns exists on every ClickHouse version). */
export const existingColumnsQuery = (database: string, table: string, columns: readonly string[]): string =>
  sql`SELECT name FROM system.columns WHERE database = ${database} AND table = ${table} AND name IN ${columns}`;

/** DDL for the database and the table that records applied migrations. */
export function bootstrapStatements(database: string): string[] {
  const db = ident(database);
  return [
    `CREATE DATABASE IF NOT EXISTS ${db}`,
    `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations (version UInt32, name String, applied_at DateTime('UTC')) ENGINE = ` +
      `ReplacingMergeTree(applied_at) ORDER BY version`,
  ];
}

/** How often a migration statement is tried before `migrate` gives up (instances racing each other). */
const MIGRATION_STATEMENT_ATTEMPTS = 4;

export interface MigrateOptions {
  /**
   * A migration lock without a heartbeat for this long is taken over: its holder crashed or was
   * killed mid-migration. @default 60 000 ms (the holder beats every sixth of it)
   */
  lockStaleMs?: number;
  /** How often a waiting instance looks at the lock. @default 500 ms */
  lockPollMs?: number;
}

/**
 * Applies the migrations not yet recorded, one instance at a time. Instances started together
 * (an upgrade, `start --roles` in several processes, a CLI beside a running pipeline) would
 * otherwise run them side by side, and an instance still at an old migration could create again
 * what another instance's later migration had dropped: 016's view re-created after 025 dropped
 * its table makes every insert into payment_events fail. So the first instance to find work
 * takes a lock (below); the others wait for it, then find nothing left, and an instance that
 * finds every migration recorded takes no lock at all. Statements stay idempotent (IF NOT
 * EXISTS, ADD COLUMN skipped when the columns exist), so a crash between a statement and its
 * record is harmless, and versions of paysentinel from before the lock, which do not take it,
 * are still met by the checks in applyPending.
 */
export async function migrate(client: ClickHouseClient, database: string, logger: Logger, options: MigrateOptions = {}): Promise<number[]> {
  for (const statement of bootstrapStatements(database)) await command(client, statement, 'create database');
  const applied = await readApplied(client, database);
  if (loadMigrations(database).every((m) => applied.has(m.version))) return [];
  return withMigrationLock(client, database, logger, options, () => applyPending(client, database, logger));
}

const readApplied = async (client: ClickHouseClient, database: string): Promise<Set<number>> =>
  new Set(
    (await queryRows<{ version: number }>(client, `SELECT DISTINCT version FROM ${ident(database)}.schema_migrations`, 'read applied migrations')).map((r) =>
      Number(r.version),
    ),
  );

/** The lock's table: its existence is the lock (CREATE TABLE without IF NOT EXISTS succeeds once); its rows are the holder's heartbeats. */
export const MIGRATION_LOCK_TABLE = 'migration_lock';

/** The statements of the migration lock (listed in test/sql-catalog.ts). */
export function migrationLockQueries(database: string, holder: string) {
  const lock = ident(database, MIGRATION_LOCK_TABLE);
  return {
    take: `CREATE TABLE ${lock.text} (holder String, at DateTime('UTC')) ENGINE = Log`,
    beat: sql`INSERT INTO ${lock} (holder, at) SELECT ${holder}, now()`,
    /** Heartbeats held, the newest's holder, and its age in seconds by the server's clock. */
    read: `SELECT count() AS n, argMax(holder, at) AS holder, toUInt32(now()) - toUInt32(max(at)) AS age FROM ${lock.text}`,
    mine: sql`SELECT count() AS n FROM ${lock} WHERE holder = ${holder}`,
    setAside: (aside: string) => `RENAME TABLE ${lock.text} TO ${ident(database, aside).text}`,
    dropAside: (aside: string) => `DROP TABLE IF EXISTS ${ident(database, aside).text}`,
    release: `DROP TABLE IF EXISTS ${lock.text}`,
  };
}

/**
 * ClickHouse's TABLE_ALREADY_EXISTS (57): the client parses the code out of a current server's
 * answer only, so 18.16's (`Code: 57, e.displayText() = ...`) is read from the message.
 */
export function alreadyExists(err: unknown): boolean {
  if (!(err instanceof PaysentinelError)) return false;
  const cause = err.cause as { code?: unknown; message?: unknown } | undefined;
  const code = cause?.code ?? /\bCode: (\d+)/.exec(String(cause?.message ?? err.message))?.[1];
  return String(code) === '57';
}

/**
 * Runs `work` holding the database's migration lock. The lock is a table: creating it succeeds
 * for one instance only. The holder writes a heartbeat row (the server's clock) every sixth of
 * `lockStaleMs` and drops the table when done, if it still holds it. A waiter looks every
 * `lockPollMs`; a lock whose newest heartbeat is older than `lockStaleMs` (or that has stayed
 * empty that long) belonged to an instance that died, and is taken over: renamed aside (one
 * waiter wins the rename), dropped, and created again.
 */
async function withMigrationLock<T>(client: ClickHouseClient, database: string, logger: Logger, options: MigrateOptions, work: () => Promise<T>): Promise<T> {
  const staleMs = options.lockStaleMs ?? 60_000;
  const pollMs = options.lockPollMs ?? 500;
  const holder = `${process.pid}-${randomUUID()}`;
  const q = migrationLockQueries(database, holder);
  const beat = () => command(client, q.beat, 'migration lock heartbeat');
  let emptySince: number | undefined;
  let lastLog = 0;
  for (;;) {
    try {
      await command(client, q.take, 'take the migration lock');
      break;
    } catch (err) {
      if (!alreadyExists(err)) throw err;
    }
    // Held by another instance: by whom, and how long ago its last heartbeat was (server clock).
    const [held] = await queryRows<{ n: string; holder: string; age: string }>(client, q.read, 'read the migration lock').catch(
      () => [] as { n: string; holder: string; age: string }[],
    ); // dropped meanwhile: try to take it at once
    if (held) {
      const empty = Number(held.n) === 0;
      emptySince = empty ? (emptySince ?? Date.now()) : undefined;
      const stale = empty ? Date.now() - emptySince! > staleMs : Number(held.age) * 1000 > staleMs;
      if (stale) {
        logger.warn('taking over a stale migration lock', { holder: held.holder || '(none)', heartbeatAgeSeconds: empty ? null : Number(held.age) });
        const aside = `${MIGRATION_LOCK_TABLE}_stale_${randomUUID().replaceAll('-', '')}`;
        try {
          await command(client, q.setAside(aside), 'set a stale migration lock aside');
          await command(client, q.dropAside(aside), 'drop a stale migration lock');
        } catch {
          // Another waiter set it aside first.
        }
        emptySince = undefined;
        continue;
      }
      if (Date.now() - lastLog >= 10_000) {
        lastLog = Date.now();
        logger.info('waiting for another instance to finish migrating', { holder: held.holder || '(starting)' });
      }
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
  const heartbeat = setInterval(
    () => void beat().catch((err) => logger.debug('migration lock heartbeat failed', { err })),
    Math.max(50, Math.floor(staleMs / 6)),
  );
  heartbeat.unref();
  try {
    await beat();
    return await work();
  } finally {
    clearInterval(heartbeat);
    try {
      const [mine] = await queryRows<{ n: string }>(client, q.mine, 'read the migration lock');
      if (Number(mine?.n ?? 0) > 0) await command(client, q.release, 'release the migration lock');
    } catch (err) {
      // Left behind, it is taken over once stale.
      logger.warn('could not release the migration lock', { err });
    }
  }
}

/** Applies, in order, the migrations not recorded yet. */
async function applyPending(client: ClickHouseClient, database: string, logger: Logger): Promise<number[]> {
  const db = ident(database);
  const applied = await readApplied(client, database);
  const done: number[] = [];
  for (const migration of loadMigrations(database)) {
    if (applied.has(migration.version)) continue;
    // An instance of a version from before the lock, migrating at the same moment, may have
    // finished this migration and started later ones, which drop what this one's statements
    // still use (015 drops 014's copy): once it is recorded, its work is done and the rest of it
    // is skipped.
    const doneElsewhere = async () => (await readApplied(client, database)).has(migration.version);
    if (await doneElsewhere()) continue;
    let skipped = false;
    for (const statement of migration.statements) {
      if (skipped) break;
      const adds = addedColumns(statement);
      const added = async () =>
        adds !== null &&
        (await queryRows<{ name: string }>(client, existingColumnsQuery(adds.database, adds.table, adds.columns), 'read columns')).length ===
          adds.columns.length;
      if (await added()) continue;
      for (let attempt = 1; ; attempt++) {
        try {
          await command(client, statement, `migration ${migration.name}`);
          break;
        } catch (err) {
          // Another instance migrating at the same moment added the columns between the check and
          // the ALTER: the statement's work is done.
          if (await added()) break;
          // Or it finished the whole migration (and may have dropped, in a later one, the table
          // this statement reads or fills).
          if (await doneElsewhere()) {
            skipped = true;
            break;
          }
          // Or it created the same object a moment earlier (18.16's IF NOT EXISTS is not atomic
          // against a concurrent CREATE): the statements are idempotent, so run it again.
          if (attempt >= MIGRATION_STATEMENT_ATTEMPTS) throw err;
          await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
        }
      }
    }
    if (skipped) continue;
    await command(
      client,
      sql`INSERT INTO ${db}.schema_migrations (version, name, applied_at) VALUES (${migration.version}, ${migration.name}, ${new Date()})`,
      'record migration',
    );
    logger.info('applied migration', { migration: migration.name });
    done.push(migration.version);
  }
  return done;
}
