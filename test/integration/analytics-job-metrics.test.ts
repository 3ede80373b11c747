import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { recentRuns, runJob, type AnalyticsDeps } from '../../analytics/jobs.ts';
import { run as runRates } from '../../analytics/rates.ts';
import type { ScheduledJob } from '../../analytics/jobs.ts';
import { startAnalyticsSchedule } from '../../analytics/schedule.ts';
import { createLogger, silentLogger } from '../../log/index.ts';
import { createJobMetrics } from '../../metrics/registry.ts';
import { command, createClickHouse } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { services } from './helpers.ts';

/** A failing job is visible three ways: an error log line, paysentinel_job_runs_total{status="failed"}, and job_runs. */
const s = services();
const window = { from: new Date(Date.UTC(2026, 10, 25, 10)), to: new Date(Date.UTC(2026, 10, 25, 11)) };

function capture() {
  const lines: Record<string, unknown>[] = [];
  return { lines, logger: createLogger({ level: 'info', write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) }) };
}

async function until(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
});
afterAll(async () => {
  await command(s.clickhouse, `DROP DATABASE IF EXISTS ${ident(s.config.clickhouseDatabase)}`);
  await s.clickhouse.close();
});

describe('job runs in Prometheus metrics', () => {
  test('a successful run counts as ok and sets the time of the last success', async () => {
    const metrics = createJobMetrics();
    const deps: AnalyticsDeps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger: silentLogger, metrics };
    const before = Date.now() / 1000;
    await runJob(deps, 'demo', window, async () => 3);
    expect(await metrics.runs.get({ job: 'demo', status: 'ok' })).toBe(1);
    expect(await metrics.runs.get({ job: 'demo', status: 'failed' })).toBe(0);
    expect(await metrics.lastSuccess.get({ job: 'demo' })).toBeGreaterThanOrEqual(Math.floor(before));
    expect(await metrics.registry.render()).toContain('paysentinel_job_runs_total{job="demo",status="ok"} 1');
  });

  test("an overrunning job shows in /metrics: the last run's duration, and the age of the latest complete rates bucket", async () => {
    let clock = Date.UTC(2026, 10, 25, 12, 2);
    const metrics = createJobMetrics(undefined, () => clock);
    const deps: AnalyticsDeps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger: silentLogger, metrics };
    // No rates run yet: no age to report.
    expect(await metrics.registry.render()).not.toMatch(/^paysentinel_rates_complete_bucket_age_seconds /m);
    await runJob(deps, 'slow', window, () => new Promise((r) => setTimeout(() => r(1), 300)));
    expect(await metrics.duration.get({ job: 'slow' })).toBeGreaterThanOrEqual(0.3);
    await runRates(deps, new Date(clock));
    expect(await metrics.registry.render()).toMatch(/^paysentinel_rates_complete_until_timestamp_seconds 1795608000$/m);
    expect(await metrics.registry.render()).toMatch(/^paysentinel_rates_complete_bucket_age_seconds 120$/m);
    // The job stops writing (failing, or one run taking minutes): the age grows at every scrape.
    clock += 10 * 60_000;
    expect(await metrics.registry.render()).toMatch(/^paysentinel_rates_complete_bucket_age_seconds 720$/m);
    expect(await metrics.registry.render()).toMatch(/^paysentinel_job_duration_seconds\{job="rates"\} \d/m);
  });

  test('a run in progress shows in /metrics while it runs (paysentinel_job_running_seconds), 0 once it ended', async () => {
    let clock = Date.UTC(2026, 10, 25, 12, 2);
    const metrics = createJobMetrics(undefined, () => clock);
    const deps: AnalyticsDeps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger: silentLogger, metrics };
    let finish!: (rows: number) => void;
    let started = false;
    const run = runJob(deps, 'long', window, () => {
      started = true;
      return new Promise<number>((r) => (finish = r));
    });
    await until('the run to start its work', () => started);
    clock += 90_000;
    expect(await metrics.registry.render()).toMatch(/^paysentinel_job_running_seconds\{job="long"\} 90$/m);
    finish(1);
    await run;
    expect(await metrics.registry.render()).toMatch(/^paysentinel_job_running_seconds\{job="long"\} 0$/m);
  });

  test('a failing run is logged at error level, counted as failed and recorded in job_runs', async () => {
    const metrics = createJobMetrics();
    const { lines, logger } = capture();
    const deps: AnalyticsDeps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger, metrics };
    await expect(runJob(deps, 'broken', window, async () => Promise.reject(new Error('disk full')))).rejects.toThrow('disk full');
    expect(await metrics.runs.get({ job: 'broken', status: 'failed' })).toBe(1);
    expect(await metrics.registry.render()).toContain('paysentinel_job_runs_total{job="broken",status="failed"} 1');
    expect(lines.filter((l) => l.level === 'error')).toEqual([
      expect.objectContaining({ msg: 'job failed', job: 'broken', err: expect.objectContaining({ message: 'disk full' }) }),
    ]);
    expect((await recentRuns(deps, 'broken', 1))[0]).toMatchObject({ status: 'failed', error: 'disk full' });
  });

  test('with ClickHouse unreachable the run cannot be recorded, but it is still logged and counted', async () => {
    const metrics = createJobMetrics();
    const { lines, logger } = capture();
    // Nothing listens on port 1: connection refused, the real failure of a down server.
    const down = createClickHouse({ clickhouseUrl: 'http://127.0.0.1:1', clickhouseUser: 'default', clickhousePassword: '' }, { requestTimeoutMs: 5_000 });
    try {
      await expect(runJob({ clickhouse: down, database: 'paysentinel', logger, metrics }, 'rates', window, async () => 1)).rejects.toThrow(/record job start/);
    } finally {
      await down.close();
    }
    expect(await metrics.runs.get({ job: 'rates', status: 'failed' })).toBe(1);
    expect(lines.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual(['job failed: could not record its start in job_runs']);
  });

  test('scheduled: every failing tick is counted exactly once, also when it fails before runJob', async () => {
    const metrics = createJobMetrics();
    const { lines, logger } = capture();
    const deps: AnalyticsDeps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger, metrics };
    const finished = { early: 0, work: 0 };
    const jobs: ScheduledJob[] = [
      {
        // The real rates job against a database that does not exist: it fails planning its window, before runJob.
        name: 'early',
        cron: '* * * * * *',
        run: (d, now) => runRates({ ...d, database: 'ps_missing_database' }, now).finally(() => void finished.early++),
      },
      {
        // Fails inside runJob: counted there, and not a second time by the scheduler.
        name: 'work',
        cron: '* * * * * *',
        run: (d) => runJob(d, 'work', window, async () => Promise.reject(new Error('bad data'))).finally(() => void finished.work++),
      },
    ];
    const schedule = startAnalyticsSchedule(deps, jobs);
    try {
      await until('two failed ticks of each job', () => finished.early >= 2 && finished.work >= 2);
    } finally {
      await schedule.stop();
    }
    await expect
      .poll(async () => [await metrics.runs.get({ job: 'early', status: 'failed' }), await metrics.runs.get({ job: 'work', status: 'failed' })], {
        timeout: 5_000,
      })
      .toEqual([finished.early, finished.work]);
    expect(await metrics.runs.get({ job: 'early', status: 'failed' })).toBe(finished.early);
    expect(await metrics.runs.get({ job: 'work', status: 'failed' })).toBe(finished.work);
    const errors = lines.filter((l) => l.level === 'error');
    expect(errors.filter((l) => l.job === 'early')).toHaveLength(finished.early);
    expect(errors.filter((l) => l.job === 'work')).toHaveLength(finished.work);
    expect(errors.find((l) => l.job === 'early')).toMatchObject({ msg: 'job failed', err: { message: expect.stringMatching(/ps_missing_database/) } });
  });
});
