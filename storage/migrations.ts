import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { Logger } from '../log/index.ts';
import { PaysentinelError } from '../errors/index.ts';
import type { Config } from '../config/index.ts';
import { MIGRATION_TIMEOUT_MS, command, createClickHouse, queryRows, type ClickHouseClient } from './clickhouse.ts';
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
   * A migration lock whose holder has not beaten for this long is taken over: the holder crashed
   * or was killed mid-migration. @default 30 000 ms (the holder beats every sixth of it)
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
 * takes a lock (withMigrationLock); the others wait for it, then find nothing left, and an
 * instance that finds every migration recorded takes no lock at all. Statements stay idempotent
 * (IF NOT EXISTS, ADD COLUMN skipped when the columns exist), so a crash between a statement and
 * its record is harmless, and versions of paysentinel from before the lock, which do not take
 * it, are still met by the checks in applyPending.
 */
export async function migrate(client: ClickHouseClient, database: string, logger: Logger, options: MigrateOptions = {}): Promise<number[]> {
  for (const statement of bootstrapStatements(database)) await runTried(client, statement, 'create database');
  const applied = await readApplied(client, database);
  if (loadMigrations(database).every((m) => applied.has(m.version))) return [];
  return withMigrationLock(client, database, logger, options, (held) => applyPending(client, database, logger, held));
}

/**
 * `migrate` on the configured database through a client of its own, whose requests may last
 * MIGRATION_TIMEOUT_MS: a migration's copy over a large store outlasts the usual 30 s, and a
 * request that timed out would be sent again while the server still runs the first.
 */
export async function migrateDatabase(config: Config, logger: Logger, options: MigrateOptions = {}): Promise<number[]> {
  const client = createClickHouse(config, { requestTimeoutMs: MIGRATION_TIMEOUT_MS });
  try {
    return await migrate(client, config.clickhouseDatabase, logger, options);
  } finally {
    await client.close();
  }
}

const readApplied = async (client: ClickHouseClient, database: string): Promise<Set<number>> =>
  new Set(
    (await queryRows<{ version: number }>(client, `SELECT DISTINCT version FROM ${ident(database)}.schema_migrations`, 'read applied migrations')).map((r) =>
      Number(r.version),
    ),
  );

/** The lock's table: its existence is the lock (CREATE TABLE without IF NOT EXISTS succeeds once); its rows are the owner's heartbeats. */
export const MIGRATION_LOCK_TABLE = 'migration_lock';

/**
 * The statements of the migration lock (listed in test/sql-catalog.ts). The table is created
 * with its owner's row in it (owner = 1), so it names its owner from the start; heartbeats are
 * rows with owner = 0. A heartbeat that lands in another instance's lock (written by an owner
 * that lost its lock a moment before) names no owner and is not counted as that lock's beat.
 */
export function migrationLockQueries(database: string, holder: string) {
  const lock = ident(database, MIGRATION_LOCK_TABLE);
  return {
    take: sql`CREATE TABLE ${lock} ENGINE = Log AS SELECT ${holder} AS holder, toUInt8(1) AS owner, now() AS at`,
    beat: sql`INSERT INTO ${lock} (holder, owner, at) SELECT ${holder}, toUInt8(0), now()`,
    /** Per holder: whether it owns the lock, and its newest row's age in seconds (server clock). */
    read: (table = MIGRATION_LOCK_TABLE) =>
      `SELECT holder, max(owner) AS owns, toUInt32(now()) - toUInt32(max(at)) AS age FROM ${ident(database, table).text} GROUP BY holder`,
    setAside: (aside: string) => `RENAME TABLE ${lock.text} TO ${ident(database, aside).text}`,
    putBack: (aside: string) => `RENAME TABLE ${ident(database, aside).text} TO ${lock.text}`,
    dropAside: (aside: string) => `DROP TABLE IF EXISTS ${ident(database, aside).text}`,
    release: `DROP TABLE IF EXISTS ${lock.text}`,
  };
}

