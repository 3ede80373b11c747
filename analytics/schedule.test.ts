import { afterEach, describe, expect, test, vi } from 'vitest';
import { createLogger, silentLogger } from '../log/index.ts';
import { createJobMetrics } from '../metrics/registry.ts';
import type { AnalyticsDeps } from './jobs.ts';
import type { ScheduledJob } from './jobs.ts';
import { analyticsJobs, startAnalyticsSchedule } from './schedule.ts';

const at = (hh: number, mm: number, ss = 0) => Date.UTC(2026, 10, 25, hh, mm, ss);
const deps = (logger = silentLogger): AnalyticsDeps => ({ clickhouse: undefined as never, database: 'unused', logger });

afterEach(() => {
  vi.useRealTimers();
});

describe('analytics schedule (fake clock)', () => {
  test('rates every minute, reconcile every five minutes, the retry policy and baselines hourly, the report daily, statements every five minutes, the requery job every minute', () => {
    expect(analyticsJobs.map((j) => [j.name, j.cron])).toEqual([
      ['rates', '* * * * *'],
      ['reconcile', '*/5 * * * *'],
      ['retry-policy', '7 * * * *'],
      ['baselines', '3 * * * *'],
      ['daily-report', '10 0 * * *'],
      ['statements', '*/5 * * * *'],
      ['requery', '* * * * *'],
    ]);
  });

  test('runs the job at every minute with that minute as `now`, until stopped', async () => {
    vi.useFakeTimers({ now: at(10, 0, 30) });
    const seen: string[] = [];
    const job: ScheduledJob = { name: 'rates', cron: '* * * * *', run: async (_deps, now) => void seen.push(now.toISOString()) };
    const schedule = startAnalyticsSchedule(deps(), [job]);
    await vi.advanceTimersByTimeAsync(3 * 60_000);
    expect(seen).toEqual(['2026-11-25T10:01:00.000Z', '2026-11-25T10:02:00.000Z', '2026-11-25T10:03:00.000Z']);
    await schedule.stop();
    await vi.advanceTimersByTimeAsync(3 * 60_000);
    expect(seen).toHaveLength(3);
  });

  test('a job marked bounded runs on the bounded client, the others on the background one; the rates job is marked', async () => {
    vi.useFakeTimers({ now: at(10, 0, 30) });
    const background = { name: 'background' } as never;
    const bounded = { name: 'bounded' } as never;
    const seen: string[] = [];
    const job = (name: string, flag: boolean): ScheduledJob => ({
      name,
      cron: '* * * * *',
      bounded: flag,
      run: async (d) => void seen.push(`${name}:${(d.clickhouse as unknown as { name: string }).name}`),
    });
    const schedule = startAnalyticsSchedule({ ...deps(), clickhouse: background, boundedClickhouse: bounded }, [job('a', true), job('b', false)]);
    await vi.advanceTimersByTimeAsync(60_000);
    await schedule.stop();
    expect(seen.sort()).toEqual(['a:bounded', 'b:background']);
    expect(analyticsJobs.filter((j) => j.bounded).map((j) => j.name)).toEqual(['rates']);
  });

  test('an instance that is not the leader skips its ticks, and runs once it leads', async () => {
    vi.useFakeTimers({ now: at(10, 0, 30) });
    const seen: string[] = [];
    let leader = false;
    const job: ScheduledJob = { name: 'rates', cron: '* * * * *', run: async (_deps, now) => void seen.push(now.toISOString().slice(11, 16)) };
    const schedule = startAnalyticsSchedule(deps(), [job], { shouldRun: () => leader });
    await vi.advanceTimersByTimeAsync(2 * 60_000);
    expect(seen).toEqual([]);
    leader = true;
    await vi.advanceTimersByTimeAsync(2 * 60_000);
    expect(seen).toEqual(['10:03', '10:04']);
    await schedule.stop();
  });

  test('a run never overlaps with itself: the tick during a slow run is skipped and logged', async () => {
    vi.useFakeTimers({ now: at(10, 0, 30) });
    const lines: string[] = [];
    const started: string[] = [];
    let running = 0;
    let maxRunning = 0;
    const job: ScheduledJob = {
      name: 'rates',
      cron: '* * * * *',
      run: async (_deps, now) => {
        started.push(now.toISOString().slice(11, 16));
        maxRunning = Math.max(maxRunning, ++running);
        await new Promise((r) => setTimeout(r, 90_000));
        running--;
      },
    };
    const schedule = startAnalyticsSchedule(deps(createLogger({ level: 'warn', write: (l) => lines.push(l) })), [job]);
    await vi.advanceTimersByTimeAsync(4 * 60_000);
    await schedule.stop();
    expect(maxRunning).toBe(1);
    expect(started).toEqual(['10:01', '10:03']);
    expect(lines.some((l) => /still in progress/.test(l))).toBe(true);
  });

  test('the daily report runs at 00:10 UTC, the baselines at 3 minutes past each hour', async () => {
    vi.useFakeTimers({ now: at(23, 0, 30) });
    const seen: string[] = [];
    const jobs = analyticsJobs
      .filter((j) => j.name === 'daily-report' || j.name === 'baselines')
      .map((j): ScheduledJob => ({ ...j, run: async (_deps, now) => void seen.push(`${j.name} ${now.toISOString().slice(11, 16)}`) }));
    const schedule = startAnalyticsSchedule(deps(), jobs);
    await vi.advanceTimersByTimeAsync(75 * 60_000);
    await schedule.stop();
    expect(seen).toEqual(['baselines 23:03', 'baselines 00:03', 'daily-report 00:10']);
  });

  test('a failing run is logged at error level and counted as failed, once', async () => {
    vi.useFakeTimers({ now: at(10, 0, 30) });
    const lines: string[] = [];
    const metrics = createJobMetrics();
    const job: ScheduledJob = { name: 'rates', cron: '* * * * *', run: async () => Promise.reject(new Error('ClickHouse is down')) };
    const schedule = startAnalyticsSchedule({ ...deps(createLogger({ level: 'info', write: (l) => lines.push(l) })), metrics }, [job]);
    await vi.advanceTimersByTimeAsync(2 * 60_000);
    await schedule.stop();
    expect(await metrics.runs.get({ job: 'rates', status: 'failed' })).toBe(2);
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ level: 'error', msg: 'job failed', job: 'rates', err: { message: 'ClickHouse is down' } }),
      expect.objectContaining({ level: 'error', msg: 'job failed', job: 'rates' }),
    ]);
  });

  test('a failing run does not stop the schedule', async () => {
    vi.useFakeTimers({ now: at(10, 0, 30) });
    let calls = 0;
    const job: ScheduledJob = {
      name: 'rates',
      cron: '* * * * *',
      run: async () => {
        calls++;
        throw new Error('ClickHouse is down');
      },
    };
    const schedule = startAnalyticsSchedule(deps(), [job]);
    await vi.advanceTimersByTimeAsync(3 * 60_000);
    await schedule.stop();
    expect(calls).toBe(3);
  });

  test('a stop waits for the run in progress, so it finishes and records itself', async () => {
    vi.useFakeTimers({ now: at(10, 0, 59) });
    let release: () => void = () => {};
    const events: string[] = [];
    const job: ScheduledJob = {
      name: 'rates',
      cron: '* * * * *',
      run: async () => {
        events.push('started');
        await new Promise<void>((resolve) => (release = resolve));
        events.push('finished');
      },
    };
    const schedule = startAnalyticsSchedule(deps(), [job]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(events).toEqual(['started']);
    const stopped = schedule.stop(10_000).then(() => events.push('stopped'));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(events).toEqual(['started']);
    release();
    await stopped;
    expect(events).toEqual(['started', 'finished', 'stopped']);
  });

  test('a stop gives up on a run that outlasts the wait, and says so', async () => {
    vi.useFakeTimers({ now: at(10, 0, 59) });
    const lines: string[] = [];
    const job: ScheduledJob = { name: 'rates', cron: '* * * * *', run: () => new Promise<void>(() => {}) };
    const schedule = startAnalyticsSchedule(deps(createLogger({ level: 'info', write: (l) => lines.push(l) })), [job]);
    await vi.advanceTimersByTimeAsync(1_000);
    let stopped = false;
    const stopping = schedule.stop(10_000).then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(9_000);
    expect(stopped).toBe(false);
    await vi.advanceTimersByTimeAsync(1_500);
    await stopping;
    expect(stopped).toBe(true);
    expect(lines.map((l) => JSON.parse(l).msg)).toContain('jobs still running at stop: they are cut off and recorded as failed');
  });
});
