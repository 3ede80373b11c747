/**
 * What one scheduled rates run costs with nothing competing, and what the reconcile job costs:
 * writes HISTORY events of simulator traffic at 5,000 events/s (seed 9, as bench:detect's
 * history) into a fresh migrated database, catches the rates job up, writes the next NEW_SECONDS
 * of the same traffic (new orders and the late callbacks, retries and refunds of earlier ones),
 * then runs the rates job over those changes once per slice size in SLICES (one ClickHouse
 * thread, no budget, the cursor put back before each run) and the reconcile job once over the same
 * changes (its first run, which rebuilds its records from the history, is run and printed before the
 * new events are written). Prints each
 * run's wall time and, from system.query_log, its statements, CPU (user time), rows read, the
 * item builds' rows and CPU, and the peak memory of a statement.
 * With BENCH_STATEMENTS=1 it also prints each run's statements grouped by kind (CPU, rows read);
 * with BENCH_KEEP_DATABASE=1 it leaves the database in place and prints its name.
 * Usage: npm run bench:rates-run -- [HISTORY=4500000] [NEW_SECONDS=60] [SLICES=100000,500000]. Needs the stack.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../config/index.ts';
import { validateEvent } from '../contract/index.ts';
import { run as runRates, RATES_JOB } from '../analytics/rates.ts';
import { readCursorQuery, writeCursorQuery } from '../analytics/rate-items.ts';
import { run as runReconcile } from '../analytics/reconcile.ts';
import { toPendingRow, lineOf } from '../ingest/records.ts';
import { silentLogger } from '../log/index.ts';
import { command, createClickHouse, queryRows } from '../storage/clickhouse.ts';
import { createClickHouseHttp } from '../storage/http.ts';
import { migrate } from '../storage/migrations.ts';
import { ident, raw, sql, sqlFragment, toDateTimeText } from '../storage/sql.ts';
import { createTrafficGenerator, type TrafficItem } from '../simulator/generate.ts';
import { insert } from './backlog.ts';

const history = Number(process.argv[2] ?? 4_500_000);
const newSeconds = Number(process.argv[3] ?? 60);
const slices = (process.argv[4] ?? '100000,500000').split(',').map(Number);
if (!Number.isInteger(history) || history < 10_000) throw new Error('HISTORY must be a whole number of events, at least 10000');
if (!(newSeconds >= 1)) throw new Error('NEW_SECONDS must be at least 1');
if (slices.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('SLICES must be whole numbers, comma-separated');

const RATE = 5_000;
const config = loadConfig();
const database = `paysentinel_bench_rates_run_${randomUUID().slice(0, 8)}`;
// As the scheduler runs the jobs: one thread; every statement logged for the figures below.
const clickhouse = createClickHouse(config, { requestTimeoutMs: 3_600_000, maxThreads: 1, logQueries: true });
const http = createClickHouseHttp(config, { timeoutMs: 600_000 });
const historyMs = (history / RATE) * 1000;
const startMs = Date.now() - historyMs - newSeconds * 1000 - 120_000;
const generator = createTrafficGenerator({ seed: 9, rate: RATE, durationMs: historyMs + newSeconds * 1000, startMs });
const table = ident(database, 'payment_events');
const deps = { clickhouse, database, logger: silentLogger };
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
let offset = 0;
let held: TrafficItem | undefined;

/** Writes the generator's events that occur before untilMs, as ingest stores them; returns how many. */
async function write(untilMs: number): Promise<number> {
  const ingestedAt = toDateTimeText(Date.now());
  let lines: string[] = [];
  let written = 0;
  const flush = async () => {
    const batch = lines;
    lines = [];
    await insert(http, table, batch, 'insert events');
    written += batch.length;
  };
  for (let item = held ?? generator.next(); item; item = generator.next()) {
    held = undefined;
    if (item.kind !== 'event' || !item.event) continue;
    if (Date.parse(item.event.occurred_at) >= untilMs) {
      held = item;
      break;
    }
    const checked = validateEvent(item.event);
    if (!checked.ok) throw new Error(`simulated event is invalid: ${checked.reason}`);
    lines.push(lineOf(toPendingRow(checked.value, offset % 6, offset++), ingestedAt));
    if (lines.length >= 50_000) await flush();
  }
  if (lines.length) await flush();
  return written;
}

/** A statement's user CPU (µs) in system.query_log. */
const cpu = raw("ProfileEvents.Values[indexOf(ProfileEvents.Names, 'UserTimeMicroseconds')]");
/** The finished statements started since fromSec that name this database, in system.query_log. */
const runStatements = (fromSec: number) => sqlFragment`system.query_log
    WHERE type = 2 AND event_date >= toDate(toDateTime(${fromSec}, 'UTC')) AND query_start_time >= toDateTime(${fromSec}, 'UTC')
      AND position(query, ${database}) > 0 AND position(query, 'system.query_log') = 0`;

