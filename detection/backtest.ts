import { baselineFacts } from '../analytics/baselines.ts';
import type { RuleSet } from '../rules/index.ts';
import { silentLogger, type Logger } from '../log/index.ts';
import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import type { ClickHouseHttp } from '../storage/http.ts';
import { ident, sql } from '../storage/sql.ts';
import { casesAsOf, decideCases, type Case } from './cases.ts';
import { createDetector } from './detector.ts';

export interface BacktestDeps {
  clickhouse: ClickHouseClient;
  http: ClickHouseHttp;
  database: string;
  logger?: Logger;
}

export interface BacktestOptions {
  fromMs: number;
  toMs: number;
  /** Simulated tick interval. @default 1000 (live ticks every 500 ms; rows carry their write time to the second) */
  stepMs?: number;
  /** Processing time after which an attempt counts as stuck (as in live detection). @default 30 minutes */
  stuckAfterMs?: number;
  /** Called after every simulated tick with the simulated time reached. */
  onProgress?: (atMs: number) => void;
}

export interface ReplayResult {
  ruleSetVersion: string;
  /** Cases opened per rule id (rules that opened none are listed with 0). */
  opened: Map<string, Case[]>;
  ticks: number;
  /** Entities whose rules ran exactly (after the SQL screen). */
  evaluated: number;
}

/**
 * Replays stored events through a rule set as live detection would have seen them: the same
 * detector runs on a simulated clock from `fromMs` to `toMs`, each tick seeing only the rows
 * written (ingested_at) by then, and hits go to an in-memory case book with the live case
 * semantics (decideCases: cooldown, one case per rule and entity), which starts from the cases
 * as they stood at `fromMs`. Baselines are the latest the analytics job computed (live detection
 * used the ones current then). Nothing is stored or published.
 */
export async function replay(deps: BacktestDeps, ruleSet: RuleSet, options: BacktestOptions): Promise<ReplayResult> {
  const step = options.stepMs ?? 1000;
  let clock = Math.ceil(options.fromMs / 1000) * 1000;
  // Cases open (or in cooldown) when the range begins update rather than reopen, as they did live.
  const book = await casesAsOf(deps.clickhouse, deps.database, options.fromMs);
  const opened = new Map<string, Case[]>(ruleSet.rules.filter((r) => r.enabled).map((r) => [r.id, []]));
  const detector = createDetector({
    clickhouse: deps.clickhouse,
    http: deps.http,
    database: deps.database,
    ruleSet,
    logger: deps.logger ?? silentLogger,
    isLeader: () => true,
    now: () => clock,
    // The first tick looks back to `from`; every tick sees the rows written by the second before it.
    startLookbackMs: step,
    writtenFrom: Math.floor(options.fromMs / 1000),
    writtenBy: (nowMs) => Math.floor(nowMs / 1000) - 1,
    stuckAfterMs: options.stuckAfterMs,
    baselines: (nowMs) => baselineFacts(deps.clickhouse, deps.database, nowMs),
    cases: {
      async applyHits(hits, nowMs) {
        const result = decideCases(hits, book, nowMs);
        for (const c of [...result.opened, ...result.updated]) book.set(`${c.rule_id}|${c.entity_type}|${c.entity_id}`, c);
        for (const c of result.opened) opened.get(c.rule_id)?.push(c) ?? opened.set(c.rule_id, [c]);
        return result;
      },
    },
  });
  let ticks = 0;
  for (clock += step; clock <= options.toMs + step; clock += step) {
    await detector.tick();
    ticks++;
    options.onProgress?.(Math.min(clock, options.toMs));
  }
  return { ruleSetVersion: ruleSet.version, opened, ticks, evaluated: detector.stats().evaluated };
}

/** Cases the live detector actually opened in [from, to), per rule: what a replay of the live rules should reproduce. */
export async function recordedCases(deps: Pick<BacktestDeps, 'clickhouse' | 'database'>, fromMs: number, toMs: number): Promise<Map<string, number>> {
  const rows = await queryRows<{ rule_id: string; n: string }>(
    deps.clickhouse,
    recordedCasesQuery(deps.database, fromMs, toMs),
    'recorded cases',
  );
  return new Map(rows.map((r) => [r.rule_id, Number(r.n)]));
}

export function recordedCasesQuery(database: string, fromMs: number, toMs: number): string {
  return sql`SELECT rule_id, count() AS n FROM ${ident(database, 'cases')} WHERE opened_at >= toDateTime(${Math.floor(fromMs / 1000)}, 'UTC') AND opened_at < toDateTime(${Math.ceil(toMs / 1000)}, 'UTC') GROUP BY rule_id`;
}
