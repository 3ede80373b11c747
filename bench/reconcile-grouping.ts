/**
 * Variants of the reconcile job's grouping of every attempt of its 24 hours (analytics/reconcile-queries.ts),
 * each run alone on one ClickHouse thread over a database that already holds the events, printing its
 * wall time, CPU and peak memory (system.query_log), or why it failed. Every column of the grouping
 * is used (hashed into one sum), so that ClickHouse prunes none of the aggregates. The variants:
 * the code's (the definitions' keys as tuples, distinct final statuses by uniqExact), three counters
 * instead of uniqExact, channel and merchant from one argMin, the keys written as strings (as
 * migration 027 writes them), and strings for the earliest keys only. docs/benchmarks.md has the
 * figures and why the code keeps its grouping.
 * Usage: npm run bench:reconcile-grouping -- DATABASE, e.g. on the database that
 * `BENCH_KEEP_DATABASE=1 npm run bench:rates-run -- 4500000 60 500000` leaves (drop it afterwards). Needs the stack.
 */
import { loadConfig } from '../config/index.ts';
import { queryRows, createClickHouse, createJobsClickHouse } from '../storage/clickhouse.ts';
import { EARLIEST_KEY, LATEST_KEY, OCCURRED_MS as TS } from '../storage/event-order.ts';
import { ident, sql, sqlFragment, type SqlFragment } from '../storage/sql.ts';
import { measureJob } from './store.ts';

const database = process.argv[2] ?? '';
if (!database) throw new Error('Usage: npm run bench:reconcile-grouping -- DATABASE (a database holding payment events, e.g. one bench:rates-run kept)');

const config = loadConfig();
const admin = createClickHouse(config, { requestTimeoutMs: 900_000 });
// The jobs' client, as the scheduler runs reconcile: one thread, every statement logged; without
// spilling (JOBS_SPILL_BYTES=0), so that the peak memory is the grouping's own, as its figures were taken.
const clients = await createJobsClickHouse({ ...config, jobsSpillBytes: 0 }, { requestTimeoutMs: 900_000, logQueries: true });

const toMs = Date.now();
const fromMs = toMs - 86_400_000;
// The definitions' keys written as strings (migration 027): fixed-width time in ms, then the flag and the event id.
const latestText = sqlFragment`concat(toString(${TS} + 10000000000000), toString(toUInt8(status != 'processing')), event_id)`;
const earliestText = sqlFragment`concat(toString(${TS} + 10000000000000), event_id)`;
const uniqFinals = sqlFragment`uniqExactIf(status, status != 'processing')`;
const counterFinals = sqlFragment`(countIf(status = 'succeeded') > 0) + (countIf(status = 'failed') > 0) + (countIf(status = 'timeout') > 0)`;

function grouping(o: { latest: SqlFragment; earliest: SqlFragment; finals: SqlFragment; originTuple?: boolean; firstFinalKey?: SqlFragment }): SqlFragment {
  const origin = o.originTuple
    ? sqlFragment`argMin(tuple(channel, merchant_id), ${o.earliest}) AS a_origin, tupleElement(a_origin, 1) AS a_channel, tupleElement(a_origin, 2) AS a_merchant`
    : sqlFragment`argMin(channel, ${o.earliest}) AS a_channel, argMin(merchant_id, ${o.earliest}) AS a_merchant`;
  return sqlFragment`SELECT order_id, ifNull(attempt, 0) AS attempt_no, ${origin},
    min(${TS}) AS a_first_ms, max(${TS}) AS a_last_ms, argMax(status, ${o.latest}) AS outcome,
    countIf(status = 'processing') AS n_processing, minIf(${TS}, status = 'processing') AS a_processing_ms,
    countIf(status != 'processing') AS n_final, minIf(${TS}, status != 'processing') AS a_final_ms,
    argMinIf(toString(status), ${o.firstFinalKey ?? o.earliest}, status != 'processing') AS a_first_final, ${o.finals} AS a_final_statuses
  FROM ${ident(database, 'payment_events')} WHERE occurred_at >= toDateTime(${Math.floor((fromMs - 3_600_000) / 1000)}, 'UTC') AND type = 'payment'
  GROUP BY order_id, attempt_no HAVING a_first_ms >= ${fromMs} AND a_first_ms < ${toMs}`;
}

const variants: [string, SqlFragment][] = [
  ['tuple keys, uniqExactIf (the code)', grouping({ latest: LATEST_KEY, earliest: EARLIEST_KEY, finals: uniqFinals })],
  ['tuple keys, three counters', grouping({ latest: LATEST_KEY, earliest: EARLIEST_KEY, finals: counterFinals })],
  [
    'tuple keys, counters, one argMin for channel and merchant',
    grouping({ latest: LATEST_KEY, earliest: EARLIEST_KEY, finals: counterFinals, originTuple: true }),
  ],
  ['string keys, three counters', grouping({ latest: latestText, earliest: earliestText, finals: counterFinals })],
  ['tuple key for the latest, string keys for the earliest', grouping({ latest: LATEST_KEY, earliest: earliestText, finals: counterFinals })],
];

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
try {
  process.stdout.write(`reconcile's grouping over ${database}, attempts first seen in the last 24 hours; ${config.clickhouseUrl}\n`);
  for (const [name, select] of variants) {
    const all = sqlFragment`cityHash64(order_id, attempt_no, a_channel, a_merchant, a_last_ms, toString(outcome), n_processing, a_processing_ms,
      n_final, a_final_ms, a_first_final, a_final_statuses)`;
    const query = sql`SELECT count() AS n, sum(${all}) AS h FROM (${select})`;
    const started = performance.now();
    try {
      const { result, ms, cost } = await measureJob(admin, database, () => queryRows<{ n: string }>(clients.jobs, query, name));
      process.stdout.write(
        `  ${name.padEnd(58)} ${fmt(Number(result[0]?.n ?? 0))} attempts, ${fmt(ms)} ms, ${fmt(cost.cpuMs)} ms CPU, ` +
          `${fmt(cost.rows)} rows read, peak ${(cost.maxMemory / 2 ** 30).toFixed(2)} GiB\n`,
      );
    } catch (err) {
      process.stdout.write(`  ${name.padEnd(58)} failed after ${fmt(performance.now() - started)} ms: ${String((err as Error).message).slice(0, 160)}\n`);
    }
  }
} finally {
  await clients.close();
  await admin.close();
}
