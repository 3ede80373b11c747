/**
 * Statement reconciliation at volume: N attempts of one channel over one UTC day stored in
 * payment_events (one succeeded event each, a processing event before every tenth), and a
 * generic statement of N lines for them, with a disagreement on every thousandth (an amount one
 * minor unit off, a charge we never recorded in place of one we did). Times the import of the
 * file and, the figure the target is about, the reconciliation of the period: reading lines,
 * attempts and refunds, matching, and writing matches, breaks and the run.
 * Usage: npm run bench:statements -- [N=1000000]. Needs the stack; uses its own database.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config/index.ts';
import { silentLogger } from '../log/index.ts';
import { command, createClickHouse, insertRows } from '../storage/clickhouse.ts';
import { migrate } from '../storage/migrations.ts';
import { ident, toDateTimeText } from '../storage/sql.ts';
import { importStatement } from '../statements/import.ts';
import { formatMinor } from '../statements/money.ts';
import { reconcilePeriod } from '../statements/reconcile.ts';

const n = Number(process.argv[2] ?? 1_000_000);
if (!Number.isInteger(n) || n < 1000 || n > 10_000_000) throw new Error('N must be a whole number from 1000 to 10000000');
const config = loadConfig();
const database = `ps_bench_statements_${randomUUID().slice(0, 8)}`;
const clickhouse = createClickHouse(config, { requestTimeoutMs: 600_000 });
const deps = { clickhouse, database, logger: silentLogger };
const period = { fromMs: Date.UTC(2026, 10, 25), toMs: Date.UTC(2026, 10, 26) };
const dir = await mkdtemp(join(tmpdir(), 'bench-statements-'));
const seconds = (t: number) => (performance.now() - t) / 1000;

try {
  await migrate(clickhouse, database, silentLogger);
  const events = ident(database, 'payment_events').text;
  let t = performance.now();
  const CHUNK = 200_000;
  let offset = 0;
  for (let start = 0; start < n; start += CHUNK) {
    const rows: object[] = [];
    for (let i = start; i < Math.min(n, start + CHUNK); i++) {
      const at = period.fromMs + Math.floor((i * (period.toMs - period.fromMs)) / n);
      const base = {
        order_id: `b-${i}`,
        type: 'payment',
        attempt: 1,
        transaction_id: `t-${i}`,
        amount_minor: 100 + (i % 5000),
        currency: 'CNY',
        channel: 'alipay',
        merchant_id: 'm1',
        user_id: null,
        device_id: null,
        ip: null,
        failure_code: null,
        source: 'gateway_callback',
        extra: '',
        kafka_partition: 0,
        ingested_at: toDateTimeText(at),
      };
      if (i % 10 === 0)
        rows.push({
          ...base,
          event_id: `p-${i}`,
          occurred_at: toDateTimeText(Math.max(period.fromMs, at - 2000)),
          occurred_ms: 0,
          status: 'processing',
          kafka_offset: offset++,
        });
      rows.push({ ...base, event_id: `s-${i}`, occurred_at: toDateTimeText(at), occurred_ms: at % 1000, status: 'succeeded', kafka_offset: offset++ });
    }
    await insertRows(clickhouse, events, rows, 'bench: store attempts');
  }
  process.stderr.write(`bench: stored ${offset} events (${n} attempts) in ${seconds(t).toFixed(1)} s\n`);

  t = performance.now();
  const lines: string[] = ['transaction_id,order_id,type,amount,currency,occurred_at'];
  for (let i = 0; i < n; i++) {
    const at = new Date(period.fromMs + Math.floor((i * (period.toMs - period.fromMs)) / n) + 1000).toISOString();
    const amount = 100 + (i % 5000) + (i % 1000 === 1 ? 1 : 0);
    const unknown = i % 1000 === 2;
    lines.push(`${unknown ? `u-${i}` : `t-${i}`},${unknown ? `ub-${i}` : `b-${i}`},payment,${formatMinor(amount, 'CNY')},CNY,${at}`);
  }
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'statement.csv');
  await writeFile(file, lines.join('\n') + '\n');
  process.stderr.write(`bench: wrote the statement (${n} lines) in ${seconds(t).toFixed(1)} s\n`);

  t = performance.now();
  const imported = await importStatement(deps, { path: file, format: 'generic', channel: 'alipay', period, maxBytes: 1024 ** 3 });
  if (imported.status !== 'imported') throw new Error(`import: ${imported.status}`);
  const importS = seconds(t);
  process.stderr.write(`bench: imported ${imported.file.linesSettled} lines in ${importS.toFixed(1)} s\n`);

  t = performance.now();
  const outcome = await reconcilePeriod(deps, { channel: 'alipay', period }, { graceMs: 30 * 60_000, now: new Date(period.toMs + 3_600_000) });
  const reconcileS = seconds(t);
  if (outcome.status !== 'reconciled') throw new Error('period not reconciled');
  const r = outcome.run;
  const expected = { amount_mismatch: Math.floor((n - 2) / 1000) + 1, charged_not_recorded: Math.floor((n - 3) / 1000) + 1 };
  const ok =
    r.matched === n - expected.amount_mismatch - expected.charged_not_recorded &&
    r.breaks.amount_mismatch === expected.amount_mismatch &&
    r.breaks.charged_not_recorded === expected.charged_not_recorded &&
    r.breaks.recorded_not_settled === expected.charged_not_recorded;
  const result = {
    lines: r.lines,
    attempts: r.attempts,
    matched: r.matched,
    breaks: r.breaks,
    import_seconds: Number(importS.toFixed(1)),
    reconcile_seconds: Number(reconcileS.toFixed(1)),
    phases_ms: r.phasesMs,
    target_seconds: 60,
    correct: ok,
  };
  await mkdir('out', { recursive: true });
  await writeFile('out/bench-statements.json', JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(
    `Reconciled ${r.lines.toLocaleString('en')} statement lines against ${r.attempts.toLocaleString('en')} attempts in ${reconcileS.toFixed(1)} s ` +
      `(target < 60 s); import took ${importS.toFixed(1)} s.\n` +
      `  read ${(r.phasesMs.read / 1000).toFixed(1)} s, decide ${(r.phasesMs.decide / 1000).toFixed(1)} s, write ${(r.phasesMs.write / 1000).toFixed(1)} s\n` +
      `  matched ${r.matched}, breaks: amount_mismatch ${r.breaks.amount_mismatch}, charged_not_recorded ${r.breaks.charged_not_recorded}, ` +
      `recorded_not_settled ${r.breaks.recorded_not_settled}; ${ok ? 'as injected' : 'NOT as injected'}\n`,
  );
  if (!ok) process.exitCode = 1;
} finally {
  await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await clickhouse.close();
  await rm(dir, { recursive: true, force: true });
}
