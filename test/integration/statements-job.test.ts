import { copyFileSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { recentRuns } from '../../analytics/jobs.ts';
import { validateEvent } from '../../contract/validate.ts';
import { toEventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import { command, createClickHouse, insertRows, queryRows, type ClickHouseClient } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident, toDateTimeText } from '../../storage/sql.ts';
import { run as runStatementsJob } from '../../statements/job.ts';
import { simulatedStatement } from '../../statements/simulated.ts';
import { writeStatement } from '../../statements/write.ts';
import { configFor, isolatedEnv, scalar } from './helpers.ts';

const config = configFor(isolatedEnv());
const database = config.clickhouseDatabase;
let clickhouse: ClickHouseClient;
const inbox = mkdtempSync(join(tmpdir(), 'statements-inbox-'));
const day = { fromMs: Date.UTC(2026, 10, 24, 16), toMs: Date.UTC(2026, 10, 25, 16) };
const NOW = new Date(Date.UTC(2026, 10, 26, 1));
const deps = () => ({ clickhouse, database, logger: silentLogger, statements: { dir: inbox, graceMs: 30 * 60_000, maxBytes: 1 << 30 } });
const count = (table: string) => scalar(clickhouse, `SELECT count() FROM ${ident(database, table)} FINAL`);

beforeAll(async () => {
  clickhouse = createClickHouse(config);
  await migrate(clickhouse, database, silentLogger);
  const events = [...createTrafficGenerator({ seed: 5, rate: 100, durationMs: 20_000, startMs: day.fromMs + 3_600_000 })].flatMap((i) =>
    i.event ? [i.event] : [],
  );
  await insertRows(
    clickhouse,
    ident(database, 'payment_events').text,
    events.map((e, i) => {
      const v = validateEvent(e);
      if (!v.ok) throw new Error(v.reason);
      return toEventRow(v.value, 0, i, toDateTimeText(day.toMs));
    }),
  );
  mkdirSync(join(inbox, 'wechat'));
  mkdirSync(join(inbox, 'generic', 'card'), { recursive: true });
  const statement = simulatedStatement(events, 'wechat_pay', day, { currencies: true, inject: false });
  writeFileSync(join(inbox, 'wechat', 'bill-2026-11-25.csv'), writeStatement('wechat', statement.lines, day));
  const cardLine = 'transaction_id,order_id,type,amount,currency,occurred_at\nx1,o-x1,payment,1.00,USD,2026-11-25T10:00:00Z\n';
  // Generic (and Stripe) files name their period; without one, with two dates, or with lines outside it they are refused.
  writeFileSync(join(inbox, 'generic', 'card', 'settled_2026-11-25.csv'), cardLine);
  writeFileSync(join(inbox, 'generic', 'card', 'settled.csv'), cardLine.replace('x1,o-x1', 'x3,o-x3'));
  writeFileSync(join(inbox, 'generic', 'card', 'settled_2026-11-25_2026-11-26.csv'), cardLine.replace('x1,o-x1', 'x4,o-x4'));
  writeFileSync(join(inbox, 'generic', 'card', 'settled_2026-11-24.csv'), cardLine.replace('x1,o-x1', 'x5,o-x5'));
  writeFileSync(
    join(inbox, 'generic', 'no-channel.csv'),
    'transaction_id,order_id,type,amount,currency,occurred_at\nx2,o-x2,payment,1.00,USD,2026-11-25T10:00:00Z\n',
  );
  writeFileSync(join(inbox, 'wechat', 'broken.csv'), 'not a bill\n');
  writeFileSync(join(inbox, 'README.txt'), 'not in a format folder: ignored\n');
  for (const f of [
    'wechat/bill-2026-11-25.csv',
    'generic/card/settled_2026-11-25.csv',
    'generic/card/settled.csv',
    'generic/card/settled_2026-11-25_2026-11-26.csv',
    'generic/card/settled_2026-11-24.csv',
    'generic/no-channel.csv',
    'wechat/broken.csv',
  ])
    settle(join(inbox, f), NOW);
});

/** Files arrive in the inbox before the job looks: last changed an hour before `at`. */
const settle = (path: string, at: Date) => utimesSync(path, new Date(at.getTime() - 3_600_000), new Date(at.getTime() - 3_600_000));
afterAll(async () => {
  await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await clickhouse.close();
});

test('the statements job imports each new inbox file once, records refusals, reconciles closed periods, and logs its runs', async () => {
  const first = await runStatementsJob(deps(), NOW);
  expect(first.status).toBe('ok');
  const inboxRows = await queryRows<Record<string, unknown>>(
    clickhouse,
    `SELECT file_path, status, reason FROM ${ident(database, 'statement_inbox')} FINAL ORDER BY file_path`,
  );
  expect(inboxRows.map((r) => [String(r.file_path).slice(inbox.length + 1), r.status])).toEqual([
    ['generic/card/settled.csv', 'refused'],
    ['generic/card/settled_2026-11-24.csv', 'refused'],
    ['generic/card/settled_2026-11-25.csv', 'imported'],
    ['generic/card/settled_2026-11-25_2026-11-26.csv', 'refused'],
    ['generic/no-channel.csv', 'refused'],
    ['wechat/bill-2026-11-25.csv', 'imported'],
    ['wechat/broken.csv', 'refused'],
  ]);
  const reason = (name: string) => String(inboxRows.find((r) => String(r.file_path).endsWith(name))!.reason);
  expect(reason('card/settled.csv')).toMatch(
    /^the file name does not say which period the statement covers: name the file with its period, e\.g\. balance_2026-11-25\.csv/,
  );
  expect(reason('settled_2026-11-25_2026-11-26.csv')).toMatch(/more than one date \(2026-11-25, 2026-11-26\), so its period is ambiguous/);
  expect(reason('settled_2026-11-24.csv')).toMatch(
    /^1 settled line occurred outside the period 2026-11-24T00:00:00Z\.\.2026-11-25T00:00:00Z its name gives \(first: line 2 at 2026-11-25T10:00:00\.000Z\)/,
  );
  expect(reason('generic/no-channel.csv')).toContain('--channel');
  expect(await count('statement_files')).toBe(2);
  // Both periods (the Beijing day of the bill, the UTC day of the generic file) ended past the 30-minute grace: both reconciled.
  expect(await count('statement_runs')).toBe(2);
  const wechatBreaks = await scalar(clickhouse, `SELECT count() FROM ${ident(database, 'statement_breaks')} WHERE channel = 'wechat_pay'`);
  expect(wechatBreaks).toBe(0);
  // The card line has no attempt of ours: the platform charged, we recorded nothing.
  expect(await scalar(clickhouse, `SELECT count() FROM ${ident(database, 'statement_breaks')} WHERE channel = 'card' AND kind = 'charged_not_recorded'`)).toBe(
    1,
  );

  const second = await runStatementsJob(deps(), new Date(NOW.getTime() + 300_000));
  expect(second).toMatchObject({ status: 'ok', rows: 0 });
  expect(await count('statement_inbox')).toBe(7);
  expect(await count('statement_runs')).toBe(2);

  // The same bytes under another name: recorded as already imported, nothing else changes.
  // A file changed within the last minute may still be being copied in: left for a later run.
  copyFileSync(join(inbox, 'wechat', 'bill-2026-11-25.csv'), join(inbox, 'wechat', 'copy.csv'));
  const copiedAt = new Date(NOW.getTime() + 590_000);
  utimesSync(join(inbox, 'wechat', 'copy.csv'), copiedAt, copiedAt);
  await runStatementsJob(deps(), new Date(NOW.getTime() + 600_000));
  expect(await count('statement_inbox')).toBe(7);
  await runStatementsJob(deps(), new Date(NOW.getTime() + 660_000));
  expect(await scalar(clickhouse, `SELECT count() FROM ${ident(database, 'statement_inbox')} FINAL WHERE status = 'already_imported'`)).toBe(1);
  expect(await count('statement_files')).toBe(2);

  const runs = await recentRuns({ clickhouse, database }, 'statements');
  expect(runs.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
});
