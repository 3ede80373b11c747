/**
 * What the requery job reads per run while more attempts are stuck than its limit lets it ask
 * about, as in a gateway outage. A fresh database gets HISTORY minutes of simulator-shaped traffic
 * (bench/store.ts) at EVENTS_PER_MINUTE, STUCK_PERMILLE of its orders left processing; the job
 * runs once over it (a first run reads the day), then RUNS times a minute apart, each after that
 * minute's new traffic, in dry-run with REQUERY_AFTER and REQUERY_MAX_PER_MINUTE from the
 * environment (defaults 5m and 60), on the jobs' client (one thread, background priority), at
 * the start of each real minute as the scheduler runs it (so it takes RUNS + HISTORY minutes). Per
 * run it prints the wall time, the statements and rows read (system.query_log), the attempts
 * asked about, where the next scan starts and how many attempts wait by key. Flat rows read once
 * caught up: a run's reads of events follow the new minutes, not how long attempts have been stuck.
 * Usage: npm run bench:requery -- [RUNS=10] [EVENTS_PER_MINUTE=300000] [STUCK_PERMILLE=20] [HISTORY_MINUTES=10]. Needs the stack.
 */
import { randomUUID } from 'node:crypto';
import { readCursorQuery } from '../analytics/rate-items.ts';
import { REQUERY_CHANGES_OVERLAP_SECONDS, runRequeryJob, type RequeryJobDeps } from '../automation/requery.ts';
import { loadConfig } from '../config/index.ts';
import { silentLogger } from '../log/index.ts';
import { command, createClickHouse, createJobsClickHouse, queryRows } from '../storage/clickhouse.ts';
import { migrate } from '../storage/migrations.ts';
import { ident } from '../storage/sql.ts';
import { EVENTS_PER_ORDER, measureJob, trafficSql, waitServerSeconds } from './store.ts';

const arg = (i: number, d: number): number => Number(process.argv[2 + i] ?? d);
const [runs, perMinute, stuckPermille, historyMinutes] = [arg(0, 10), arg(1, 300_000), arg(2, 20), arg(3, 10)];
if (!Number.isInteger(runs) || runs < 1) throw new Error('RUNS must be a whole number, at least 1');
if (!Number.isInteger(perMinute) || perMinute < 1_000) throw new Error('EVENTS_PER_MINUTE must be a whole number, at least 1000');
if (!Number.isInteger(stuckPermille) || stuckPermille < 0 || stuckPermille > 1000) throw new Error('STUCK_PERMILLE must be a whole number from 0 to 1000');
if (!Number.isInteger(historyMinutes) || historyMinutes < 1 || historyMinutes > 1_440) throw new Error('HISTORY_MINUTES must be a whole number from 1 to 1440');

const config = loadConfig();
const admin = createClickHouse(config, { requestTimeoutMs: 900_000 });
const jobClients = await createJobsClickHouse(config, { requestTimeoutMs: 900_000, logQueries: true });
const database = `paysentinel_bench_${randomUUID().slice(0, 8)}_requery`;
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const ordersPerMinute = Math.round(perMinute / EVENTS_PER_ORDER);
let nextOrder = 0;

/** A minute of new orders whose first events lie in [startSec, startSec + 60). */
async function writeMinute(startSec: number): Promise<void> {
  const o = { firstOrder: nextOrder, orders: ordersPerMinute, originOrder: nextOrder, totalOrders: ordersPerMinute };
  await command(admin, trafficSql(database, { ...o, baseSec: startSec, spanSec: 60, prefix: 'q', stuckPermille }), 'write a minute of traffic');
  nextOrder += ordersPerMinute;
}

/** Attempts waiting by key (none where the job keeps no such list). */
async function waitingCount(): Promise<string> {
  try {
    const sqlText = `SELECT count() AS n FROM (SELECT order_id, attempt, argMax(waiting, version) AS w FROM ${ident(database, 'requery_waiting')} GROUP BY order_id, attempt) WHERE w = 1`;
    return fmt(Number((await queryRows<{ n: string }>(admin, sqlText, 'count waiting'))[0]?.n ?? 0));
  } catch {
    return '-';
  }
}

try {
  await migrate(admin, database, silentLogger);
  const requeryConfig = { ...config, automation: 'dry-run' as const };
  process.stdout.write(
    `requery job, ${fmt(perMinute)} events a minute with ${stuckPermille}\u2030 of orders stuck (${fmt((ordersPerMinute * stuckPermille) / 1000)} a minute), ` +
      `limit ${requeryConfig.requeryMaxPerMinute} a minute, REQUERY_AFTER ${requeryConfig.requeryAfterMs / 60_000} min; ${config.clickhouseUrl}\n`,
  );
  // History: the whole minutes before now.
  const historyEnd = Math.floor(Date.now() / 60_000) * 60;
  for (let m = historyMinutes; m > 0; m--) {
    await writeMinute(historyEnd - m * 60);
    process.stderr.write(`\r  ${historyMinutes - m + 1} of ${historyMinutes} minutes of history written`);
  }
  process.stderr.write('\n');
  // Real time, as the scheduler runs it: the change-log read overlaps the last run by
  // REQUERY_CHANGES_OVERLAP_SECONDS of ClickHouse's clock, so a faster clock here would make
  // events written a few simulated minutes before look like late reports. The history, written
  // just now, is not new to the first run once that much time has passed.
  await waitServerSeconds(admin, REQUERY_CHANGES_OVERLAP_SECONDS);
  const firstRunSec = Math.ceil(Date.now() / 60_000) * 60;
  // The minutes since the history, so the traffic has no gap.
  for (let m = historyEnd; m < firstRunSec - 60; m += 60) await writeMinute(m);

  const deps: RequeryJobDeps = {
    clickhouse: jobClients.jobs,
    database,
    logger: silentLogger,
    commands: {
      producer: {
        send: async () => {
          throw new Error('the bench runs the requery job in dry-run');
        },
      },
      config: requeryConfig,
    },
  };
  const line = (cells: string[]) => cells.map((c, i) => (i === 1 ? c.padEnd(10) : c.padStart(i === 0 ? 4 : 13))).join('  ') + '\n';
  process.stdout.write(line(['run', 'at', 'ms', 'statements', 'rows read', 'max/statement', 'asked', 'scan from', 'waiting']));
  for (let k = 0; k <= runs; k++) {
    const atSec = firstRunSec + k * 60;
    while (Date.now() < atSec * 1000) await new Promise((r) => setTimeout(r, Math.min(1_000, atSec * 1000 - Date.now())));
    await writeMinute(atSec - 60);
    const { result, ms, cost: c } = await measureJob(admin, database, () => runRequeryJob(deps, new Date(atSec * 1000)));
    const [cursor] = await queryRows<{ covered_from: number }>(admin, readCursorQuery(database, 'requery'), 'read cursor');
    const scanFrom = new Date(Number(cursor?.covered_from ?? 0) * 1000).toISOString().slice(11, 19);
    const at = new Date(atSec * 1000).toISOString().slice(11, 19);
    process.stdout.write(
      line([
        k === 0 ? 'first' : String(k),
        at,
        fmt(ms),
        fmt(c.statements),
        fmt(c.rows),
        fmt(c.maxRows),
        fmt(result?.rows ?? 0),
        scanFrom,
        await waitingCount(),
      ]),
    );
  }
} finally {
  await command(admin, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await jobClients.close();
  await admin.close();
}
