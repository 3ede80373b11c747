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
    const clients = createJobsClickHouse(configFor(isolatedEnv({ RATES_PRIORITY: setting })), { requestTimeoutMs: 30_000 });
    try {
      expect(await applied(clients.jobs)).toEqual({ priority: 10, maxThreads: 1 });
      expect(await applied(clients.rates)).toEqual({ priority: expected[setting], maxThreads: 1 });
    } finally {
      await clients.close();
    }
  });
});
