/**
 * Cost of one detection tick's SQL screen against the rows inside the feature windows:
 * writes N stored events (all within the last 5 minutes, so inside every window) into a scratch
 * database, then times each entity type's screen for a tick that touched 2,500 new rows.
 * Usage: npm run bench:screen -- [N=1000000]. Needs the stack.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../config/index.ts';
import { entityScreenQuery, positionRange, screenHaving, screenPlan } from '../detection/source.ts';
import { silentLogger } from '../log/index.ts';
import { loadRuleSetOrThrow } from '../rules/index.ts';
import type { Feature } from '../rules/schema.ts';
import { command, createClickHouse, queryRows } from '../storage/clickhouse.ts';
import { createClickHouseHttp } from '../storage/http.ts';
import { migrate } from '../storage/migrations.ts';
import { ident } from '../storage/sql.ts';
import { writeBacklog } from './backlog.ts';

const n = Number(process.argv[2] ?? 1_000_000);
if (!Number.isInteger(n) || n < 2_500) throw new Error('N must be a whole number of events, at least 2500');
const config = loadConfig();
const database = `paysentinel_bench_${randomUUID().slice(0, 8)}_screen`;
const clickhouse = createClickHouse(config, { requestTimeoutMs: 300_000 });
const http = createClickHouseHttp(config, { timeoutMs: 300_000 });
try {
  await migrate(clickhouse, database, silentLogger);
  const nowMs = Date.now();
  process.stderr.write(`writing ${n} events\n`);
  await writeBacklog(http, database, { events: n, nowMs, partitions: 1 });
  const ruleSet = await loadRuleSetOrThrow();
  const features = [...ruleSet.catalog.facts.values()].filter((f) => f.kind === 'feature').map((f) => f.def as Feature);
  const position = positionRange(new Map([[0, n - 2_501]]), new Map([[0, n - 1]]));
  for (const entity of ['ip', 'device', 'user', 'order'] as const) {
    const columns = screenPlan(features.filter((f) => f.entity === entity));
    const rules = ruleSet.rules.filter((r) => r.enabled && r.entity === entity);
    const query = entityScreenQuery(database, entity, columns, nowMs + 1000, Math.floor(nowMs / 1000) - 600, position, undefined, screenHaving(rules, columns, nowMs + 1000));
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await queryRows(clickhouse, query, `${entity} screen`);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    process.stdout.write(`${entity.padEnd(6)} screen over ${n} rows in window, 2,500 new rows: median ${times[2]!.toFixed(0)} ms (of 5)\n`);
  }
} finally {
  await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(database)}`).catch(() => {});
  await clickhouse.close();
}
