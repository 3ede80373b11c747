/**
 * Cost of one detection tick's queries against a growing store: writes stored events in steps
 * (simulator traffic within the last 5 minutes, so inside every feature window: the worst case
 * for every entity type; its IPs, devices and users interleave in key order with the new rows',
 * as real traffic does), and after each step times what a tick sends for 2,500 new rows: finding
 * the new rows, each entity type's SQL screen, the exact fetch of 500 of their orders, the
 * stuck-attempt scan of a 10 s slice, and the channel context. A query whose figure grows with
 * the stored events costs more than the new rows it looks at.
 * Usage: npm run bench:screen -- [N=4000000] [STEPS=4]. Needs the stack.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../config/index.ts';
import { contextFeaturesQuery } from '../detection/context.ts';
import { newRowsQuery, positionRange } from '../detection/positions.ts';
import { stuckOrdersQuery } from '../detection/order-rechecks.ts';
import { ENTITY_IDS_TABLE, entityEventsQuery, entityScreenQuery, screenHaving, screenPlan } from '../detection/screen.ts';
import { silentLogger } from '../log/index.ts';
import { loadRuleSetOrThrow } from '../rules/index.ts';
import { windowMs } from '../rules/features.ts';
import type { Feature } from '../rules/schema.ts';
import { command, createClickHouse, queryRows } from '../storage/clickhouse.ts';
import { createClickHouseHttp } from '../storage/http.ts';
import { migrate } from '../storage/migrations.ts';
import { eventsByPosition } from '../storage/copies.ts';
import { ident, sql } from '../storage/sql.ts';
import { writeSimulatedHistory } from './backlog.ts';

const total = Number(process.argv[2] ?? 4_000_000);
const steps = Number(process.argv[3] ?? 4);
if (!Number.isInteger(total) || total < 2_500) throw new Error('N must be a whole number of events, at least 2500');
if (!Number.isInteger(steps) || steps < 1 || steps > 20) throw new Error('STEPS must be a whole number from 1 to 20');
const config = loadConfig();
const run = randomUUID().slice(0, 8);
const clickhouse = createClickHouse(config, { requestTimeoutMs: 300_000 });
const http = createClickHouseHttp(config, { timeoutMs: 300_000 });

/** Median of 5 runs of `run`, in ms. */
async function median(run: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[2]!;
}

let database = '';
try {
  const ruleSet = await loadRuleSetOrThrow();
  const features = [...ruleSet.catalog.facts.values()].filter((f) => f.kind === 'feature').map((f) => f.def as Feature);
  const nowMs = Date.now();
  const nowSec = Math.floor(nowMs / 1000);
  process.stdout.write(`tick cost (median of 5, ms) for 2,500 new rows, by events stored in the window; ${config.clickhouseUrl}\n`);
  const header = ['stored', 'new rows', 'ip', 'device', 'user', 'order', 'fetch 500', 'stuck 10s', 'channels'];
  process.stdout.write(`${header.map((h) => h.padStart(10)).join('')}\n`);
  for (let step = 1; step <= steps; step++) {
    const n = Math.floor((total * step) / steps);
    process.stderr.write(`writing events up to ${n}\n`);
    // Each step is a fresh store of n events: the rows the tick looks at are the last 2,500.
    if (database) await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`);
    database = `paysentinel_bench_${run}_screen_${step}`;
    await migrate(clickhouse, database, silentLogger);
    const written = await writeSimulatedHistory(http, database, {
      events: n,
      nowMs,
      spreadMs: 300_000,
      ingestedAtMs: nowMs,
      partitions: 1,
      onProgress: (w) => process.stderr.write(`\r  ${w}`),
    });
    process.stderr.write('\n');
    const seen = new Map([[0, written - 2_501]]);
    const position = positionRange(seen, new Map([[0, written - 1]]));
    const row: number[] = [n];
    row.push(await median(() => queryRows(clickhouse, newRowsQuery(database, nowSec - 600, seen, undefined, nowSec - 86_400), 'new rows')));
    for (const entity of ['ip', 'device', 'user', 'order'] as const) {
      const own = features.filter((f) => f.entity === entity);
      const columns = screenPlan(own);
      const rules = ruleSet.rules.filter((r) => r.enabled && r.entity === entity);
      const longest = Math.max(...own.map((f) => windowMs[f.window]));
      const query = entityScreenQuery(
        database,
        entity,
        columns,
        nowMs + 1000,
        nowSec - 600,
        position,
        undefined,
        screenHaving(rules, columns, nowMs + 1000),
        longest,
      );
      row.push(await median(() => queryRows(clickhouse, query, `${entity} screen`)));
    }
    const orders = await queryRows<{ id: string }>(
      clickhouse,
      sql`SELECT DISTINCT order_id AS id FROM ${eventsByPosition(database)} WHERE kafka_partition = 0 AND kafka_offset > ${written - 2_501} LIMIT 500`,
      'new orders',
    );
    row.push(
      await median(() =>
        http.query(entityEventsQuery(database, 'order', nowSec - 86_401), { name: ENTITY_IDS_TABLE, structure: 'id String', rows: orders }, 'order events'),
      ),
    );
    row.push(await median(() => queryRows(clickhouse, stuckOrdersQuery(database, nowSec - 86_400, [[nowSec - 130, nowSec - 120]]), 'stuck orders')));
    const channels = contextFeaturesQuery(
      database,
      'channel',
      features.filter((f) => f.entity === 'channel'),
      nowSec + 1,
    );
    row.push(channels ? await median(() => queryRows(clickhouse, channels, 'channel features')) : NaN);
    process.stdout.write(`${row.map((v) => Math.round(v).toString().padStart(10)).join('')}\n`);
  }
} finally {
  if (database) await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await clickhouse.close();
}
