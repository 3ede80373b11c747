import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { run as runReport } from '../../analytics/daily-report.ts';
import { recentRuns } from '../../analytics/jobs.ts';
import { run as runRates } from '../../analytics/rates.ts';
import { type EventRow } from '../../ingest/records.ts';
import { silentLogger } from '../../log/index.ts';
import { command, insertRows } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident, toDateTimeText } from '../../storage/sql.ts';
import { eventRow } from '../fixtures/events.ts';
import { repoRoot, services } from './helpers.ts';

/**
 * Two hand-built days on the real ClickHouse; the report is the one of 2026-11-25, run at 00:10
 * the next day, after the rates job stored both days.
 *
 * 2026-11-25  o1 alipay 10:00 succeeded 1000
 *             o2 alipay 10:10 #1 failed network_error, 10:11 #2 succeeded 2000
 *             o3 wechat_pay 11:00 failed insufficient_funds   o4 wechat_pay 12:00 timeout (code timeout)
 *             o5 card 13:00 failed network_error              o6 card 14:00 succeeded 6000, refunded 6000 at 15:00
 *             o7 alipay 23:59:59 succeeded 700
 *   attempts 8: succeeded 4, failed 3, timeout 1, retries 1; orders 7, paid 4 (9,700), refunded 1 (6,000)
 * 2026-11-24  p1 alipay succeeded, p2 alipay failed network_error, p3 and p4 card succeeded; 1000 each
 *   attempts 4: succeeded 3, failed 1; orders 4, paid 3 (3,000)
 * 2026-11-26  n1 alipay 00:00:00 succeeded: the next day, not in the report.
 * Cases opened on the 25th: card_testing twice (one acknowledged since), duplicate_charge once
 * (resolved since); a card_testing case of the 24th does not count.
 */
const at = (d: number, hh: number, mm: number, ss = 0) => Date.UTC(2026, 10, d, hh, mm, ss);
const NOW = new Date(at(26, 0, 10));

let seq = 0;
function ev(order: string, atMs: number, status: string, channel: string, amount: number, patch: Partial<EventRow> = {}): EventRow {
  seq++;
  return eventRow(atMs, { event_id: `e${seq}`, order_id: order, status, channel, amount_minor: amount, ...patch });
}

const fixture: EventRow[] = [
  ev('o1', at(25, 10, 0), 'succeeded', 'alipay', 1000),
  ev('o2', at(25, 10, 10), 'failed', 'alipay', 2000, { failure_code: 'network_error' }),
  ev('o2', at(25, 10, 11), 'succeeded', 'alipay', 2000, { attempt: 2 }),
  ev('o3', at(25, 11, 0), 'failed', 'wechat_pay', 3000, { failure_code: 'insufficient_funds' }),
  ev('o4', at(25, 12, 0), 'timeout', 'wechat_pay', 4000, { failure_code: 'timeout' }),
  ev('o5', at(25, 13, 0), 'failed', 'card', 5000, { failure_code: 'network_error' }),
  ev('o6', at(25, 14, 0), 'succeeded', 'card', 6000),
  ev('o6', at(25, 15, 0), 'succeeded', 'card', 6000, { type: 'refund' }),
  ev('o7', at(25, 23, 59, 59), 'succeeded', 'alipay', 700),
  ev('p1', at(24, 9, 0), 'succeeded', 'alipay', 1000),
  ev('p2', at(24, 9, 30), 'failed', 'alipay', 1000, { failure_code: 'network_error' }),
  ev('p3', at(24, 10, 0), 'succeeded', 'card', 1000),
  ev('p4', at(24, 10, 30), 'succeeded', 'card', 1000),
  ev('n1', at(26, 0, 0), 'succeeded', 'alipay', 1000),
];

