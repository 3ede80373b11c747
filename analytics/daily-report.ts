import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { queryRows } from '../storage/clickhouse.ts';
import { ident, sql } from '../storage/sql.ts';
import { runJob, type AnalyticsDeps, type JobRun, type ManualRun, type ScheduledJob } from './jobs.ts';
import { countColumns, hourSumsQuery, rateColumns, type Dimension } from './queries.ts';
import { readPolicy, type PolicyEntry } from './retry-policy.ts';

/**
 * The `daily-report` job: a Markdown report of one UTC day (by default the day before `now`) next
 * to the day before it: volumes, the rates of analytics/DEFINITIONS.md and their change, the top
 * failure codes, the cases detection opened by rule, and the retry policy in force. Numbers come
 * from the hour buckets the `rates` job stored (the same numbers as the dashboards), cases from
 * the case store, the policy from retry_policy. Written to REPORTS_DIR; the CLI also prints it.
 */

export const DAILY_REPORT_JOB = 'daily-report';
export const DEFAULT_REPORTS_DIR = 'reports';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

type CountColumn = (typeof countColumns)[number];
type RateColumn = keyof typeof rateColumns;
/** Summed counts and recomputed rates of one period and dimension value. */
export type PeriodRow = { value: string } & Record<CountColumn, number> & Record<RateColumn, number>;

/** Cases opened in the period, per rule, with their status now. */
export interface RuleCases {
  ruleId: string;
  severity: string;
  opened: number;
  open: number;
  acknowledged: number;
  resolved: number;
  hits: number;
}

export interface DailyReportData {
  period: { from: Date; to: Date };
  previous: { from: Date; to: Date };
  generatedAt: Date;
  /** The whole period (value ''); zero counts when nothing was stored. */
  total: { current: PeriodRow; previous: PeriodRow };
  channels: { current: PeriodRow[]; previous: PeriodRow[] };
  failureCodes: { current: PeriodRow[]; previous: PeriodRow[] };
  cases: RuleCases[];
  policy: PolicyEntry[];
}

/** Cases whose first version is in [from, to), by rule, with their current status. */
export function casesOpenedByRuleQuery(database: string, fromMs: number, toMs: number): string {
  // Inner aliases differ from the view's column names (18.16 resolves aliases query-wide).
  return sql`SELECT c_rule AS rule, any(c_severity) AS rule_severity, count() AS opened,
  countIf(c_status = 'open') AS now_open, countIf(c_status = 'acknowledged') AS now_acknowledged, countIf(c_status = 'resolved') AS now_resolved,
  sum(c_hits) AS hits
FROM (
  SELECT rule_id AS c_rule, severity AS c_severity, status AS c_status, opened_at AS c_opened, hit_count AS c_hits FROM ${ident(database, 'cases')}
) AS c
WHERE c_opened >= toDateTime(${Math.floor(fromMs / 1000)}, 'UTC') AND c_opened < toDateTime(${Math.floor(toMs / 1000)}, 'UTC')
GROUP BY rule
ORDER BY opened DESC, rule`;
}

type Row = Record<string, unknown>;

const emptyRow = (value = ''): PeriodRow => {
  const out: Record<string, unknown> = { value };
  for (const c of countColumns) out[c] = 0;
  for (const c of Object.keys(rateColumns)) out[c] = 0;
  return out as PeriodRow;
};

function toPeriodRow(r: Row): PeriodRow {
  const out: Record<string, unknown> = { value: String(r.h_value) };
  for (const c of countColumns) out[c] = Number(r[`s_${c}`]);
  for (const c of Object.keys(rateColumns)) out[c] = Number(r[`r_${c}`]);
  return out as PeriodRow;
}

async function sums(deps: Pick<AnalyticsDeps, 'clickhouse' | 'database'>, period: { from: Date; to: Date }, dimension: Dimension): Promise<PeriodRow[]> {
  const q = hourSumsQuery(deps.database, { fromMs: period.from.getTime(), toMs: period.to.getTime(), dimension });
  return (await queryRows<Row>(deps.clickhouse, q, `read stored ${dimension} rates`)).map(toPeriodRow);
}

/**
 * The report's period: [from, to) rounded to whole hours (the stored buckets), by default the UTC
 * day before `now`; `from` alone means the 24 hours from it. The previous period is as long and
 * ends where this one starts.
 */
