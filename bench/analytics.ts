/**
 * Cost of each scheduled job (rates, reconcile, baselines, retry-policy, requery) as the store
 * grows, with the same new traffic each time: for each size, a fresh database holding that many
 * stored events (written in ClickHouse with INSERT ... SELECT FROM numbers, shaped like the
 * simulator's traffic: orders with day-prefixed ids, a processing event and a final status per
 * attempt, declines and timeouts with their codes, retries that succeed, refunds; spread back in
 * time at a fixed 62,500 events a day, so a bigger store is an older one), the rates job caught up
 * to it, then NEW events of new orders in the minute before the last 5-minute boundary. Each job then runs once as the
 * scheduler runs it (one ClickHouse thread, background priority; rates at RATES_PRIORITY), and its wall time, statements
 * and rows read (system.query_log) are printed. Flat figures across sizes: the cost follows the
 * new events and the jobs' windows, not the stored history.
 * Usage: npm run bench:analytics -- [SIZES=1000000,4000000,16000000] [NEW=300000]. Needs the stack.
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

const sizes = (process.argv[2] ?? '1000000,4000000,16000000').split(',').map(Number);
const fresh = Number(process.argv[3] ?? 300_000);
if (sizes.some((n) => !Number.isInteger(n) || n < 10_000)) throw new Error('SIZES must be whole numbers of events, each at least 10000, comma-separated');
if (!Number.isInteger(fresh) || fresh < 1_000) throw new Error('NEW must be a whole number of events, at least 1000');

/** Stored events per day of history. */
const HISTORY_PER_DAY = 62_500;
/** Events per order on average: processing + final, a retry for 10%, a refund for 5%. */
const EVENTS_PER_ORDER = 2.15;

const config = loadConfig();
const admin = createClickHouse(config, { requestTimeoutMs: 900_000 });
// The jobs' clients as the pipeline makes them: one thread, the rates job at RATES_PRIORITY.
const jobClients = createJobsClickHouse(config, { requestTimeoutMs: 900_000, logQueries: true });
const jobs = jobClients.jobs;
const runTag = randomUUID().slice(0, 8);

/**
 * INSERT ... SELECT of the events of orders [firstOrder, firstOrder + orders), three slots per
 * order (processing, final status, then a succeeded retry or refund for some); the first events of
 * orders [originOrder, originOrder + totalOrders) spread evenly over [baseSec, baseSec + spanSec).
 */
function trafficSql(
  database: string,
  o: { firstOrder: number; orders: number; originOrder: number; totalOrders: number; baseSec: number; spanSec: number; prefix: string },
): string {
  const columns =
    'event_id, occurred_at, occurred_ms, type, status, order_id, attempt, transaction_id, amount_minor, currency, channel, merchant_id, user_id, ' +
    'device_id, ip, failure_code, source, extra, kafka_partition, kafka_offset, ingested_at';
  const rows = sql`SELECT
      i, o, slot, a,
      toUInt32(${o.baseSec} + intDiv((o - ${o.originOrder}) * ${o.spanSec}, ${o.totalOrders})) AS t0,
      slot = 2 AND a < 5 AS is_refund,
      slot = 2 AND a >= 80 AND a < 90 AS is_retry
    FROM (SELECT number + ${o.firstOrder * 3} AS i, intDiv(i, 3) AS o, i % 3 AS slot, intHash32(o) % 100 AS a FROM numbers(${o.orders * 3}))
    WHERE slot < 2 OR (a >= 80 AND a < 90) OR a < 5`;
  return `INSERT INTO ${ident(database, 'payment_events')} (${columns})
SELECT
  concat(${sql`${o.prefix}`}, 'e', toString(i)),
  toDateTime(t0 + multiIf(slot = 0, 0, slot = 1, 2, is_retry, 30, 40), 'UTC'),
  toUInt16(i % 1000),
  if(is_refund, 'refund', 'payment'),
  multiIf(slot = 0, 'processing', slot = 2, 'succeeded', a < 80, 'succeeded', a < 95, 'failed', 'timeout'),
  concat(toString(toYYYYMMDD(toDateTime(t0, 'UTC'))), ${sql`${o.prefix}`}, substring(toString(10000000000 + o), 2)),
  toUInt8(if(is_retry, 2, 1)),
  concat('tx', toString(o)),
  toUInt64(100 + intHash32(o + 7) % 100000),
  'CNY',
  arrayElement(['alipay', 'wechat_pay', 'card', 'unionpay'], intHash32(o + 1) % 4 + 1),
  concat('m', toString(intHash32(o + 2) % 50)),
  concat('u', toString(intHash32(o + 3) % 200000)),
  concat('d', toString(intHash32(o + 3) % 200000)),
  IPv4NumToString(toUInt32(167772160 + intHash32(o + 4) % 100000)),
  if(slot = 1 AND a >= 80, if(a < 95, arrayElement(['card_declined', 'insufficient_funds', 'network_error', 'system_error'], a % 4 + 1), 'timeout'), NULL),
  if(slot = 0, 'client', 'gateway_callback'),
  '',
  toUInt16(o % 6),
  toUInt64(i),
  toDateTime(t0 + 5, 'UTC')
FROM (${rows})`;
}

