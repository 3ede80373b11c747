/**
 * Cost of each scheduled job (rates, reconcile, baselines, retry-policy, requery) as the store
 * grows, with the same new traffic each time: for each size, a fresh database holding that many
 * stored events (written in ClickHouse with INSERT ... SELECT FROM numbers, shaped like the
 * simulator's traffic: orders with day-prefixed ids, a processing event and a final status per
 * attempt, declines and timeouts with their codes, retries that succeed, refunds; spread back in
 * time at a fixed PER_DAY events a day, default 62,500, so a bigger store is an older one; at
 * 5,000 events/s a day is 432 million, and PER_DAY = SIZE puts the whole store in the last day,
 * where the windowed jobs read it all), the rates job caught up
 * to it, then NEW events of new orders in the minute before the last 5-minute boundary. Each job then runs once as the
 * scheduler runs it (one ClickHouse thread, background priority; rates at RATES_PRIORITY), and its wall time, statements
 * and rows read, CPU and peak memory of a statement (system.query_log) are printed. Flat figures
 * across sizes: the cost follows the new events and the jobs' windows, not the stored history.
 * The requery job's first run, which reads the whole day (as after a pause, and hourly), is printed
 * as `requery (day)` over the history alone, and the reconcile job's first run, which rebuilds its
 * attempt records from the window's events, as `reconcile (first)`. A job that fails is printed as FAILED with its reason,
 * and the others still run.
 * Usage: npm run bench:analytics -- [SIZES=1000000,4000000,16000000] [NEW=300000] [PER_DAY=62500]. Needs the stack.
 * With BENCH_KEEP_DATABASE=1 each size's database is left in place (its name printed; drop it afterwards).
 */
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../config/index.ts';
import { run as runBaselines } from '../analytics/baselines.ts';
import type { AnalyticsDeps, JobRun } from '../analytics/jobs.ts';
import { run as runRates, RATES_JOB, RATES_RECENT_SECONDS, RATES_RUN_BUDGET_MS } from '../analytics/rates.ts';
import { writeCursorQuery } from '../analytics/rate-items.ts';
import { run as runReconcile } from '../analytics/reconcile.ts';
import { run as runRetryPolicy } from '../analytics/retry-policy.ts';
import { REQUERY_CHANGES_OVERLAP_SECONDS, runRequeryJob, type RequeryJobDeps } from '../automation/requery.ts';
import { silentLogger } from '../log/index.ts';
import { command, createClickHouse, createJobsClickHouse, queryRows } from '../storage/clickhouse.ts';
import { migrate } from '../storage/migrations.ts';
import { ident, sql } from '../storage/sql.ts';
import { EVENTS_PER_ORDER, measureJob, serverClock, trafficSql, waitServerSeconds } from './store.ts';

const sizes = (process.argv[2] ?? '1000000,4000000,16000000').split(',').map(Number);
const fresh = Number(process.argv[3] ?? 300_000);
/** Stored events per day of history. */
const HISTORY_PER_DAY = Number(process.argv[4] ?? 62_500);
if (sizes.some((n) => !Number.isInteger(n) || n < 10_000)) throw new Error('SIZES must be whole numbers of events, each at least 10000, comma-separated');
if (!Number.isInteger(fresh) || fresh < 1_000) throw new Error('NEW must be a whole number of events, at least 1000');
if (!Number.isInteger(HISTORY_PER_DAY) || HISTORY_PER_DAY < 1_000) throw new Error('PER_DAY must be a whole number of events, at least 1000');

const config = loadConfig();
const admin = createClickHouse(config, { requestTimeoutMs: 900_000 });
// The jobs' clients as the pipeline makes them: one thread, the rates job at RATES_PRIORITY.
const jobClients = await createJobsClickHouse(config, { requestTimeoutMs: 900_000, logQueries: true });
const jobs = jobClients.jobs;
const runTag = randomUUID().slice(0, 8);

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

