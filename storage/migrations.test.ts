import { describe, expect, test } from 'vitest';
import { PaysentinelError } from '../errors/index.ts';
import { addedColumns, alreadyExists, loadMigrations } from './migrations.ts';

describe('addedColumns', () => {
  test('names the table and every column an ADD COLUMN statement adds', () => {
    expect(addedColumns("ALTER TABLE db.case_versions ADD COLUMN assignee String DEFAULT '', ADD COLUMN resolution String DEFAULT ''")).toEqual({
      database: 'db',
      table: 'case_versions',
      columns: ['assignee', 'resolution'],
    });
    expect(addedColumns('alter table db.t\n  add column a UInt8')).toEqual({ database: 'db', table: 't', columns: ['a'] });
  });

  test('is null for every other statement, so only ADD COLUMN is ever skipped', () => {
    expect(addedColumns('ALTER TABLE db.t DROP COLUMN a')).toBeNull();
    expect(addedColumns('ALTER TABLE db.t MODIFY COLUMN a String')).toBeNull();
    expect(addedColumns('CREATE TABLE IF NOT EXISTS db.t (a String) ENGINE = Log')).toBeNull();
  });

  test('migration 018 adds assignee and resolution to case_versions in one statement', () => {
    const m = loadMigrations('ps').find((x) => x.version === 18)!;
    expect(m.statements.map(addedColumns).filter(Boolean)).toEqual([{ database: 'ps', table: 'case_versions', columns: ['assignee', 'resolution'] }]);
  });
});

describe('alreadyExists: the migration lock is held', () => {
  const failed = (cause: unknown) => new PaysentinelError('CLICKHOUSE_QUERY_FAILED', 'take the migration lock: ...', { cause });
  test("18.16's answer (code in the message) and a current server's (code parsed by the client)", () => {
    expect(
      alreadyExists(failed(new Error('Code: 57, e.displayText() = DB::Exception: Table db.migration_lock already exists., e.what() = DB::Exception'))),
    ).toBe(true);
    expect(alreadyExists(failed(Object.assign(new Error('Table db.migration_lock already exists. (TABLE_ALREADY_EXISTS)'), { code: '57' })))).toBe(true);
    // 18.16, while another instance's CREATE of the lock still runs.
    expect(alreadyExists(failed(new Error('Code: 500, e.displayText() = DB::Exception: Table db.migration_lock is creating or attaching right now')))).toBe(
      true,
    );
    // ... or dropping it (a release), or renaming it (a take-over).
    expect(alreadyExists(failed(new Error('Code: 473, e.displayText() = DB::Exception: Table db.migration_lock is dropping or detaching right now')))).toBe(
      true,
    );
    expect(alreadyExists(failed(new Error('Code: 473, e.displayText() = DB::Exception: Some table right now is being renamed to db.migration_lock')))).toBe(
      true,
    );
  });
  test('any other failure is not the lock being held', () => {
    expect(alreadyExists(failed(new Error('Code: 570, e.displayText() = something else')))).toBe(false);
    expect(alreadyExists(failed(new Error('Code: 241, e.displayText() = Memory limit (for query) exceeded')))).toBe(false);
    expect(alreadyExists(failed(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })))).toBe(false);
    expect(alreadyExists(new Error('Code: 57'))).toBe(false);
  });
});
