/**
 * Where a machine's CPU goes while another bench runs beside it (bench:detect, bench:ingest):
 * every 10 s the machine's busy share and each process's CPU (the ClickHouse server, Kafka, and
 * every node process, by command line, from /proc); every second which tables have a merge
 * running (system.merges); at the end, ClickHouse's statements over the window grouped by
 * their first words, with their count, wall time, user CPU and rows read (system.query_log).
 *
 * Statements reach system.query_log only when the server logs them: for the local stack, add
 * `<log_queries>1</log_queries>` to the default profile in .stack/clickhouse/users.xml (the
 * server reloads it; `stack up` writes the file again). Without it the statement table is empty
 * and the rest still prints. Linux only (/proc).
 *
 * Usage: npm run bench:cpu-share -- [SECONDS] [DATABASE_PREFIX]
 *   SECONDS          how long to sample (default 300)
 *   DATABASE_PREFIX  merges and statements of databases whose name starts with it (default
 *                    paysentinel, which takes the benches' paysentinel_bench_* databases too)
 */
import { readFileSync, readdirSync } from 'node:fs';
import { loadConfig } from '../config/index.ts';
import { command, createClickHouse, queryRows } from '../storage/clickhouse.ts';
import { sql } from '../storage/sql.ts';

const seconds = Number(process.argv[2] ?? 300);
const prefix = process.argv[3] ?? 'paysentinel';
if (!Number.isInteger(seconds) || seconds < 10 || !/^[A-Za-z0-9_]+$/.test(prefix)) {
  console.error('Usage: npm run bench:cpu-share -- [SECONDS (at least 10)] [DATABASE_PREFIX (letters, digits, _)]');
  process.exit(2);
}
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** Busy and total jiffies of the whole machine. */
function machine(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

/** The processes worth naming, with their CPU so far (utime + stime, in ticks). */
function processes(): Map<string, { name: string; ticks: number }> {
  const out = new Map<string, { name: string; ticks: number }>();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      const name = cmd.includes('clickhouse-server')
        ? 'clickhouse-server'
        : cmd.includes('kafka.Kafka')
          ? 'kafka'
          : /^\S*node\s/.test(cmd) && !cmd.includes('cpu-share')
            ? `node ${cmd.replace(/^\S*node\s+/, '').slice(0, 60)}`
            : null;
      if (!name) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(pid, { name, ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return out;
}

const config = loadConfig();
const clickhouse = createClickHouse(config, { requestTimeoutMs: 60_000 });
const started = new Date();
const perProcess = new Map<string, number>();
const mergeSamples = new Map<string, number>();
let lastMachine = machine();
let lastProcs = processes();
const busyShares: number[] = [];
console.log(`sampling for ${seconds} s from ${started.toISOString()} (machine busy %, then % of one core per process, every 10 s)`);
for (let s = 1; s <= seconds; s++) {
  await new Promise((r) => setTimeout(r, 1000));
  const merges = await queryRows<{ table: string }>(
    clickhouse,
    sql`SELECT DISTINCT table FROM system.merges WHERE startsWith(database, ${prefix})`,
    'running merges',
  ).catch(() => []);
  for (const m of merges) mergeSamples.set(m.table, (mergeSamples.get(m.table) ?? 0) + 1);
  if (s % 10 !== 0) continue;
  const now = machine();
  const procs = processes();
  const busy = (100 * (now.busy - lastMachine.busy)) / Math.max(1, now.total - lastMachine.total);
  busyShares.push(busy);
  const shares: string[] = [];
  for (const [pid, p] of procs) {
    const before = lastProcs.get(pid);
    if (!before) continue;
    const share = (100 * (p.ticks - before.ticks)) / (10 * TICKS_PER_SECOND);
    perProcess.set(p.name, (perProcess.get(p.name) ?? 0) + share / (seconds / 10));
    if (share >= 1) shares.push(`${p.name.slice(0, 40)} ${share.toFixed(0)}%`);
  }
  console.log(`${new Date().toISOString().slice(11, 19)} busy ${busy.toFixed(0)}% | ${shares.join(' | ')}`);
  lastMachine = now;
  lastProcs = procs;
}

console.log(
  `\nmachine busy: mean ${(busyShares.reduce((a, b) => a + b, 0) / busyShares.length).toFixed(0)}% of ${readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d)).length} cores`,
);
console.log('mean % of one core per process over the window:');
for (const [name, share] of [...perProcess].sort((a, b) => b[1] - a[1])) if (share >= 0.5) console.log(`  ${share.toFixed(0).padStart(4)}%  ${name}`);
console.log(`seconds (of ${seconds}) with a merge running, per table:`);
for (const [table, n] of [...mergeSamples].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(5)}  ${table}`);

await command(clickhouse, 'SYSTEM FLUSH LOGS', 'flush the query log').catch(() => {});
const fromSec = Math.floor(started.getTime() / 1000);
const statements = await queryRows<{ q: string; n: string; wall_s: number; cpu_s: number; rows: string }>(
  clickhouse,
  sql`SELECT substring(replaceRegexpAll(query, '\\s+', ' '), 1, 70) AS q, count() AS n, round(sum(query_duration_ms) / 1000, 1) AS wall_s,
    round(sum(arraySum(arrayFilter((v, k) -> k = 'UserTimeMicroseconds', ProfileEvents.Values, ProfileEvents.Names))) / 1e6, 1) AS cpu_s,
    sum(read_rows) AS rows
  FROM system.query_log
  WHERE type = 2 AND event_time >= toDateTime(${fromSec}, 'UTC') AND position(query, ${prefix}) > 0
  GROUP BY q ORDER BY cpu_s DESC LIMIT 20`,
  'statements of the window',
).catch((err: Error) => {
  console.log(`statements: system.query_log could not be read (${err.message})`);
  return [];
});
console.log(
  `ClickHouse's statements over the window (system.query_log, ${statements.length ? 'top 20 by user CPU' : 'none logged: see the header of bench/cpu-share.ts'}):`,
);
if (statements.length) console.log('   count   wall s    cpu s   rows read  statement');
for (const r of statements) console.log(`  ${r.n.padStart(6)} ${String(r.wall_s).padStart(8)} ${String(r.cpu_s).padStart(8)} ${r.rows.padStart(11)}  ${r.q}`);
const total = statements.reduce((a, r) => a + Number(r.cpu_s), 0);
if (statements.length) console.log(`  user CPU of these (top 20) statement shapes: ${total.toFixed(1)} s in ${seconds} s`);
await clickhouse.close();