/** The statements sent since fromSec that name this database, from system.query_log. */
async function cost(fromSec: number) {
  await command(clickhouse, 'SYSTEM FLUSH LOGS', 'flush query log');
  const [r] = await queryRows<Record<string, string>>(
    clickhouse,
    sql`SELECT count() AS n, sum(read_rows) AS rows, sum(${cpu}) AS cpu_us, max(memory_usage) AS max_mem,
      sumIf(read_rows, position(query, 'attempt_summaries') > 0) AS item_rows, sumIf(${cpu}, position(query, 'attempt_summaries') > 0) AS item_cpu_us
    FROM ${runStatements(fromSec)}`,
    'read query log',
  );
  const kinds = process.env.BENCH_STATEMENTS === '1' ? await statementKinds(fromSec) : '';
  return `${r!.n} statements, ${fmt(Number(r!.cpu_us) / 1000)} ms CPU, ${fmt(Number(r!.rows))} rows read (item builds ${fmt(Number(r!.item_rows))} rows, ${fmt(Number(r!.item_cpu_us) / 1000)} ms CPU), peak ${fmt(Number(r!.max_mem) / 1e6)} MB${kinds}`;
}

/** The statements since fromSec grouped by their text with the numbers taken out, most CPU first. */
async function statementKinds(fromSec: number): Promise<string> {
  const rows = await queryRows<Record<string, string>>(
    clickhouse,
    sql`SELECT substring(replaceRegexpAll(replaceAll(query, ${database}, 'db'), '[0-9]+', 'N'), 1, 90) AS kind, count() AS n,
      sum(${cpu}) AS cpu_us, sum(read_rows) AS rows, max(memory_usage) AS mem
    FROM ${runStatements(fromSec)}
    GROUP BY kind ORDER BY cpu_us DESC`,
    'read query log by statement',
  );
  return rows
    .map(
      (r) =>
        `\n    ${String(r.n).padStart(3)} x ${fmt(Number(r.cpu_us) / 1000).padStart(7)} ms CPU ${fmt(Number(r.rows)).padStart(12)} rows ${fmt(Number(r.mem) / 1e6).padStart(5)} MB  ${r.kind!.replace(/\s+/g, ' ')}`,
    )
    .join('');
}

const serverSec = async () => Number((await queryRows<{ t: number }>(clickhouse, 'SELECT toUInt32(now()) AS t', 'server clock'))[0]!.t);
/** The next second of the server's clock: query_log tells runs apart by their statements' start second. */
async function nextSecond(): Promise<number> {
  const now = await serverSec();
  for (;;) {
    const t = await serverSec();
    if (t > now) return t;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

try {
  process.stdout.write(`rates run alone: ${fmt(history)} events of history at ${fmt(RATE)}/s, then ${newSeconds} s more; ${config.clickhouseUrl}\n`);
  await migrate(clickhouse, database, silentLogger);
  let started = performance.now();
  const stored = await write(startMs + historyMs);
  process.stdout.write(`history: ${fmt(stored)} events written in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  started = performance.now();
  const caughtUp = await runRates(deps, new Date());
  process.stdout.write(`history: rates caught up (${caughtUp.status}) in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  const rebuildFrom = await nextSecond();
  started = performance.now();
  const rebuilt = await runReconcile(deps, new Date());
  process.stdout.write(
    `history: reconcile's first run (rebuilds its records): ${rebuilt.status}, ${fmt(performance.now() - started)} ms; ${await cost(rebuildFrom)}\n`,
  );
  const [cursor] = await queryRows<Record<string, string | number>>(clickhouse, readCursorQuery(database, RATES_JOB), 'read rates cursor');
  process.stdout.write(`new: ${fmt(await write(Infinity))} events written\n`);
  for (const sliceEvents of slices) {
    // The cursor as the catch-up left it, so every run takes the same changes.
    await command(
      clickhouse,
      writeCursorQuery(database, RATES_JOB, {
        seenToSec: Number(cursor!.seen_to),
        coveredFromSec: Number(cursor!.covered_from),
        historyFromSec: Number(cursor!.history_from),
        writtenVersion: Number(cursor!.written_version),
        serverAtSec: Number(cursor!.server_at),
        serverUptime: Number(cursor!.server_uptime),
        version: Date.now() * 1000,
      }),
      'put the rates cursor back',
    );
    const fromSec = await nextSecond();
    started = performance.now();
    const r = await runRates(deps, new Date(), { sliceEvents });
    process.stdout.write(`rates, slices of ${fmt(sliceEvents)}: ${r.status}, ${fmt(performance.now() - started)} ms; ${await cost(fromSec)}\n`);
  }
  const fromSec = await nextSecond();
  started = performance.now();
  const r = await runReconcile(deps, new Date());
  process.stdout.write(`reconcile, over the same changes: ${r.status}, ${fmt(performance.now() - started)} ms; ${await cost(fromSec)}\n`);
} finally {
  if (process.env.BENCH_KEEP_DATABASE === '1') process.stdout.write(`database kept: ${database}\n`);
  else await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await clickhouse.close();
}
