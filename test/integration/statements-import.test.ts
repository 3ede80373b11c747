import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { silentLogger } from '../../log/index.ts';
import { command, createClickHouse, insertRows, queryRows, type ClickHouseClient } from '../../storage/clickhouse.ts';
import { validateEvent } from '../../contract/validate.ts';
import { toEventRow } from '../../ingest/records.ts';
import { reconcilePeriod } from '../../statements/reconcile.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { importStatement, type ImportOptions } from '../../statements/import.ts';
import { fileLinesQuery } from '../../statements/store.ts';
import { configFor, isolatedEnv, repoRoot, scalar } from './helpers.ts';

const env = isolatedEnv();
const config = configFor(env);
const database = config.clickhouseDatabase;
let clickhouse: ClickHouseClient;
const dir = mkdtempSync(join(tmpdir(), 'statements-'));
const fixture = (name: string) => join(repoRoot, 'statements', 'fixtures', name);
const deps = () => ({ clickhouse, database, logger: silentLogger });
const opts = (path: string, extra: Partial<ImportOptions> = {}): ImportOptions => ({ path, format: 'generic', channel: 'card', maxBytes: 1 << 20, ...extra });
const lineCount = () => scalar(clickhouse, `SELECT count() FROM ${ident(database, 'statement_lines')} FINAL`);
const fileCount = () => scalar(clickhouse, `SELECT count() FROM ${ident(database, 'statement_files')} FINAL`);
const write = (name: string, text: string | Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

beforeAll(async () => {
  clickhouse = createClickHouse(config);
  await migrate(clickhouse, database, silentLogger);
});
afterAll(async () => {
  await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await clickhouse.close();
});

describe('statements import on ClickHouse', () => {
  test.each([
    ['generic', 'generic.csv', 'card', 6, 0],
    ['wechat', 'wechat.csv', 'wechat_pay', 3, 1],
    ['alipay', 'alipay.csv', 'alipay', 3, 0],
    ['stripe', 'stripe.csv', 'card', 3, 1],
  ] as const)(
    '%s fixture: stored line by line with file, line number and raw text; a re-import changes nothing',
    async (format, name, channel, settled, notSettled) => {
      const result = await importStatement(deps(), opts(fixture(name), { format, channel: format === 'generic' ? 'card' : undefined }));
      expect(result.status).toBe('imported');
      if (result.status !== 'imported') return;
      expect(result.file).toMatchObject({ channel, linesSettled: settled, linesNotSettled: notSettled, linesInvalid: 0 });
      const stored = await queryRows<Record<string, unknown>>(clickhouse, fileLinesQuery(database, result.file));
      expect(stored).toHaveLength(settled + notSettled);
      // Every stored raw line is the file's line at that number.
      const bytes = readFileSync(fixture(name));
      const text = format === 'alipay' ? new TextDecoder('gbk').decode(bytes) : bytes.toString('utf8');
      const fileLines = text.split(/\r?\n/);
      for (const row of stored) expect(row.raw).toBe(fileLines[Number(row.line) - 1]);
      const before = { lines: await lineCount(), files: await fileCount() };
      const again = await importStatement(deps(), opts(fixture(name), { format, channel: 'other' }));
      expect(again).toMatchObject({ status: 'already_imported', file: { hash: result.file.hash, channel } });
      expect({ lines: await lineCount(), files: await fileCount() }).toEqual(before);
    },
  );

  test('hostile ids and exact amounts round-trip as data', async () => {
    const result = await importStatement(deps(), opts(fixture('generic.csv')));
    expect(result.status).toBe('already_imported');
    if (result.status !== 'already_imported') return;
    const rows = await queryRows<Record<string, unknown>>(clickhouse, fileLinesQuery(database, result.file));
    expect(
      rows.map((r) => [
        r.transaction_id,
        r.order_id,
        Number(r.amount_minor),
        r.currency,
        r.fee_units === null ? null : Number(r.fee_units),
        Number(r.fee_scale),
      ]),
    ).toEqual([
      ['4200001', 'ord-1', 1250, 'CNY', 8, 2],
      ['4200002', 'ord-2', 1000, 'JPY', null, 0],
      ['4200003', 'ord-3', 1234, 'KWD', 1, 3],
      ['4200001', 'ord-1', 250, 'CNY', null, 0],
      ['tx-"quoted",comma', "ord-'; DROP TABLE x; --", 1, 'USD', null, 0],
      ['tx\\back\\slash', '订单-支付-🙂', 9999, 'EUR', 0, 2],
    ]);
  });

  test('hostile ids reconcile as data: every line of the generic fixture matches our events', async () => {
    const pay = (id: string, tx: string, order: string, amount: number, currency: string, at: string, type = 'payment') => {
      const v = validateEvent({
        event_id: id,
        occurred_at: at,
        type,
        status: 'succeeded',
        order_id: order,
        ...(type === 'payment' ? { attempt: 1 } : {}),
        transaction_id: tx,
        amount_minor: amount,
        currency,
        channel: 'card',
        merchant_id: 'm1',
      });
      if (!v.ok) throw new Error(v.reason);
      return toEventRow(v.value, 0, 0, '2026-11-26 00:00:00');
    };
    await insertRows(clickhouse, ident(database, 'payment_events').text, [
      pay('e1', '4200001', 'ord-1', 1250, 'CNY', '2026-11-25T10:00:00Z'),
      pay('e2', '4200002', 'ord-2', 1000, 'JPY', '2026-11-25T02:30:00.250Z'),
      pay('e3', '4200003', 'ord-3', 1234, 'KWD', '2026-11-25T12:00:00Z'),
      pay('e4', '4200001', 'ord-1', 250, 'CNY', '2026-11-25T13:00:00Z', 'refund'),
      pay('e5', 'tx-"quoted",comma', "ord-'; DROP TABLE x; --", 1, 'USD', '2026-11-25T23:59:59Z'),
      pay('e6', 'tx\\back\\slash', '订单-支付-🙂', 9999, 'EUR', '2026-11-25T00:00:00Z'),
    ]);
    const outcome = await reconcilePeriod(
      deps(),
      { channel: 'card', period: { fromMs: Date.UTC(2026, 10, 25), toMs: Date.UTC(2026, 10, 26) } },
      { graceMs: 1_800_000, now: new Date(Date.UTC(2026, 10, 27)) },
    );
    // The period also holds the Stripe fixture's lines (channel card, same day), for which we have no events.
    expect(outcome, JSON.stringify(outcome)).toMatchObject({
      status: 'reconciled',
      run: { lines: 9, matched: 6, attempts: 5, refunds: 1, breaks: { charged_not_recorded: 2, refund_mismatch: 1, ambiguous: 0 } },
    });
  });

  test('a file with an invalid line stores nothing; --skip-invalid stores the valid lines and the invalid ones with reasons', async () => {
    const path = write(
      'mixed.csv',
      'transaction_id,order_id,type,amount,currency,occurred_at\n' +
        'm1,o1,payment,10.005,USD,2026-11-20T10:00:00Z\n' +
        'm2,o2,payment,1.00,USD,2026-11-20T10:00:00Z\n' +
        'm3,o3,payment,1e3,USD,2026-11-20T10:00:00Z\n',
    );
    const before = await lineCount();
    const refused = await importStatement(deps(), opts(path, { listLimit: 1 }));
    expect(refused).toMatchObject({ status: 'refused', invalidCount: 2, invalid: [{ line: 2, column: 'amount' }] });
    expect(await lineCount()).toBe(before);
    const dry = await importStatement(deps(), opts(path, { skipInvalid: true, dryRun: true }));
    expect(dry.status).toBe('dry_run');
    expect(await lineCount()).toBe(before);
    const kept = await importStatement(deps(), opts(path, { skipInvalid: true }));
    expect(kept).toMatchObject({ status: 'imported', file: { linesSettled: 1, linesInvalid: 2 } });
    if (kept.status !== 'imported') return;
    const rows = await queryRows<Record<string, unknown>>(clickhouse, fileLinesQuery(database, kept.file));
    expect(rows.map((r) => [Number(r.line), r.status, r.column_name])).toEqual([
      [2, 'invalid', 'amount'],
      [3, 'settled', ''],
      [4, 'invalid', 'amount'],
    ]);
    expect(String(rows[0]!.reason)).toContain('cannot be represented exactly');
    expect(rows[0]!.raw).toBe('m1,o1,payment,10.005,USD,2026-11-20T10:00:00Z');
  });

  test('a file over the size limit is refused before it is read', async () => {
    const path = write('big.csv', 'x'.repeat(2048));
    expect(await importStatement(deps(), opts(path, { maxBytes: 1024 }))).toMatchObject({
      status: 'refused',
      reason: expect.stringContaining('STATEMENT_MAX_BYTES'),
    });
  });

  test('the command lists the invalid lines with file, line and column and exits 1; a re-import says nothing changed', () => {
    const bad = write(
      'bad.csv',
      'transaction_id,order_id,type,amount,currency,occurred_at\nb1,o1,payment,"12,5",CNY,2026-11-21T10:00:00Z\nb2,o2,payment,1.00,ZZZ,2026-11-21T10:00:00Z\n',
    );
    const run = (args: string[]) =>
      spawnSync(process.execPath, ['bin/paysentinel.mjs', 'statements', 'import', ...args], {
        cwd: repoRoot,
        env: { ...process.env, ...env },
        encoding: 'utf8',
        timeout: 60_000,
      });
    const refused = run([bad, '--channel', 'card']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`${bad}:2: column "amount": "12,5" is not a plain decimal number`);
    expect(refused.stderr).toContain(`${bad}:3: column "currency": unknown currency "ZZZ"`);
    const ok = write('ok.csv', 'transaction_id,order_id,type,amount,currency,occurred_at\nc1,o1,payment,12.50,CNY,2026-11-21T10:00:00Z\n');
    expect(run([ok, '--channel', 'card']).status).toBe(0);
    const again = run([ok, '--channel', 'card', '--json']);
    expect(again.status).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: 'already_imported', file: { lines_settled: 1 } });
    expect(run([ok]).status).toBe(0);
    const usage = run([ok, '--format', 'csv']);
    expect(usage.status).toBe(2);
  });
});