/** The statements a job sent (found by database name in system.query_log) and the rows they read. */
async function cost(database: string, fromSec: number): Promise<{ statements: number; rows: number; maxRows: number }> {
  await command(admin, 'SYSTEM FLUSH LOGS', 'flush query log');
  const [r] = await queryRows<{ n: string; rows: string; max_rows: string }>(
    admin,
    sql`SELECT count() AS n, sum(read_rows) AS rows, max(read_rows) AS max_rows FROM system.query_log
WHERE type = 2 AND event_date >= toDate(toDateTime(${fromSec}, 'UTC')) AND query_start_time >= toDateTime(${fromSec}, 'UTC') AND position(query,
  ${database}) > 0 AND position(query, 'system.query_log') = 0`,
    'read query log',
  );
  return { statements: Number(r?.n ?? 0), rows: Number(r?.rows ?? 0), maxRows: Number(r?.max_rows ?? 0) };
}

const serverNow = async () => Number((await queryRows<{ t: number }>(admin, 'SELECT toUInt32(now()) AS t', 'server clock'))[0]!.t);
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

let database = '';
try {
  process.stdout.write(
    `analytics jobs over a growing store, ${fmt(fresh)} new events each time (one ClickHouse thread, as scheduled); ${config.clickhouseUrl}\n`,
  );
  const line = (cells: string[]) =>
    `${cells[0]!.padStart(12)}  ${cells[1]!.padEnd(14)}${cells
      .slice(2)
      .map((c) => c.padStart(15))
      .join('')}\n`;
  process.stdout.write(line(['stored', 'job', 'ms', 'statements', 'rows read', 'max/statement', 'rows written']));
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
        seenToSec: await serverNow(),
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
    const written = await serverNow();
    while ((await serverNow()) <= written + REQUERY_CHANGES_OVERLAP_SECONDS) await new Promise((r) => setTimeout(r, 1_000));
    await runRequeryJob({ ...requeryDeps, clickhouse: admin }, new Date(nowMs - 60_000));
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
    for (const [name, job] of measured) {
      // Each job starts in a second of its own, so query_log's start times tell the jobs apart.
      const previous = await serverNow();
      let since = previous;
      while (since <= previous) {
        await new Promise((r) => setTimeout(r, 100));
        since = await serverNow();
      }
      const t = performance.now();
      const result = await job();
      const ms = performance.now() - t;
      const c = await cost(database, since);
      process.stdout.write(line([fmt(stored), name, fmt(ms), fmt(c.statements), fmt(c.rows), fmt(c.maxRows), fmt(result.rows)]));
    }
    await command(admin, `DROP DATABASE IF EXISTS ${ident(database)}`);
    database = '';
  }
} finally {
  if (database) await command(admin, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await admin.close();
  await jobClients.close();
}
