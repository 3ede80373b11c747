import { baselineFacts } from '../analytics/baselines.ts';
import type { RuleSet } from '../rules/index.ts';
import { silentLogger, type Logger } from '../log/index.ts';
import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import type { ClickHouseHttp } from '../storage/http.ts';
import { ident, sql } from '../storage/sql.ts';
import { casesAsOf, createCaseBook, type Case } from '../cases/index.ts';
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
  /** Simulated tick interval. @default 1000 (live ticks every 250 ms by default; rows carry their write time to the second) */
  stepMs?: number;
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
 * as they stood at `fromMs`, with the baselines of the analytics runs made by each tick's time.
 * Nothing is stored or published.
 */
export async function replay(deps: BacktestDeps, ruleSet: RuleSet, options: BacktestOptions): Promise<ReplayResult> {
  const step = options.stepMs ?? 1000;
  let clock = Math.ceil(options.fromMs / 1000) * 1000;
  // Cases open (or in cooldown) when the range begins update rather than reopen, as they did live.
  const book = createCaseBook(await casesAsOf(deps.clickhouse, deps.database, options.fromMs));
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
    baselines: (nowMs) => baselineFacts(deps.clickhouse, deps.database, nowMs, { asOf: true }),
    cases: book,
  });
  let ticks = 0;
  // Ticks every step from --from; the last one at --to itself.
  while (clock < options.toMs) {
    clock = Math.min(clock + step, options.toMs);
    await detector.tick();
    ticks++;
    options.onProgress?.(clock);
  }
  const opened = new Map<string, Case[]>(ruleSet.rules.filter((r) => r.enabled).map((r) => [r.id, []]));
  for (const c of book.opened) opened.get(c.rule_id)?.push(c) ?? opened.set(c.rule_id, [c]);
  return { ruleSetVersion: ruleSet.version, opened, ticks, evaluated: detector.stats().evaluated };
}

/** Cases the live detector actually opened in [from, to), per rule: what a replay of the live rules should reproduce. */
export async function recordedCases(deps: Pick<BacktestDeps, 'clickhouse' | 'database'>, fromMs: number, toMs: number): Promise<Map<string, number>> {
  const rows = await queryRows<{ rule_id: string; n: string }>(deps.clickhouse, recordedCasesQuery(deps.database, fromMs, toMs), 'recorded cases');
  return new Map(rows.map((r) => [r.rule_id, Number(r.n)]));
}

export function recordedCasesQuery(database: string, fromMs: number, toMs: number): string {
  return sql`SELECT rule_id, count() AS n FROM ${ident(database, 'cases')}
    WHERE opened_at >= toDateTime(${Math.floor(fromMs / 1000)}, 'UTC') AND opened_at < toDateTime(${Math.ceil(toMs / 1000)}, 'UTC')
    GROUP BY rule_id`;
}