export function reportPeriod(now: Date, from?: Date, to?: Date): { from: Date; to: Date; previous: { from: Date; to: Date } } {
  const floorHour = (ms: number) => Math.floor(ms / HOUR_MS) * HOUR_MS;
  let toMs: number;
  let fromMs: number;
  if (from) {
    fromMs = floorHour(from.getTime());
    toMs = to ? floorHour(to.getTime()) : fromMs + DAY_MS;
  } else {
    toMs = to ? floorHour(to.getTime()) : Math.floor(now.getTime() / DAY_MS) * DAY_MS;
    fromMs = toMs - DAY_MS;
  }
  if (fromMs >= toMs)
    throw new RangeError(`The report period must cover at least one whole hour: ${new Date(fromMs).toISOString()} .. ${new Date(toMs).toISOString()}`);
  const length = toMs - fromMs;
  return { from: new Date(fromMs), to: new Date(toMs), previous: { from: new Date(fromMs - length), to: new Date(fromMs) } };
}

/** Reads everything the report shows, in ClickHouse. */
export async function collectDailyReport(
  deps: Pick<AnalyticsDeps, 'clickhouse' | 'database'>,
  period: { from: Date; to: Date; previous: { from: Date; to: Date } },
  generatedAt: Date,
): Promise<DailyReportData> {
  const [allNow, allPrev, chNow, chPrev, codeNow, codePrev, caseRows, policy] = await Promise.all([
    sums(deps, period, 'all'),
    sums(deps, period.previous, 'all'),
    sums(deps, period, 'channel'),
    sums(deps, period.previous, 'channel'),
    sums(deps, period, 'failure_code'),
    sums(deps, period.previous, 'failure_code'),
    queryRows<Row>(deps.clickhouse, casesOpenedByRuleQuery(deps.database, period.from.getTime(), period.to.getTime()), 'read cases opened by rule'),
    readPolicy(deps),
  ]);
  return {
    period: { from: period.from, to: period.to },
    previous: period.previous,
    generatedAt,
    total: { current: allNow[0] ?? emptyRow(), previous: allPrev[0] ?? emptyRow() },
    channels: { current: chNow, previous: chPrev },
    failureCodes: { current: codeNow, previous: codePrev },
    cases: caseRows.map((r) => ({
      ruleId: String(r.rule),
      severity: String(r.rule_severity),
      opened: Number(r.opened),
      open: Number(r.now_open),
      acknowledged: Number(r.now_acknowledged),
      resolved: Number(r.now_resolved),
      hits: Number(r.hits),
    })),
    policy,
  };
}

const int = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const utc = (d: Date) => d.toISOString().slice(0, 16).replace('T', ' ');
const isDay = (p: { from: Date; to: Date }) => p.from.getTime() % DAY_MS === 0 && p.to.getTime() - p.from.getTime() === DAY_MS;
const label = (p: { from: Date; to: Date }) => (isDay(p) ? p.from.toISOString().slice(0, 10) : `${utc(p.from)} .. ${utc(p.to)}`);

/** "+5 (+125.0%)", "-2 (-50.0%)", "0", "+3 (new)". */
export function countChange(now: number, before: number): string {
  const d = now - before;
  if (d === 0) return '0';
  const sign = d > 0 ? '+' : '-';
  const rel = before === 0 ? 'new' : `${sign}${((Math.abs(d) / before) * 100).toFixed(1)}%`;
  return `${sign}${int(Math.abs(d))} (${rel})`;
}

/** Change of a rate in percentage points: "+5.6 pp", "-1.0 pp", "0.0 pp". */
export function rateChange(now: number, before: number): string {
  const d = Math.round((now - before) * 1000) / 10;
  return d === 0 ? '0.0 pp' : `${d > 0 ? '+' : '-'}${Math.abs(d).toFixed(1)} pp`;
}

