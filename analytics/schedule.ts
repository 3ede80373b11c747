import { createTask, type ScheduledTask } from 'node-cron';
import { baselinesScheduledJob } from './baselines.ts';
import { dailyReportScheduledJob } from './daily-report.ts';
import type { ClickHouseClient } from '../storage/clickhouse.ts';
import { reportJobFailure, type ScheduledJob } from './jobs.ts';
import { ratesScheduledJob } from './rates.ts';
import { reconcileScheduledJob } from './reconcile.ts';
import { retryPolicyScheduledJob, type RetryPolicyDeps } from './retry-policy.ts';
import { statementsScheduledJob } from '../statements/job.ts';
import { requeryScheduledJob, type RequeryJobDeps } from '../automation/requery.ts';

/** What the scheduler and `paysentinel analytics run` give every job: the widest any job needs. */
export type JobDeps = RetryPolicyDeps &
  RequeryJobDeps & {
    /** The client of the jobs marked `bounded` (one thread, at RATES_PRIORITY); without it they use `clickhouse`. */
    boundedClickhouse?: ClickHouseClient;
  };

/** The analytics jobs and their schedules (analytics/DEFINITIONS.md says what each computes). */
export const analyticsJobs: readonly ScheduledJob<JobDeps>[] = [
  ratesScheduledJob,
  reconcileScheduledJob,
  retryPolicyScheduledJob,
  baselinesScheduledJob,
  dailyReportScheduledJob,
  statementsScheduledJob,
  requeryScheduledJob,
];

export interface AnalyticsSchedule {
  /**
   * Stops every task and waits for the runs in progress, at most `waitMs`, so a stop (SIGTERM)
   * between a run's statements lets it finish and record itself instead of failing on a closed
   * connection. @default STOP_WAIT_MS
   */
  stop(waitMs?: number): Promise<void>;
}

/** How long a stop waits for the jobs' runs in progress. @default 10 s */
export const STOP_WAIT_MS = 10_000;

/**
 * Wires node-cron to the jobs. A job never overlaps with itself in this process: a tick that
 * comes while the previous run is still going is skipped (and logged), and the next run catches
 * up the buckets it would have written. A failing run is logged at error level and counted in
 * paysentinel_job_runs_total{status="failed"} (by runJob, which also records it in job_runs, or
 * here when it failed before runJob started), and is kept from stopping the schedule.
 */
export function startAnalyticsSchedule(
  deps: JobDeps,
  jobs: readonly ScheduledJob<JobDeps>[] = analyticsJobs,
  options: { shouldRun?: () => boolean } = {},
): AnalyticsSchedule {
  const running = new Set<Promise<void>>();
  const tasks: ScheduledTask[] = jobs.map((job) => {
    const log = deps.logger.child({ job: job.name });
    const jobDeps = job.bounded && deps.boundedClickhouse ? { ...deps, clickhouse: deps.boundedClickhouse } : deps;
    const task = createTask(
      job.cron,
      async (ctx) => {
        // With several instances only the leader runs jobs; the others skip the tick.
        if (options.shouldRun && !options.shouldRun()) return;
        const run = (async () => {
          try {
            await job.run(jobDeps, ctx.date);
          } catch (err) {
            reportJobFailure({ logger: log, metrics: deps.metrics }, job.name, err);
          }
        })();
        running.add(run);
        try {
          await run;
        } finally {
          running.delete(run);
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
    async stop(waitMs = STOP_WAIT_MS) {
      for (const task of tasks) await task.destroy();
      if (running.size === 0) return;
      deps.logger.info('waiting for the jobs running now to finish', { runs: running.size, wait_ms: waitMs });
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), waitMs)));
      const finished = Promise.allSettled([...running]).then(() => false);
      if (await Promise.race([finished, timedOut])) {
        deps.logger.warn('jobs still running at stop: they are cut off and recorded as failed', { runs: running.size, waited_ms: waitMs });
      }
      clearTimeout(timer);
    },
  };
}

// node-cron's own messages go through our structured logger instead of the console.
function cronLogger(log: JobDeps['logger']) {
  return {
    info: (m: string) => log.debug(m),
    warn: (m: string) => log.warn(m),
    error: (m: string | Error) => log.error(String(m instanceof Error ? m.message : m)),
    debug: (m: string | Error) => log.debug(String(m instanceof Error ? m.message : m)),
  };
}