let database = '';
try {
  process.stdout.write(
    `analytics jobs over a growing store, ${fmt(HISTORY_PER_DAY)} stored events a day, ${fmt(fresh)} new events each time (one ClickHouse thread, as scheduled); ${config.clickhouseUrl}\n`,
  );
  const line = (cells: string[]) =>
    `${cells[0]!.padStart(12)}  ${cells[1]!.padEnd(18)}${cells
      .slice(2)
      .map((c) => c.padStart(15))
      .join('')}\n`;
  process.stdout.write(line(['stored', 'job', 'ms', 'statements', 'rows read', 'max/statement', 'CPU ms', 'max MiB', 'rows written']));
  /**
   * Runs one job (in a second of the server's clock of its own) and prints its row. A job that
   * fails (a memory limit, a timeout) is a finding: printed as FAILED with its reason, and the
   * next job still runs.
   */
  const measureAndPrint = async (stored: number, name: string, job: () => Promise<JobRun>): Promise<void> => {
    let failure = '';
    const {
      result,
      ms,
      cost: c,
    } = await measureJob(admin, database, () =>
      job().catch((err: unknown) => {
        failure = err instanceof Error ? err.message : String(err);
        return null;
      }),
    );
    const cells = [fmt(c.statements), fmt(c.rows), fmt(c.maxRows), fmt(c.cpuMs), fmt(c.maxMemory / 2 ** 20), result ? fmt(result.rows) : 'FAILED'];
    process.stdout.write(line([fmt(stored), name, fmt(ms), ...cells]));
    if (failure) process.stdout.write(`${' '.repeat(14)}${name} failed: ${failure.replace(/\s+/g, ' ').slice(0, 300)}\n`);
  };
  for (const size of sizes) {
    database = `paysentinel_bench_${runTag}_analytics_${size}`;
    await migrate(admin, database, silentLogger);
    // On a 5-minute boundary: the new minute's bucket has closed when the jobs run, 30 s later.
    const nowMs = Math.floor(Date.now() / 300_000) * 300_000;
    const nowSec = nowMs / 1000;
    // History: older than the last two minutes, at a fixed rate per day.
    const historyOrders = Math.round(size / EVENTS_PER_ORDER);
    const spanSec = Math.round((size / HISTORY_PER_DAY) * 86_400);
    // A quarter of a million orders per statement keeps the views' blocks within the memory limit.
    const step = 250_000;
    for (let first = 0; first < historyOrders; first += step) {
      const orders = Math.min(step, historyOrders - first);
      await command(
        admin,
        trafficSql(database, { firstOrder: first, orders, originOrder: 0, totalOrders: historyOrders, baseSec: nowSec - 120 - spanSec, spanSec, prefix: 'h' }),
        'write history',
      );
      process.stderr.write(`\r  ${size}: ${fmt(Math.min(first + orders, historyOrders))} of ${fmt(historyOrders)} orders of history written`);
    }
    process.stderr.write('\n');
    const deps: AnalyticsDeps = { clickhouse: jobs, database, logger: silentLogger };
    // The rates job caught up with the history (its last hour built by hand, its cursor at the server's clock).
    await runRates({ ...deps, clickhouse: admin }, new Date(nowMs), { from: new Date(nowMs - 3_600_000) });
    await command(
      admin,
      writeCursorQuery(database, RATES_JOB, {
        seenToSec: await serverClock(admin),
        coveredFromSec: nowSec - 3_600,
        historyFromSec: 0,
        writtenVersion: Date.now() * 1000,
        serverAtSec: 0,
        serverUptime: 0,
        version: Date.now() * 1000,
      }),
      'seed rates cursor',
    );
    // The requery job as it stands after its first run (which reads the whole day once): its
    // measured run below reads from where that one stopped. Dry-run: it records, sends nothing.
    const requeryDeps: RequeryJobDeps = {
      ...deps,
      commands: {
        producer: {
          send: async () => {
            throw new Error('the bench runs the requery job in dry-run');
          },
        },
        config: { ...config, automation: 'dry-run' },
      },
    };
    // Its change-log read overlaps the last run by REQUERY_CHANGES_OVERLAP_SECONDS (inserts in
    // flight): the history, written just now, is not new to it once that much time has passed.
    await waitServerSeconds(admin, REQUERY_CHANGES_OVERLAP_SECONDS);
    // On the jobs' client, as scheduled: its whole-day read groups every attempt of the day, and
    // with 16 million events a day it failed at the 4 GB cap on the bench's own client (two
    // threads, no spilling).
    // Measured too: its figures are the whole-day read's (a first run, a run after a pause, the hourly one).
    await measureAndPrint(size, 'requery (day)', () => runRequeryJob(requeryDeps, new Date(nowMs - 60_000)).then((r) => r!));
    // The reconcile job's first run rebuilds the records of its window from the events (as after an
    // upgrade, or a by-hand run reaching further back); the measured run below updates them from the changes.
    await measureAndPrint(size, 'reconcile (first)', () => runReconcile(deps, new Date(nowMs - 60_000)));
    // New traffic: a minute of new orders, first events in the minute before now.
    const newOrders = Math.round(fresh / EVENTS_PER_ORDER);
    await command(
      admin,
      trafficSql(database, {
        firstOrder: historyOrders,
        orders: newOrders,
        originOrder: historyOrders,
        totalOrders: newOrders,
        baseSec: nowSec - 60,
        spanSec: 60,
        prefix: 'n',
      }),
      'write new events',
    );
    const stored = Number((await queryRows<{ n: string }>(admin, `SELECT count() AS n FROM ${ident(database, 'payment_events')}`))[0]?.n ?? 0);
    const runAt = new Date(nowMs + 30_000);
    const measured: [string, () => Promise<JobRun>][] = [
      ['rates', () => runRates({ ...deps, clickhouse: jobClients.rates }, runAt, { budgetMs: RATES_RUN_BUDGET_MS, finishRecentSeconds: RATES_RECENT_SECONDS })],
      ['reconcile', () => runReconcile(deps, runAt)],
      ['baselines', () => runBaselines(deps, runAt)],
      ['retry-policy', () => runRetryPolicy(deps, runAt)],
      ['requery', async () => (await runRequeryJob(requeryDeps, runAt))!],
    ];
    for (const [name, job] of measured) await measureAndPrint(stored, name, job);
    if (process.env.BENCH_KEEP_DATABASE === '1') {
      process.stdout.write(`database kept: ${database}\n`);
    } else {
      await command(admin, `DROP DATABASE IF EXISTS ${ident(database)}`);
    }
    database = '';
  }
} finally {
  if (database && process.env.BENCH_KEEP_DATABASE === '1') process.stdout.write(`database kept: ${database}\n`);
  else if (database) await command(admin, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await admin.close();
  await jobClients.close();
}
