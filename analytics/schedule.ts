import { createTask, type ScheduledTask } from 'node-cron';
import { baselinesScheduledJob } from './baselines.ts';
import { dailyReportScheduledJob } from './daily-report.ts';
import { reportJobFailure, type AnalyticsDeps, type JobRun } from './jobs.ts';
import { RATES_JOB, RATES_RUN_BUDGET_MS, run as runRates } from './rates.ts';
import { reconcileScheduledJob } from './reconcile.ts';
import { retryPolicyScheduledJob, type PolicyPublisher } from './retry-policy.ts';
import { statementsScheduledJob } from '../statements/job.ts';

/** A job and when it runs; `run` is the plain function of (dependencies, now) the scheduler calls. */
export interface ScheduledJob {
  name: string;
  /** node-cron expression, evaluated in UTC. */
  cron: string;
  run(deps: AnalyticsDeps, now: Date): Promise<unknown>;
  /** How `paysentinel analytics run NAME` runs it once, by hand. */
  byHand?: ManualRun;
}

/** A run by hand: the options it takes, the run itself, and what it prints. */
export interface ManualRun<R extends JobRun = JobRun> {
  /** It takes --from and --to (else neither). */
  window: boolean;
  /** It publishes what it stores (the CLI passes a Kafka publisher unless --no-publish). */
  publishes?: boolean;
  run(deps: AnalyticsDeps & { publisher?: PolicyPublisher }, now: Date, window: { from?: Date; to?: Date }): Promise<R>;
  /** What the terminal shows of a finished run. */
  text(result: R, published: boolean): string;
  /** What --json prints of it. @default the result itself */
  json?(result: R): unknown;
}

/**
 * The rates job's schedule and its run by hand (a backfill with --from/--to). A scheduled run
 * stops starting slices after RATES_RUN_BUDGET_MS, so a catch-up spreads over several runs; by
 * hand without --from it runs until caught up.
 */
export const ratesScheduledJob: ScheduledJob = {
  name: RATES_JOB,
  cron: '* * * * *',
  run: (deps, now) => runRates(deps, now, { budgetMs: RATES_RUN_BUDGET_MS }),
  byHand: {
    window: true,
    run: (deps, now, window) => runRates(deps, now, window),
    text: (r) => `${r.job}: ${r.status}, buckets ${r.from.toISOString()} .. ${r.to.toISOString()}, ${r.rows} rows written (run ${r.runId}).`,
  },
};

/** The analytics jobs and their schedules (analytics/DEFINITIONS.md says what each computes). */
export const analyticsJobs: readonly ScheduledJob[] = [
  ratesScheduledJob,
  reconcileScheduledJob,
  retryPolicyScheduledJob,
  baselinesScheduledJob,
  dailyReportScheduledJob,
  statementsScheduledJob,
];

export interface AnalyticsSchedule {
  /** Stops every task; a run in progress finishes on its own. */
  stop(): Promise<void>;
}

/**
 * Wires node-cron to the jobs. A job never overlaps with itself in this process: a tick that
 * comes while the previous run is still going is skipped (and logged), and the next run catches
 * up the buckets it would have written. A failing run is logged at error level and counted in
 * paysentinel_job_runs_total{status="failed"} (by runJob, which also records it in job_runs, or
 * here when it failed before runJob started), and is kept from stopping the schedule.
 */
export function startAnalyticsSchedule(
  deps: AnalyticsDeps,
  jobs: readonly ScheduledJob[] = analyticsJobs,
  options: { shouldRun?: () => boolean } = {},
): AnalyticsSchedule {
  const tasks: ScheduledTask[] = jobs.map((job) => {
    const log = deps.logger.child({ job: job.name });
    const task = createTask(
      job.cron,
      async (ctx) => {
        // With several instances only the leader runs jobs; the others skip the tick.
        if (options.shouldRun && !options.shouldRun()) return;
        try {
          await job.run(deps, ctx.date);
        } catch (err) {
          reportJobFailure({ logger: log, metrics: deps.metrics }, job.name, err);
        }
      },
      { name: `analytics:${job.name}`, noOverlap: true, timezone: 'Etc/UTC', logger: cronLogger(log) },
    );
    task.on('execution:overlap', () => log.warn('previous run still in progress: this tick is skipped, the next run catches up'));
    task.on('execution:missed', (ctx) => log.warn('tick missed (event loop blocked?): the next run catches up', { at: ctx.date.toISOString() }));
    return task;
  });
  for (const task of tasks) void task.start();
  return {
    async stop() {
      for (const task of tasks) await task.destroy();
    },
  };
}

// node-cron's own messages go through our structured logger instead of the console.
function cronLogger(log: AnalyticsDeps['logger']) {
  return {
    info: (m: string) => log.debug(m),
    warn: (m: string) => log.warn(m),
    error: (m: string | Error) => log.error(String(m instanceof Error ? m.message : m)),
    debug: (m: string | Error) => log.debug(String(m instanceof Error ? m.message : m)),
  };
}
