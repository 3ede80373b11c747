import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { validateEvent } from '../../contract/validate.ts';
import type { PaymentEvent } from '../../contract/index.ts';
import { toEventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import { command, createClickHouse, insertRows, queryRows, type ClickHouseClient } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident, toDateTimeText } from '../../storage/sql.ts';
import { importStatement } from '../../statements/import.ts';
import { breaksQuery, summaryBreaksQuery, summaryRunsQuery } from '../../statements/reconcile-queries.ts';
import { periodsToReconcile, reconcilePeriod } from '../../statements/reconcile.ts';
import { simulatedStatement, type SimulatedStatement } from '../../statements/simulated.ts';
import type { StatementFormat } from '../../statements/types.ts';
import { writeStatement } from '../../statements/write.ts';
import { configFor, isolatedEnv, repoRoot, scalar } from './helpers.ts';

const config = configFor(isolatedEnv());
const database = config.clickhouseDatabase;
let clickhouse: ClickHouseClient;
const deps = () => ({ clickhouse, database, logger: silentLogger });
const dir = mkdtempSync(join(tmpdir(), 'statements-reconcile-'));
const GRACE = 30 * 60_000;

// Yesterday's UTC day as the statement period (WeChat's and Alipay's bills cover a Beijing day; the
// generator's traffic sits well inside both).
const period = { fromMs: Date.UTC(2026, 10, 25), toMs: Date.UTC(2026, 10, 26) };
const beijingDay = { fromMs: period.fromMs - 8 * 3_600_000, toMs: period.toMs - 8 * 3_600_000 };
const afterGrace = new Date(period.toMs + GRACE + 60_000);

const events: PaymentEvent[] = [
  ...createTrafficGenerator({
    seed: 7,
    rate: 200,
    durationMs: 60_000,
    startMs: period.fromMs + 2 * 3_600_000,
    scenarios: ['duplicate-charge', 'charged-but-failed'],
  }),
].flatMap((i) => (i.event ? [i.event] : []));

const cases: { format: StatementFormat; channel: string; period: typeof period; currencies: boolean }[] = [
  { format: 'wechat', channel: 'wechat_pay', period: beijingDay, currencies: true },
  { format: 'alipay', channel: 'alipay', period: beijingDay, currencies: false },
  { format: 'stripe', channel: 'card', period, currencies: true },
];
const statements = new Map<string, SimulatedStatement>();

beforeAll(async () => {
  clickhouse = createClickHouse(config);
  await migrate(clickhouse, database, silentLogger);
  // Every event as ingest stores it, redeliveries included (the folding merge may not have run).
  const rows = events.map((e, i) => {
    const valid = validateEvent(e);
    if (!valid.ok) throw new Error(valid.reason);
    return toEventRow(valid.value, 0, i, toDateTimeText(period.toMs));
  });
  await insertRows(clickhouse, ident(database, 'payment_events').text, rows);
  for (const c of cases) {
    const s = simulatedStatement(events, c.channel, c.period, { currencies: c.currencies, inject: true });
    statements.set(c.channel, s);
    writeFileSync(join(dir, `${c.format}.csv`), writeStatement(c.format, s.lines, c.period));
  }
});
afterAll(async () => {
  await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await clickhouse.close();
});

const breaksOf = async (channel: string, p = period) =>
  queryRows<Record<string, unknown>>(clickhouse, breaksQuery(database, { fromMs: p.fromMs - 86_400_000, toMs: p.toMs + 86_400_000, channel, limit: 100_000 }));