const table = (head: string[], rows: string[][], alignRight: boolean[]): string =>
  [`| ${head.join(' | ')} |`, `|${alignRight.map((r) => (r ? '---:' : '---')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');

const rateLines: { title: string; rate: RateColumn }[] = [
  { title: 'success rate', rate: 'success_rate' },
  { title: 'failure rate', rate: 'failure_rate' },
  { title: 'timeout rate', rate: 'timeout_rate' },
  { title: 'retry rate', rate: 'retry_rate' },
  { title: 'orders needing a retry', rate: 'orders_needing_retry_rate' },
  { title: 'recovered by retry', rate: 'recovered_by_retry_rate' },
  { title: 'refund rate', rate: 'refund_rate' },
  { title: 'refund rate by amount', rate: 'refund_amount_rate' },
];

/** The report as Markdown. */
export function formatDailyReport(d: DailyReportData): string {
  const cur = label(d.period);
  const prev = label(d.previous);
  const now = d.total.current;
  const before = d.total.previous;
  const out: string[] = [];
  out.push(`# Payments report ${cur}${isDay(d.period) ? ' (UTC)' : ' UTC'}`);
  out.push('');
  out.push(
    `Period ${utc(d.period.from)} .. ${utc(d.period.to)} UTC, compared with ${prev}. Generated ${utc(d.generatedAt)} UTC from the hour buckets the ` +
      '`rates` job stored. Attempts and orders count in the period of their first event; an outcome is the latest status (analytics/DEFINITIONS.md).',
  );

  out.push('', '## Volumes', '');
  const volume: [string, CountColumn][] = [
    ['payment attempts', 'attempts'],
    ['succeeded', 'succeeded'],
    ['failed', 'failed'],
    ['timed out', 'timeout'],
    ['still processing', 'processing'],
    ['retries (attempts numbered 2+)', 'retry_attempts'],
    ['orders', 'orders'],
    ['orders paid', 'orders_paid'],
    ['orders refunded', 'orders_refunded'],
    ['paid amount (minor units, all currencies)', 'paid_amount_minor'],
    ['refunded amount (minor units)', 'refunded_amount_minor'],
  ];
  out.push(
    table(
      ['volume', cur, prev, 'change'],
      volume.map(([t, c]) => [t, int(now[c]), int(before[c]), countChange(now[c], before[c])]),
      [false, true, true, true],
    ),
  );
  if (now.attempts === 0)
    out.push('', `No payment attempts are stored for ${cur}: check that the \`rates\` job ran (\`paysentinel analytics run rates --from ... --to ...\`).`);

  out.push('', '## Rates', '');
  // A rate over nothing (no attempts that day) is not 0%: it is shown as "no data", and no change is computed against it.
  const fraction = (r: PeriodRow, rate: RateColumn) => {
    const [num, den] = rateColumns[rate];
    return r[den] === 0 ? 'no data' : `${pct(r[rate])} (${int(r[num])}/${int(r[den])})`;
  };
  const change = (rate: RateColumn) => {
    const den = rateColumns[rate][1];
    return now[den] === 0 || before[den] === 0 ? 'n/a' : rateChange(now[rate], before[rate]);
  };
  out.push(
    table(
      ['rate', cur, prev, 'change'],
      rateLines.map((l) => [l.title, fraction(now, l.rate), fraction(before, l.rate), change(l.rate)]),
      [false, true, true, true],
    ),
  );

  out.push('', '### By channel', '');
  const prevChannels = new Map(d.channels.previous.map((r) => [r.value, r]));
  const channels = [...d.channels.current].sort((a, b) => b.attempts - a.attempts || a.value.localeCompare(b.value));
  if (channels.length === 0) out.push('No attempts.');
  else {
    out.push(
      table(
        ['channel', 'attempts', 'change', 'success rate', 'failure rate', 'timeout rate', 'failure rate change'],
        channels.map((r) => {
          const p = prevChannels.get(r.value) ?? emptyRow(r.value);
          return [
            r.value,
            int(r.attempts),
            countChange(r.attempts, p.attempts),
            pct(r.success_rate),
            pct(r.failure_rate),
            pct(r.timeout_rate),
            p.attempts === 0 ? 'n/a' : rateChange(r.failure_rate, p.failure_rate),
          ];
        }),
        [false, true, true, true, true, true, true],
      ),
    );
  }

  out.push('', '## Top failure codes', '');
  const prevCodes = new Map(d.failureCodes.previous.map((r) => [r.value, r]));
  const unsuccessful = now.failed + now.timeout;
  const codes = d.failureCodes.current
    .filter((r) => r.value !== '' && r.failed + r.timeout > 0)
    .sort((a, b) => b.failed + b.timeout - (a.failed + a.timeout) || a.value.localeCompare(b.value))
    .slice(0, 10);
  if (codes.length === 0) out.push('No failed or timed-out attempts.');
  else {
    out.push(
      table(
        ['failure code', 'attempts', 'share of failed + timed out', prev, 'change'],
        codes.map((r) => {
          const n = r.failed + r.timeout;
          const p = prevCodes.get(r.value);
          const pn = p ? p.failed + p.timeout : 0;
          return [r.value, int(n), pct(unsuccessful === 0 ? 0 : n / unsuccessful), int(pn), countChange(n, pn)];
        }),
        [false, true, true, true, true],
      ),
    );
  }

  out.push('', '## Cases opened by rule', '');
  if (d.cases.length === 0) out.push('No cases were opened.');
  else {
    const total = d.cases.reduce((s, c) => s + c.opened, 0);
    out.push(`${int(total)} case${total === 1 ? '' : 's'} opened; status as of the report.`, '');
    out.push(
      table(
        ['rule', 'severity', 'opened', 'open', 'acknowledged', 'resolved', 'hits'],
        d.cases.map((c) => [c.ruleId, c.severity, int(c.opened), int(c.open), int(c.acknowledged), int(c.resolved), int(c.hits)]),
        [false, false, true, true, true, true, true],
      ),
    );
  }

  out.push('', '## Retry policy in force', '');
  if (d.policy.length === 0) out.push('No retry policy yet (the `retry-policy` job has not run).');
  else {
    const head = d.policy[0]!;
    out.push(
      `Run of ${head.computedAt ? utc(head.computedAt) : '?'} UTC, evidence ` +
        `${head.window ? `${utc(head.window.from)} .. ${utc(head.window.to)}` : '?'} UTC. Details: \`paysentinel ` +
        `policy show\`.`,
      '',
    );
    out.push(
      table(
        ['channel', 'failure code', 'action', 'max attempts', 'backoff', 'peak hours (UTC)', 'at peak', 'change'],
        d.policy.map((e) => [
          e.channel,
          e.failureCode,
          e.action.replace('_', ' '),
          String(e.maxAttempts),
          `${e.backoffSeconds} s`,
          e.peakHours.length === 0 ? '-' : e.peakHours.join(', '),
          e.peakHours.length === 0 ? '-' : `max ${e.peakMaxAttempts}, ${e.peakBackoffSeconds} s`,
          e.change,
        ]),
        [false, false, false, true, true, false, false, false],
      ),
    );
  }
  return out.join('\n') + '\n';
}