/** The server error code of a failed statement: parsed by the client from a current server's answer, read from 18.16's message. */
function serverCode(err: unknown): string | undefined {
  if (!(err instanceof PaysentinelError)) return undefined;
  const cause = err.cause as { code?: unknown; message?: unknown } | undefined;
  const code = cause?.code ?? /\bCode: (\d+)/.exec(String(cause?.message ?? err.message))?.[1];
  return code === undefined ? undefined : String(code);
}

/**
 * The lock is held by someone else: TABLE_ALREADY_EXISTS (57), or, while another instance
 * creates, drops or renames it, 18.16's DDL guard ("... is creating or attaching right now",
 * "... is dropping or detaching right now", "... is being renamed right now").
 */
export function alreadyExists(err: unknown): boolean {
  if (!(err instanceof PaysentinelError)) return false;
  const text = `${err.message} ${String((err.cause as { message?: unknown } | undefined)?.message ?? '')}`;
  return serverCode(err) === '57' || / right now\b/.test(text);
}

/** UNKNOWN_TABLE (60): the lock is gone. */
const unknownTable = (err: unknown): boolean => serverCode(err) === '60';

/** Thrown inside the work when this instance finds the lock is no longer its own. */
class LockLost extends Error {}

interface LockRow {
  holder: string;
  owns: number;
  age: number;
}

/** Who owns the lock ('' when no row names one) and how many seconds ago the owner last beat (Infinity without a row). */
function ownerOf(rows: readonly LockRow[]): { owner: string; ageSeconds: number } {
  const row = rows.find((r) => Number(r.owns) === 1);
  return row ? { owner: row.holder, ageSeconds: Number(row.age) } : { owner: '', ageSeconds: Infinity };
}

/**
 * Runs `work` holding the database's migration lock, and again if the lock was lost on the way.
 * The lock is a table: creating it succeeds for one instance only, and it names its owner. The
 * owner writes a heartbeat row every sixth of `lockStaleMs`, checks before each statement (the
 * `held` callback) that the lock is still its own, and drops it when done. A waiter looks every
 * `lockPollMs`. A lock whose owner has not beaten for `lockStaleMs` (or that names no owner, or
 * cannot be read, for that long) belonged to an instance that died: the waiter renames it aside
 * (one waiter wins the rename), and drops it if it is still the lock it judged stale; if it is
 * another's, taken meanwhile, it puts it back.
 */
