/**
 * Time of a backfill (`paysentinel analytics run rates --from --to`) against the events in its
 * range: writes EVENTS events of simulator traffic spread over SPAN before now into a fresh
 * database (as ingest stores them, through the views that keep the attempt states), then runs the
 * rates job by hand over that span, as the CLI does (its progress lines, one per hour, are shown),
 * and prints its duration, the payment events in the range and the events per second. Running it
 * with the same EVENTS over a day and over a few minutes shows whether the time follows the
 * events or the span. Usage: npm run bench:backfill -- [EVENTS=1000000] [SPAN=24h]. Needs the stack.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../config/index.ts';
import { run as runRates } from '../analytics/rates.ts';
import { createLogger } from '../log/index.ts';
import { command, createClickHouse, queryRows } from '../storage/clickhouse.ts';
import { createClickHouseHttp } from '../storage/http.ts';
import { migrate } from '../storage/migrations.ts';
import { ident, sql } from '../storage/sql.ts';
import { parseDuration } from '../rules/duration.ts';
import { writeSimulatedHistory } from './backlog.ts';

const events = Number(process.argv[2] ?? 1_000_000);
const span = parseDuration(process.argv[3] ?? '24h');
if (!Number.isInteger(events) || events < 1_000) throw new Error('EVENTS must be a whole number, at least 1000');
if (span === null || span < 60_000) throw new Error('SPAN must be a duration of at least 1m, e.g. 24h');
const spanMs = span;

const config = loadConfig();
const database = `paysentinel_bench_backfill_${randomUUID().slice(0, 8)}`;
const clickhouse = createClickHouse(config, { requestTimeoutMs: 3_600_000 });
const log = (line: string) => process.stderr.write(`${line}\n`);
try {
  await migrate(clickhouse, database, createLogger({ level: 'error' }));
  // Ends at a 5-minute boundary an hour ago, so every bucket of the span has ended.
  const nowMs = Math.floor((Date.now() - 3_600_000) / 300_000) * 300_000;
  const writeStarted = performance.now();
  let next = 0;
  await writeSimulatedHistory(createClickHouseHttp(config, { timeoutMs: 600_000 }), database, {
    events,
    nowMs,
    spreadMs: spanMs,
    ingestedAtMs: nowMs,
    onProgress: (written) => {
      if (written < next) return;
      log(`history: ${written} of ${events} events written`);
      next = written + Math.max(1, Math.floor(events / 5));
    },
  });
  log(`history written in ${((performance.now() - writeStarted) / 1000).toFixed(0)} s`);
  const from = new Date(nowMs - spanMs);
  const to = new Date(nowMs);
  const [count] = await queryRows<{ n: string }>(
    clickhouse,
    sql`SELECT count() AS n FROM ${ident(database, 'payment_events')}
WHERE type = 'payment' AND occurred_at >= toDateTime(${Math.floor(from.getTime() / 1000)}, 'UTC')
AND occurred_at < toDateTime(${Math.floor(to.getTime() / 1000)}, 'UTC')`,
  );
  const started = performance.now();
  // As "paysentinel analytics run rates --from --to" runs it, with its progress at info level.
  const r = await runRates({ clickhouse, database, logger: createLogger({ level: 'info', write: (l) => log(l) }) }, new Date(), { from, to });
  const seconds = (performance.now() - started) / 1000;
  const paymentEvents = Number(count?.n ?? 0);
  console.log(
    `backfill ${from.toISOString()} .. ${to.toISOString()}: ${r.status}, ${seconds.toFixed(1)} s, ${events} events stored, ` +
      `${paymentEvents} payment events in the range, ${Math.round(paymentEvents / seconds)} payment events/s, ${r.rows} rows written`,
  );
} finally {
  await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await clickhouse.close();
}