function caseVersion(id: string, version: number, rule: string, severity: string, openedAt: number, status: string, hits: number) {
  return {
    case_id: id,
    version,
    rule_id: rule,
    rule_version: '1',
    title: rule,
    severity,
    action: 'review',
    entity_type: rule === 'duplicate_charge' ? 'order' : 'ip',
    entity_id: id,
    status,
    opened_at: toDateTimeText(openedAt),
    updated_at: toDateTimeText(openedAt + version * 60_000),
    hit_count: hits,
    evidence: '{}',
    recommended_action: 'look',
    changed_by: version === 1 ? 'detection' : 'support',
    note: '',
  };
}
const cases = [
  caseVersion('C1', 1, 'card_testing', 'high', at(25, 10, 0), 'open', 1),
  caseVersion('C1', 2, 'card_testing', 'high', at(25, 10, 0), 'acknowledged', 1),
  caseVersion('C2', 1, 'card_testing', 'high', at(25, 11, 0), 'open', 3),
  caseVersion('C3', 1, 'duplicate_charge', 'medium', at(25, 20, 0), 'open', 1),
  caseVersion('C3', 2, 'duplicate_charge', 'medium', at(25, 20, 0), 'resolved', 1),
  caseVersion('C0', 1, 'card_testing', 'high', at(24, 10, 0), 'open', 1),
];

function policyRow(channel: string, code: string, action: string, maxAttempts: number, peakHours: number[]) {
  return {
    channel,
    failure_code: code,
    version: 1,
    run_id: 'run-1',
    computed_at: toDateTimeText(at(25, 23, 7)),
    window_from: toDateTimeText(at(11, 23, 0)),
    window_to: toDateTimeText(at(25, 23, 0)),
    action,
    retry: action === 'retry' ? 1 : 0,
    max_attempts: maxAttempts,
    backoff_seconds: 30,
    peak_hours: peakHours,
    peak_max_attempts: Math.max(1, maxAttempts - 1),
    peak_backoff_seconds: 60,
    change: 'new',
    reason: 'test',
  };
}

const s = services();
const deps = { clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, logger: silentLogger };
let reportsDir = '';

beforeAll(async () => {
  reportsDir = await mkdtemp(join(tmpdir(), 'paysentinel-reports-'));
  await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
  const db = s.config.clickhouseDatabase;
  await insertRows(s.clickhouse, ident(db, 'payment_events').text, fixture);
  await insertRows(s.clickhouse, ident(db, 'case_versions').text, cases);
  await insertRows(s.clickhouse, ident(db, 'retry_policy').text, [
    policyRow('alipay', 'network_error', 'retry', 3, [20, 21]),
    policyRow('card', 'insufficient_funds', 'no_retry', 1, []),
  ]);
  // The report reads what the rates job stored, as in production.
  const rates = await runRates(deps, NOW, { from: new Date(at(24, 0, 0)) });
  expect(rates.status).toBe('ok');
});

afterAll(async () => {
  await command(s.clickhouse, `DROP DATABASE IF EXISTS ${ident(s.config.clickhouseDatabase)}`);
  await s.clickhouse.close();
  await rm(reportsDir, { recursive: true, force: true });
});