async function withMigrationLock<T>(
  client: ClickHouseClient,
  database: string,
  logger: Logger,
  options: MigrateOptions,
  work: (held: () => Promise<void>) => Promise<T>,
): Promise<T> {
  const staleMs = options.lockStaleMs ?? 30_000;
  const pollMs = options.lockPollMs ?? 500;
  const holder = `${process.pid}-${randomUUID()}`;
  const q = migrationLockQueries(database, holder);
  const readLock = async (table?: string) => queryRows<LockRow>(client, q.read(table), 'read the migration lock');
  for (;;) {
    await acquire();
    let lost = false;
    const held = async () => {
      // A read that fails for another reason than a missing lock proves nothing either way.
      const rows = lost ? [] : await readLock().catch((err) => (unknownTable(err) ? [] : null));
      if (rows !== null && ownerOf(rows).owner !== holder) {
        lost = true;
        throw new LockLost();
      }
    };
    const heartbeat = setInterval(
      () =>
        void held()
          .then(() => command(client, q.beat, 'migration lock heartbeat'))
          .catch((err) => {
            if (!(err instanceof LockLost)) logger.warn('migration lock heartbeat failed', { err });
          }),
      Math.max(50, Math.floor(staleMs / 6)),
    );
    heartbeat.unref();
    try {
      return await work(held);
    } catch (err) {
      if (!(err instanceof LockLost)) throw err;
      logger.warn('lost the migration lock (taken over as stale); waiting for it again');
    } finally {
      clearInterval(heartbeat);
      // Even after a look that said it was lost (the lock set aside for a moment by a waiter, then
      // put back): it is dropped only if it names this instance.
      try {
        if (ownerOf(await readLock()).owner === holder) await command(client, q.release, 'release the migration lock');
      } catch (err) {
        // Left behind, it is taken over once stale.
        logger.warn('could not release the migration lock', { err });
      }
    }
  }

  async function acquire(): Promise<void> {
    /** Since when the lock has looked ownerless or unreadable, continuously (this process's clock). */
    let badSince: number | undefined;
    let lastLog = 0;
    for (;;) {
      try {
        await command(client, q.take, 'take the migration lock');
        return;
      } catch (err) {
        if (!alreadyExists(err)) throw err;
      }
      let rows: LockRow[];
      try {
        rows = await readLock();
      } catch (err) {
        if (unknownTable(err)) continue; // released meanwhile: take it now
        rows = [];
      }
      const { owner, ageSeconds } = ownerOf(rows);
      if (owner === holder) return; // still this instance's, from before it thought it lost it
      if (owner === '') badSince ??= Date.now();
      else badSince = undefined;
      const stale = owner === '' ? Date.now() - badSince! > staleMs : ageSeconds * 1000 > staleMs;
      if (stale) {
        badSince = undefined;
        if (await takeOver(owner, ageSeconds)) continue;
      }
      if (Date.now() - lastLog >= 10_000) {
        lastLog = Date.now();
        logger.info('waiting for another instance to finish migrating', { holder: owner || '(starting)' });
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }

  /** Sets a stale lock aside; true when something changed (the lock was moved), so it is worth trying to take it at once. */
  async function takeOver(judged: string, ageSeconds: number): Promise<boolean> {
    logger.warn('taking over a stale migration lock', { holder: judged || '(none)', heartbeatAgeSeconds: Number.isFinite(ageSeconds) ? ageSeconds : null });
    const aside = `${MIGRATION_LOCK_TABLE}_stale_${randomUUID().replaceAll('-', '')}`;
    try {
      await command(client, q.setAside(aside), 'set a stale migration lock aside');
    } catch {
      return false; // another waiter set it aside first, or renaming is refused: look again after a pause
    }
    const rows = await readLock(aside).catch(() => null);
    // Unreadable now: dropped only if it was unreadable (judged ownerless) before too.
    const now = rows === null ? (judged === '' ? { owner: '' } : { owner: null }) : ownerOf(rows);
    if (now.owner === judged) {
      await command(client, q.dropAside(aside), 'drop a stale migration lock').catch(() => {});
      return true;
    }
    // Another waiter took the lock over between this one's look and its rename: give it back.
    // If a third has created the lock meanwhile, this one is gone; its owner finds out before its
    // next statement and waits again.
    await command(client, q.putBack(aside), 'put a migration lock back').catch(() =>
      command(client, q.dropAside(aside), 'drop a migration lock').catch(() => {}),
    );
    return true;
  }
}

/**
 * Runs one statement, tried up to MIGRATION_STATEMENT_ATTEMPTS times, 200 ms x attempt apart:
 * 18.16's IF NOT EXISTS is not atomic against another instance's CREATE of the same object at
 * the same moment, and that instance has done the work, so the idempotent statement is run again.
 * `settled`, asked after each failure, may say the work was done elsewhere: its answer is returned.
 */
async function runTried<S extends string>(
  client: ClickHouseClient,
  statement: string,
  what: string,
  settled: () => Promise<S | null> = async () => null,
): Promise<S | 'ran'> {
  for (let attempt = 1; ; attempt++) {
    try {
      await command(client, statement, what);
      return 'ran';
    } catch (err) {
      const answer = await settled();
      if (answer !== null) return answer;
      if (attempt >= MIGRATION_STATEMENT_ATTEMPTS) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
    }
  }
}

/** Applies, in order, the migrations not recorded yet. */
async function applyPending(client: ClickHouseClient, database: string, logger: Logger, held: () => Promise<void>): Promise<number[]> {
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
      await held();
      const outcome = await runTried(client, statement, `migration ${migration.name}`, async () => {
        // Another instance migrating at the same moment added the columns between the check and
        // the ALTER: the statement's work is done.
        if (await added()) return 'done';
        // Or it finished the whole migration (and may have dropped, in a later one, the table
        // this statement reads or fills).
        if (await doneElsewhere()) return 'skip the rest';
        return null;
      });
      skipped = outcome === 'skip the rest';
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
