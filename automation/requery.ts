import type { Producer } from 'kafkajs';
import { runJob, type AnalyticsDeps, type JobRun, type ScheduledJob } from '../analytics/jobs.ts';
import { readPolicy } from '../analytics/retry-policy.ts';
import type { Config } from '../config/index.ts';
import type { Logger } from '../log/index.ts';
import { insertRows, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident } from '../storage/sql.ts';
import { commandMessage, readSwitch } from './automation.ts';
import { commandIdFor, type PlannedCommand } from './plan.ts';
import { AUTOMATION_ACTOR, automationQueries, issuedCommandRow } from './queries.ts';

/**
 * The article's scheduled re-check, a scheduled job like the analytics ones (run every minute
 * on the jobs leader, recorded in job_runs): a requery_status for the attempts still
 * processing REQUERY_AFTER after their first report, oldest first, at most
 * REQUERY_MAX_PER_MINUTE (half that in the peak hours the retry-policy job found, where the
 * platform is already struggling), and never for one attempt more often than every
 * REQUERY_AFTER. Commands carry no case; their answers are settled by the automation pass of
 * the detection leader, which looks at every published command.
 */
export const REQUERY_JOB = 'requery';

export interface RequeryDeps {
  clickhouse: ClickHouseClient;
  database: string;
  producer: Pick<Producer, 'send'>;
  config: Pick<Config, 'automation' | 'requeryAfterMs' | 'requeryMaxPerMinute' | 'commandsTopic'>;
  logger: Logger;
}

/** The most re-queries of one run at `hourUtc`: fewer in a peak hour. */
export function requeryLimit(maxPerMinute: number, hourUtc: number, peakHours: ReadonlySet<number>): number {
  return peakHours.has(hourUtc) ? Math.max(1, Math.floor(maxPerMinute / 2)) : maxPerMinute;
}

/** One run at `nowMs`: what it issued (or recorded, in dry-run). */
export async function runRequery(deps: RequeryDeps, nowMs: number): Promise<{ issued: number; limit: number; peak: boolean; skipped?: string }> {
  const mode = deps.config.automation;
  if (mode === 'off') return { issued: 0, limit: 0, peak: false, skipped: 'AUTOMATION=off' };
  if ((await readSwitch(deps.clickhouse, deps.database)).paused) return { issued: 0, limit: 0, peak: false, skipped: 'paused' };
  const q = automationQueries(deps.database);
  const peakHours = new Set((await readPolicy(deps)).flatMap((e) => e.peakHours));
  const hour = new Date(nowMs).getUTCHours();
  const limit = requeryLimit(deps.config.requeryMaxPerMinute, hour, peakHours);
  const nowSec = Math.floor(nowMs / 1000);
  const afterSec = Math.floor(deps.config.requeryAfterMs / 1000);
  const asked = new Set(
    (await queryRows<{ order_id: string; attempt: number }>(deps.clickhouse, q.requeriedSince(nowSec - afterSec), 'attempts re-queried')).map(
      (r) => `${r.order_id}|${Number(r.attempt)}`,
    ),
  );
  // A few more than the limit: some of the oldest may have been asked about within REQUERY_AFTER.
  const stuck = await queryRows<{ order_id: string; attempt: number; transaction_id: string }>(
    deps.clickhouse,
    q.stillProcessing(nowSec - 86_400, nowSec - afterSec, limit + asked.size),
    'attempts still processing',
  );
  const due = stuck.filter((a) => !asked.has(`${a.order_id}|${Number(a.attempt)}`)).slice(0, limit);
  if (due.length === 0) return { issued: 0, limit, peak: peakHours.has(hour), skipped: undefined };
  // One id per attempt and REQUERY_AFTER period: a repeated run in the same period sends the same command.
  const period = Math.floor(nowMs / deps.config.requeryAfterMs);
  const planned: PlannedCommand[] = due.map((a) => ({
    command_id: commandIdFor('requery_status', { caseId: '', orderId: a.order_id, attempt: Number(a.attempt), round: period }),
    type: 'requery_status',
    case_id: '',
    rule_id: '',
    order_id: a.order_id,
    attempt: Number(a.attempt),
    ...(a.transaction_id ? { transaction_id: a.transaction_id } : {}),
    reason: `Scheduled re-check: attempt ${a.attempt} of order ${a.order_id} is still processing.`,
  }));
  const expiresAtMs = nowMs + deps.config.requeryAfterMs;
  await insertRows(
    deps.clickhouse,
    ident(deps.database, 'command_versions').text,
    planned.map((p) => issuedCommandRow(p, mode, nowMs, expiresAtMs, REQUERY_JOB)),
  );
  if (mode === 'on')
    await deps.producer.send({
      topic: deps.config.commandsTopic,
      acks: -1,
      messages: planned.map((p) => ({ key: p.order_id!, value: JSON.stringify(commandMessage(p, nowMs, expiresAtMs)) })),
    });
  deps.logger.info(mode === 'on' ? 're-queried attempts still processing' : 'would have re-queried (dry-run)', {
    count: planned.length,
    limit,
    by: AUTOMATION_ACTOR,
  });
  return { issued: planned.length, limit, peak: peakHours.has(hour) };
}

/** What the scheduled requery job needs beyond AnalyticsDeps: a producer for the commands topic and the settings. */
export interface RequeryJobDeps extends AnalyticsDeps {
  /** Without it (a process that cannot publish commands) the job does nothing. */
  commands?: { producer: Pick<Producer, 'send'>; config: RequeryDeps['config'] };
}

/**
 * One recorded run of the requery job at `now`: its window is the first reports it looks at
 * (the day before `now`, up to REQUERY_AFTER ago), its rows the commands it issued (or recorded,
 * in dry-run). With AUTOMATION=off or paused it records a run that issued nothing.
 */
export async function runRequeryJob(deps: RequeryJobDeps, now: Date): Promise<JobRun | null> {
  const commands = deps.commands;
  if (!commands) return null;
  const window = { from: new Date(now.getTime() - 86_400_000), to: new Date(now.getTime() - commands.config.requeryAfterMs) };
  return runJob(deps, REQUERY_JOB, window, async () => {
    const r = await runRequery({ ...deps, producer: commands.producer, config: commands.config }, now.getTime());
    if (r.skipped) deps.logger.debug('requery: nothing sent', { why: r.skipped });
    return r.issued;
  });
}

export const requeryScheduledJob: ScheduledJob<RequeryJobDeps> = { name: REQUERY_JOB, cron: '* * * * *', run: (deps, now) => runRequeryJob(deps, now) };
