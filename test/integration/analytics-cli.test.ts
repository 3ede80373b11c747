import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type EventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { command, insertRows } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import { eventRow } from '../fixtures/events.ts';
import { repoRoot, services } from './helpers.ts';

/** `paysentinel analytics run JOB`: one code path for every job of the registry, against the real ClickHouse. */
const s = services();
const cli = (args: string[]) =>
  spawnSync(process.execPath, ['bin/paysentinel.mjs', 'analytics', ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...s.env },
    encoding: 'utf8',
    timeout: 120_000,
  });

const at = Date.UTC(2026, 10, 25, 10, 1);
const row = (id: string, status: string, ms: number): EventRow => eventRow(ms, { event_id: id, order_id: 'o1', status, source: null });

beforeAll(async () => {
  await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
  await insertRows(s.clickhouse, ident(s.config.clickhouseDatabase, 'payment_events').text, [row('e1', 'processing', at), row('e2', 'succeeded', at + 2_000)]);
});
afterAll(async () => {
  await command(s.clickhouse, `DROP DATABASE IF EXISTS ${ident(s.config.clickhouseDatabase)}`);
  await s.clickhouse.close();
});

describe('analytics run JOB', () => {
  test('rates backfills a range and prints what it wrote; --json prints the recorded run', () => {
    const text = cli(['run', 'rates', '--from', '2026-11-25T10:00:00Z', '--to', '2026-11-25T11:00:00Z']);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^rates: ok, buckets 2026-11-25T10:00:00.000Z \.\. 2026-11-25T11:00:00.000Z, \d+ rows written \(run .+\)\.\n$/);
    const json = cli(['run', 'rates', '--from', '2026-11-25T10:00:00Z', '--to', '2026-11-25T11:00:00Z', '--json']);
    expect(json.status, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ job: 'rates', status: 'ok', rows: expect.any(Number) });
  });

  test('reconcile, baselines and retry-policy (not published) run with their own summaries', () => {
    const policy = cli(['run', 'retry-policy', '--no-publish', '--from', '2026-11-25', '--to', '2026-11-26']);
    expect(policy.status, policy.stderr).toBe(0);
    expect(policy.stdout).toMatch(
      /^retry-policy: ok, evidence 2026-11-25T00:00:00.000Z \.\. 2026-11-26T00:00:00.000Z, \d+ entries written \(run .+\)\. See "paysentinel policy show"/,
    );
    const reconcile = cli(['run', 'reconcile']);
    expect(reconcile.status, reconcile.stderr).toBe(0);
    expect(reconcile.stdout).toMatch(/^reconcile: ok, attempts first seen .* rows written \(run .+\)\.\n$/);
    const baselines = cli(['run', 'baselines', '--json']);
    expect(baselines.status, baselines.stderr).toBe(0);
    expect(JSON.parse(baselines.stdout)).toMatchObject({ job: 'baselines', status: 'ok' });
  });

  test('options a job does not take, and unknown jobs, are usage errors', () => {
    const window = cli(['run', 'reconcile', '--from', 'now-1h']);
    expect(window.status).toBe(2);
    expect(window.stderr).toMatch(/analytics run reconcile takes no --from or --to/);
    const publish = cli(['run', 'rates', '--no-publish']);
    expect(publish.status).toBe(2);
    expect(publish.stderr).toMatch(/--no-publish applies to "analytics run retry-policy" only/);
    const unknown = cli(['run', 'nightly']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown job "nightly": the jobs are: rates, reconcile, retry-policy, baselines, daily-report/);
  });
});