describe('statement reconciliation on ClickHouse', () => {
  test.each(cases)('$format ($channel): each injected break is found exactly once, and nothing else', async (c) => {
    const imported = await importStatement(deps(), { path: join(dir, `${c.format}.csv`), format: c.format, maxBytes: 1 << 30 });
    expect(imported.status).toBe('imported');
    expect(await periodsToReconcile(deps(), period.fromMs - 7 * 86_400_000)).toContainEqual({ channel: c.channel, period: c.period });
    // Within the grace the period is left alone.
    expect(
      await reconcilePeriod(deps(), { channel: c.channel, period: c.period }, { graceMs: GRACE, now: new Date(c.period.toMs + GRACE - 1000) }),
    ).toMatchObject({ status: 'open' });
    const outcome = await reconcilePeriod(deps(), { channel: c.channel, period: c.period }, { graceMs: GRACE, now: afterGrace });
    expect(outcome.status).toBe('reconciled');
    const injected = statements.get(c.channel)!.injected;
    expect(injected.length).toBe(c.currencies ? 7 : 6);
    const found = (await breaksOf(c.channel, c.period)).map((b) => `${b.kind} ${b.order_id}`).sort();
    expect(found).toEqual(injected.map((i) => `${i.kind} ${i.order_id}`).sort());
    if (outcome.status !== 'reconciled') return;
    // Every line is in exactly one place: matched, or a break with a statement side.
    const withLine = (await breaksOf(c.channel, c.period)).filter((b) => Number(b.has_statement) === 1).length;
    expect(outcome.run.matched + withLine).toBe(outcome.run.lines);
    expect(await periodsToReconcile(deps(), period.fromMs - 7 * 86_400_000)).not.toContainEqual({ channel: c.channel, period: c.period });
  });

  test('both sides of a break are stored', async () => {
    const [amount] = (await breaksOf('card')).filter((b) => b.kind === 'amount_mismatch');
    expect(Number(amount!.statement_amount_minor)).toBe(Number(amount!.our_amount_minor) + 1);
    expect(Number(amount!.amount_at_stake_minor)).toBe(1);
    const [missing] = (await breaksOf('card')).filter((b) => b.kind === 'recorded_not_settled');
    expect(missing).toMatchObject({ has_statement: 0, has_ours: 1, our_status: 'succeeded' });
  });

  test('re-running a period replaces its results: same breaks, same ids, nothing doubled', async () => {
    const before = (await breaksOf('wechat_pay', beijingDay)).map((b) => b.break_id).sort();
    const again = await reconcilePeriod(deps(), { channel: 'wechat_pay', period: beijingDay }, { graceMs: GRACE, now: afterGrace });
    expect(again.status).toBe('reconciled');
    expect((await breaksOf('wechat_pay', beijingDay)).map((b) => b.break_id).sort()).toEqual(before);
    const runs = await queryRows<Record<string, unknown>>(clickhouse, summaryRunsQuery(database, beijingDay.fromMs, beijingDay.toMs));
    expect(runs.find((r) => r.channel === 'wechat_pay')).toMatchObject({ periods: '1', n_breaks: String(before.length) });
    const byKind = await queryRows<Record<string, unknown>>(clickhouse, summaryBreaksQuery(database, beijingDay.fromMs, beijingDay.toMs));
    expect(byKind.filter((r) => r.channel === 'wechat_pay').reduce((n, r) => n + Number(r.n), 0)).toBe(before.length);
    // Two runs wrote rows; readers see one.
    expect(await scalar(clickhouse, `SELECT uniqExact(version) FROM ${ident(database, 'statement_breaks')} WHERE channel = 'wechat_pay'`)).toBe(2);
  });
});

describe('statements breaks and summary commands', () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, ['bin/paysentinel.mjs', 'statements', ...args], {
      cwd: repoRoot,
      env: { ...process.env, CLICKHOUSE_DATABASE: database, LOG_LEVEL: 'warn' },
      encoding: 'utf8',
      timeout: 60_000,
    });
  test('list the breaks as JSON lines, filtered by kind, and summarise per channel', () => {
    const all = run(['breaks', '--from', '2026-11-24', '--to', '2026-11-27', '--json']);
    expect(all.status, all.stderr).toBe(0);
    const rows = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rows).toHaveLength(20);
    const charged = run(['breaks', '--from', '2026-11-24', '--to', '2026-11-27', '--kind', 'charged_not_recorded', '--json'])
      .stdout.trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(charged.map((b) => b.channel).sort()).toEqual(['alipay', 'card', 'wechat_pay']);
    expect(charged[0]).toMatchObject({
      kind: 'charged_not_recorded',
      statement: { type: 'payment' },
      ours: { status: expect.stringMatching(/failed|timeout|processing/) },
    });
    const table = run(['breaks', '--from', '2026-11-24', '--to', '2026-11-27', '--kind', 'ambiguous']);
    expect(table.stdout).toMatch(/ambiguous/);
    const summary = run(['summary', '--period', '2026-11-24..2026-11-27', '--json']);
    expect(summary.status, summary.stderr).toBe(0);
    const channels = JSON.parse(summary.stdout).channels;
    expect(channels.map((c: { channel: string }) => c.channel)).toEqual(['alipay', 'card', 'wechat_pay']);
    expect(channels.find((c: { channel: string }) => c.channel === 'alipay').breaks).toMatchObject({ currency_mismatch: 0, amount_mismatch: 1, ambiguous: 1 });
    expect(run(['breaks', '--kind', 'nonsense']).status).toBe(2);
  });
});
