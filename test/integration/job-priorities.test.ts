import { describe, expect, test } from 'vitest';
import { jobPriorities } from '../../config/index.ts';
import { createClickHouse, createJobsClickHouse, queryRows, type ClickHouseClient } from '../../storage/clickhouse.ts';
import { configFor, isolatedEnv } from './helpers.ts';

/**
 * What the server applies to the jobs' statements: ClickHouse pauses a query while one of a
 * higher priority (a lower number) runs, so the order ingest/detection (1) < rates < other jobs (10)
 * decides who waits for whom. Read back from system.settings, which shows the query's own settings.
 */
async function applied(clickhouse: ClickHouseClient): Promise<{ priority: number; maxThreads: number }> {
  const rows = await queryRows<{ name: string; value: string }>(
    clickhouse,
    "SELECT name, value FROM system.settings WHERE name IN ('priority', 'max_threads')",
  );
  const value = (name: string) => Number(rows.find((r) => r.name === name)?.value);
  return { priority: value('priority'), maxThreads: value('max_threads') };
}

describe('the jobs’ ClickHouse priorities', () => {
  test('ingest, detection and the CLI run at priority 1, the highest', async () => {
    const clickhouse = createClickHouse(configFor(isolatedEnv()));
    try {
      expect((await applied(clickhouse)).priority).toBe(1);
    } finally {
      await clickhouse.close();
    }
  });

  const expected = { foreground: 1, 'above-jobs': 5, background: 10 } as const;
  test.each(jobPriorities)('RATES_PRIORITY=%s: the rates job at its priority, the other jobs at 10, one thread each', async (setting) => {
    const clients = await createJobsClickHouse(configFor(isolatedEnv({ RATES_PRIORITY: setting })), { requestTimeoutMs: 30_000 });
    try {
      expect(await applied(clients.jobs)).toEqual({ priority: 10, maxThreads: 1 });
      expect(await applied(clients.rates)).toEqual({ priority: expected[setting], maxThreads: 1 });
    } finally {
      await clients.close();
    }
  });
});

describe('the jobs’ large groupings (JOBS_SPILL_BYTES)', () => {
  // About 3 million groups: far more than the 120 MB limit this statement sets for itself, the
  // way a 24-hour reconcile at a high event rate outgrows the server's limit.
  const grouping = {
    query: 'SELECT sum(c) AS n FROM (SELECT toString(number % 3000000) AS k, count() AS c FROM numbers(6000000) GROUP BY k)',
    clickhouse_settings: { max_memory_usage: '120000000' },
  };
  const run = (clickhouse: ClickHouseClient) => clickhouse.query({ ...grouping, format: 'JSONEachRow' }).then((r) => r.json<{ n: string }>());

  test('with spilling, a grouping over the memory limit continues on disk and finishes, in both jobs’ clients', async () => {
    const clients = await createJobsClickHouse(configFor(isolatedEnv({ JOBS_SPILL_BYTES: String(30 * 1024 * 1024) })), { requestTimeoutMs: 120_000 });
    try {
      expect(await run(clients.jobs)).toEqual([{ n: '6000000' }]);
      expect(await run(clients.rates)).toEqual([{ n: '6000000' }]);
    } finally {
      await clients.close();
    }
  });

  test('the jobs’ statements spill at JOBS_SPILL_BYTES and carry the server’s time limit, 15 s before the client’s', async () => {
    const clients = await createJobsClickHouse(configFor(isolatedEnv({ JOBS_SPILL_BYTES: '123456789' })), { requestTimeoutMs: 45_000 });
    try {
      for (const client of [clients.jobs, clients.rates]) {
        const rows = await queryRows<{ name: string; value: string }>(
          client,
          "SELECT name, value FROM system.settings WHERE name IN ('max_bytes_before_external_group_by', 'max_bytes_before_external_sort', 'max_execution_time', 'timeout_before_checking_execution_speed') ORDER BY name",
        );
        expect(rows).toEqual([
          { name: 'max_bytes_before_external_group_by', value: '123456789' },
          { name: 'max_bytes_before_external_sort', value: '123456789' },
          { name: 'max_execution_time', value: '30' },
          { name: 'timeout_before_checking_execution_speed', value: '0' },
        ]);
      }
    } finally {
      await clients.close();
    }
  });

  test('JOBS_SPILL_BYTES=auto (the default) spills at half the memory limit the server applies to the jobs’ user', async () => {
    const config = configFor(isolatedEnv());
    expect(config.jobsSpillBytes).toBe('auto');
    const probe = createClickHouse(config);
    const value = (await queryRows<{ value: string }>(probe, "SELECT value FROM system.settings WHERE name = 'max_memory_usage'"))[0]?.value;
    await probe.close();
    const clients = await createJobsClickHouse(config, { requestTimeoutMs: 30_000 });
    try {
      expect(Number(value)).toBeGreaterThan(0);
      expect(clients.spillBytes).toBe(Math.floor(Number(value) / 2));
      const [row] = await queryRows<{ value: string }>(clients.jobs, "SELECT value FROM system.settings WHERE name = 'max_bytes_before_external_group_by'");
      expect(row!.value).toBe(String(Math.floor(Number(value) / 2)));
    } finally {
      await clients.close();
    }
  });

  test('JOBS_SPILL_BYTES=0: the same grouping fails at the statement’s limit (18.16 has no other spilling)', async () => {
    const clients = await createJobsClickHouse(configFor(isolatedEnv({ JOBS_SPILL_BYTES: '0' })), { requestTimeoutMs: 120_000 });
    try {
      await expect(run(clients.jobs)).rejects.toThrow(/Memory limit/);
    } finally {
      await clients.close();
    }
  });
});
