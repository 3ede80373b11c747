/**
 * What migration 016's two materialized views on payment_events (per-attempt states and the
 * change log) cost each ingest insert: three fresh migrated databases (both views, the change log
 * only, none) receive the same batches of simulator traffic in turn, each as ingest
 * writes it (one JSONEachRow INSERT over HTTP); prints the insert time per batch of each.
 * Usage: npm run bench:views [-- BATCHES [ROWS_PER_BATCH]]  (default 30 batches of 5,000 rows)
 */
import { quantile } from 'simple-statistics';
import { loadConfig } from '../config/index.ts';
import { validateEvent } from '../contract/index.ts';
import { lineOf, toPendingRow } from '../ingest/records.ts';
import { silentLogger } from '../log/index.ts';
import { createTrafficGenerator } from '../simulator/generate.ts';
import { command, createClickHouse } from '../storage/clickhouse.ts';
import { createClickHouseHttp } from '../storage/http.ts';
import { migrate } from '../storage/migrations.ts';
import { ident, toDateTimeText } from '../storage/sql.ts';

const batches = Number(process.argv[2] ?? 30);
const perBatch = Number(process.argv[3] ?? 5_000);
if (!Number.isInteger(batches) || batches < 1 || !Number.isInteger(perBatch) || perBatch < 1) {
  console.error('Usage: npm run bench:views [-- BATCHES [ROWS_PER_BATCH]] (positive integers)');
  process.exit(2);
}
const config = loadConfig();
const clickhouse = createClickHouse(config, { requestTimeoutMs: 120_000 });
const http = createClickHouseHttp(config, { timeoutMs: 120_000 });
/** Each database and the views dropped from it. */
const variants = [
  { label: 'with both views (016)', db: `paysentinel_bench_views_${process.pid}_both`, drop: [] },
  { label: 'change log view only', db: `paysentinel_bench_views_${process.pid}_changes`, drop: ['payment_attempt_states_mv'] },
  { label: 'no view', db: `paysentinel_bench_views_${process.pid}_none`, drop: ['payment_attempt_states_mv', 'payment_changes_mv'] },
];

const nowMs = Date.now();
const generator = createTrafficGenerator({ seed: 5, rate: 5_000, durationMs: 3_600_000, startMs: nowMs - 3_600_000 });
let offset = 0;
function nextBatch(): string[] {
  const lines: string[] = [];
  const ingestedAt = toDateTimeText(Date.now());
  for (let item = generator.next(); item && lines.length < perBatch; item = generator.next()) {
    if (item.kind !== 'event' || !item.event) continue;
    const checked = validateEvent(item.event);
    if (checked.ok) lines.push(lineOf(toPendingRow(checked.value, 0, offset++), ingestedAt));
  }
  return lines;
}

try {
  for (const v of variants) {
    await migrate(clickhouse, v.db, silentLogger);
    for (const view of v.drop) await command(clickhouse, `DROP TABLE ${ident(v.db, view).text}`, 'drop view');
  }
  const times = new Map<string, number[]>(variants.map((v) => [v.db, []]));
  for (let i = 0; i < batches; i++) {
    const lines = nextBatch();
    // Rotate which goes first, so none always meets the others' background merges.
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(i + k) % variants.length]!;
      const t = performance.now();
      await http.insertLines(ident(v.db, 'payment_events'), lines, 'bench insert');
      times.get(v.db)!.push(performance.now() - t);
    }
    process.stderr.write(`\r  ${i + 1} of ${batches} batches`);
  }
  process.stderr.write('\n');
  const line = (label: string, ms: number[]) => {
    const s = [...ms].sort((a, b) => a - b);
    const f = (q: number) => quantile(s, q).toFixed(0).padStart(6);
    return `${label.padEnd(28)}${f(0.5)}${f(0.9)}${s[s.length - 1]!.toFixed(0).padStart(6)}`;
  };
  console.log(`${batches} batches of ${perBatch} simulator events, one INSERT each (ms):`);
  console.log(`${''.padEnd(28)}   p50   p90   max`);
  for (const v of variants) console.log(line(v.label, times.get(v.db)!));
} finally {
  for (const v of variants) await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(v.db)}`).catch(() => {});
  await clickhouse.close();
}
