import { describe, expect, test } from 'vitest';
import { addedColumns, loadMigrations } from './migrations.ts';

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