describe('daily report on the real ClickHouse', () => {
  test('the scheduled run at 00:10 reports the day before against the day before that, in a file', async () => {
    const result = await runReport({ ...deps, reportsDir }, NOW);
    expect(result).toMatchObject({ status: 'ok', rows: 1, from: new Date(at(25, 0, 0)), to: new Date(at(26, 0, 0)) });
    expect(result.path).toBe(join(reportsDir, 'daily-report-2026-11-25.md'));
    const md = await readFile(result.path, 'utf8');
    expect(md).toBe(result.markdown);
    expect((await recentRuns(deps, 'daily-report', 1))[0]).toMatchObject({
      status: 'ok',
      window_from: '2026-11-25 00:00:00',
      window_to: '2026-11-26 00:00:00',
    });

    expect(md).toMatch(/^# Payments report 2026-11-25 \(UTC\)\n/);
    expect(md).toContain('compared with 2026-11-24');
    // Volumes
    expect(md).toContain('| volume | 2026-11-25 | 2026-11-24 | change |');
    expect(md).toContain('| payment attempts | 8 | 4 | +4 (+100.0%) |');
    expect(md).toContain('| succeeded | 4 | 3 | +1 (+33.3%) |');
    expect(md).toContain('| failed | 3 | 1 | +2 (+200.0%) |');
    expect(md).toContain('| timed out | 1 | 0 | +1 (new) |');
    expect(md).toContain('| still processing | 0 | 0 | 0 |');
    expect(md).toContain('| orders | 7 | 4 | +3 (+75.0%) |');
    expect(md).toContain('| paid amount (minor units, all currencies) | 9,700 | 3,000 | +6,700 (+223.3%) |');
    expect(md).toContain('| refunded amount (minor units) | 6,000 | 0 | +6,000 (new) |');
    // Rates and their change in percentage points
    expect(md).toContain('| success rate | 50.0% (4/8) | 75.0% (3/4) | -25.0 pp |');
    expect(md).toContain('| failure rate | 37.5% (3/8) | 25.0% (1/4) | +12.5 pp |');
    expect(md).toContain('| timeout rate | 12.5% (1/8) | 0.0% (0/4) | +12.5 pp |');
    expect(md).toContain('| retry rate | 12.5% (1/8) | 0.0% (0/4) | +12.5 pp |');
    expect(md).toContain('| orders needing a retry | 14.3% (1/7) | 0.0% (0/4) | +14.3 pp |');
    expect(md).toContain('| recovered by retry | 25.0% (1/4) | 0.0% (0/1) | +25.0 pp |');
    expect(md).toContain('| refund rate | 25.0% (1/4) | 0.0% (0/3) | +25.0 pp |');
    expect(md).toContain('| refund rate by amount | 61.9% (6,000/9,700) | 0.0% (0/3,000) | +61.9 pp |');
    // By channel, most attempts first
    const channels = md.split('### By channel')[1]!.split('##')[0]!.trim().split('\n').slice(2);
    expect(channels).toEqual([
      '| alipay | 4 | +2 (+100.0%) | 75.0% | 25.0% | 0.0% | -25.0 pp |',
      '| card | 2 | 0 | 50.0% | 50.0% | 0.0% | +50.0 pp |',
      '| wechat_pay | 2 | +2 (new) | 0.0% | 50.0% | 50.0% | n/a |',
    ]);
    // Top failure codes
    const codes = md.split('## Top failure codes')[1]!.split('##')[0]!.trim().split('\n').slice(2);
    expect(codes).toEqual([
      '| network_error | 2 | 50.0% | 1 | +1 (+100.0%) |',
      '| insufficient_funds | 1 | 25.0% | 0 | +1 (new) |',
      '| timeout | 1 | 25.0% | 0 | +1 (new) |',
    ]);
    // Cases opened by rule, with their status now
    expect(md).toContain('3 cases opened; status as of the report.');
    expect(md).toContain('| card_testing | high | 2 | 1 | 1 | 0 | 4 |');
    expect(md).toContain('| duplicate_charge | medium | 1 | 0 | 0 | 1 | 1 |');
    // The retry policy in force
    expect(md).toContain('| alipay | network_error | retry | 3 | 30 s | 20, 21 | max 2, 60 s | new |');
    expect(md).toContain('| card | insufficient_funds | no retry | 1 | 30 s | - | - | new |');
  });

  test('paysentinel analytics run daily-report --from prints the report and writes it to REPORTS_DIR', async () => {
    const out = spawnSync(process.execPath, ['bin/paysentinel.mjs', 'analytics', 'run', 'daily-report', '--from', '2026-11-25'], {
      cwd: repoRoot,
      env: { ...process.env, ...s.env, REPORTS_DIR: reportsDir },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toContain('# Payments report 2026-11-25 (UTC)');
    expect(out.stdout).toContain('| payment attempts | 8 | 4 | +4 (+100.0%) |');
    expect(out.stdout).toContain(`(written to ${join(reportsDir, 'daily-report-2026-11-25.md')})`);

    const bad = spawnSync(
      process.execPath,
      ['bin/paysentinel.mjs', 'analytics', 'run', 'daily-report', '--from', '2026-11-25T10:00:00Z', '--to', '2026-11-25T10:30:00Z'],
      {
        cwd: repoRoot,
        env: { ...process.env, ...s.env, REPORTS_DIR: reportsDir },
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/at least one whole hour/);
  });
});
