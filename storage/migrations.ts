import { readdirSync, readFileSync } from 'node:fs';
import type { Logger } from '../log/index.ts';
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

/**
 * Applies the migrations not yet recorded. Statements are idempotent (IF NOT EXISTS, and ADD
 * COLUMN skipped when the columns exist), so two instances starting together, or a crash between
 * a statement and its record, are harmless.
 */
/** How often a migration statement is tried before `migrate` gives up (instances racing each other). */
const MIGRATION_STATEMENT_ATTEMPTS = 4;

export async function migrate(client: ClickHouseClient, database: string, logger: Logger): Promise<number[]> {
  for (const statement of bootstrapStatements(database)) await command(client, statement, 'create database');
  const db = ident(database);
  const readApplied = async () =>
    new Set(
      (await queryRows<{ version: number }>(client, `SELECT DISTINCT version FROM ${db}.schema_migrations`, 'read applied migrations')).map((r) =>
        Number(r.version),
      ),
    );
  const applied = await readApplied();
  const done: number[] = [];
  for (const migration of loadMigrations(database)) {
    if (applied.has(migration.version)) continue;
    // Another instance migrating at the same moment may have finished this migration and
    // started later ones, which drop what this one's statements still use (015 drops 014's copy):
    // once it is recorded, its work is done and the rest of it is skipped.
    const doneElsewhere = async () => (await readApplied()).has(migration.version);
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