/** daily-report-2026-11-25.md for a UTC day, else report-<from>_<to>.md. */
export function reportFileName(period: { from: Date; to: Date }): string {
  if (isDay(period)) return `daily-report-${period.from.toISOString().slice(0, 10)}.md`;
  const t = (d: Date) => d.toISOString().slice(0, 13).replace(/[-:]/g, '');
  return `report-${t(period.from)}_${t(period.to)}.md`;
}

export interface DailyReportRunOptions {
  from?: Date;
  to?: Date;
}

export interface DailyReportRun extends JobRun {
  /** Where the report was written. */
  path: string;
  markdown: string;
}

/**
 * Builds the report of the period and writes it to `<reportsDir>/<reportFileName>` (replacing an
 * earlier one of the same period, written to a temporary file first so a reader never sees half of
 * it). Recorded in job_runs; the row count is 1.
 */
export async function run(deps: AnalyticsDeps, now: Date, options: DailyReportRunOptions = {}): Promise<DailyReportRun> {
  const period = reportPeriod(now, options.from, options.to);
  const dir = resolve(deps.reportsDir ?? DEFAULT_REPORTS_DIR);
  let path = '';
  let markdown = '';
  const result = await runJob(deps, DAILY_REPORT_JOB, period, async () => {
    const data = await collectDailyReport(deps, period, new Date());
    markdown = formatDailyReport(data);
    await mkdir(dir, { recursive: true });
    path = join(dir, reportFileName(period));
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, markdown, 'utf8');
    await rename(tmp, path);
    return 1;
  });
  return { ...result, path, markdown };
}

/** The schedule entry: every day at 00:10 UTC, the report of the day that just ended. */
export const dailyReportScheduledJob: ScheduledJob = {
  name: DAILY_REPORT_JOB,
  cron: '10 0 * * *',
  run: (deps, now) => run(deps, now),
  byHand: {
    window: true,
    run: (deps, now, window) => run(deps, now, window),
    text: (r) => `${r.markdown}\n(written to ${r.path})`,
    json: (r) => ({ ...r, markdown: undefined }),
  } satisfies ManualRun<DailyReportRun>,
};
