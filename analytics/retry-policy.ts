import { probit } from 'simple-statistics';
import { insertRows, queryRows } from '../storage/clickhouse.ts';
import { ident, toDateTimeText } from '../storage/sql.ts';
import { runJob, type AnalyticsDeps, type JobRun, type ScheduledJob } from './jobs.ts';
import { channelHoursQuery, latestPolicyQuery, policyRowsQuery, previousPolicyQuery, retryDelaysQuery, retryTransitionsQuery } from './retry-policy-queries.ts';

export const RETRY_POLICY_JOB = 'retry-policy';

/** Codes that are never retried automatically, whatever the data says (not transient). */
export const NEVER_RETRY: Readonly<Record<string, 'no_retry' | 'manual_review'>> = {
  insufficient_funds: 'no_retry',
  invalid_account: 'no_retry',
  user_cancelled: 'no_retry',
  risk_blocked: 'manual_review',
};

export type PolicyAction = 'retry' | 'no_retry' | 'manual_review';

/** The tuning knobs; DEFAULT_POLICY_OPTIONS documents each default. */
export interface PolicyOptions {
  /** History the evidence is read from, ending at the start of the current hour. */
  lookbackMs: number;
  /** Retried failures needed at attempt k before the decision for k may change. */
  minSample: number;
  /** A retry is worth it when P(attempt k+1 succeeds | attempt k failed) is at least this. */
  minSuccessProbability: number;
  /** Upper bound on max_attempts (the first attempt included). */
  maxAttemptsCap: number;
  /** Confidence of the Wilson intervals. */
  confidence: number;
  /** An hour becomes a peak hour when its failure rate's Wilson lower bound exceeds factor x the channel's mean. */
  peakEnterFactor: number;
  /** A peak hour stays one while its failure rate is above factor x the channel's mean. */
  peakExitFactor: number;
  /** Attempts an hour of day needs before it can become a peak hour. */
  minHourSample: number;
  /** Backoff when no retry has succeeded yet (nothing to measure). */
  defaultBackoffSeconds: number;
}

export const DEFAULT_POLICY_OPTIONS: Readonly<PolicyOptions> = Object.freeze({
  lookbackMs: 14 * 86_400_000,
  minSample: 30,
  minSuccessProbability: 0.1,
  maxAttemptsCap: 4,
  confidence: 0.95,
  peakEnterFactor: 1.5,
  peakExitFactor: 1.2,
  minHourSample: 30,
  defaultBackoffSeconds: 30,
});

// Two-sided normal quantiles of the usual confidences, exact: simple-statistics' probit is an
// approximation (1.9572 for 95%) and only serves the others.
const Z: Readonly<Record<number, number>> = { 0.9: 1.6448536269514722, 0.95: 1.959963984540054, 0.99: 2.5758293035489004 };

/** Wilson score interval of `successes` out of `n` (both bounds 0 when n is 0). */
export function wilson(successes: number, n: number, confidence = 0.95): { p: number; low: number; high: number } {
  if (n <= 0) return { p: 0, low: 0, high: 0 };
  const z = Z[confidence] ?? probit(1 - (1 - confidence) / 2);
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return { p, low: Math.max(0, center - half), high: Math.min(1, center + half) };
}

/** Evidence of one step: attempt k failed with the code; was attempt k+1 made, did it succeed. */
export interface StepEvidence {
  k: number;
  /** Attempts k that failed with the code. */
  failures: number;
  /** ... of which attempt k+1 was made. */
  retried: number;
  /** ... of which attempt k+1 succeeded. */
  succeeded: number;
}

/** One policy entry, as stored in retry_policy and published to Kafka. */
export interface PolicyEntry {
  channel: string;
  failureCode: string;
  action: PolicyAction;
  retry: boolean;
  /** Attempts in total, the first included (1 = no retry). */
  maxAttempts: number;
  backoffSeconds: number;
  /** Hours of day (UTC) where the channel's failure rate is systemically elevated. */
  peakHours: number[];
  /** max_attempts during peak hours. */
  peakMaxAttempts: number;
  peakBackoffSeconds: number;
  evidence: {
    /** Failed attempts with this code (any k) in the window. */
    failures: number;
    steps: { k: number; retried: number; succeeded: number; p: number; ciLow: number; ciHigh: number }[];
    succeededRetries: number;
    medianDelaySeconds: number;
    channelFailureRate: number;
    peakFailureRates: number[];
  };
  change: 'new' | 'changed' | 'unchanged';
  previous: { action: string; maxAttempts: number; peakMaxAttempts: number } | null;
  reason: string;
  version?: number;
  runId?: string;
  computedAt?: Date;
  window?: { from: Date; to: Date };
}

export interface ChannelHour {
  hour: number;
  attempts: number;
  unsuccessful: number;
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

/**
 * The peak hours of one channel: hours whose failure (failed or timeout) rate is systemically
 * above the channel's mean over the window. Hysteresis: an hour enters when the lower bound of its
 * rate exceeds peakEnterFactor x mean, and a previous peak hour stays while its rate is above
 * peakExitFactor x mean.
 */
export function peakHours(
  hours: readonly ChannelHour[],
  previousPeak: readonly number[],
  options: PolicyOptions = DEFAULT_POLICY_OPTIONS,
): { hours: number[]; rates: number[]; mean: number } {
  const total = hours.reduce((a, h) => a + h.attempts, 0);
  const mean = total === 0 ? 0 : hours.reduce((a, h) => a + h.unsuccessful, 0) / total;
  const out: { hour: number; rate: number }[] = [];
  for (const h of hours) {
    if (h.attempts < options.minHourSample || mean === 0) continue;
    const w = wilson(h.unsuccessful, h.attempts, options.confidence);
    const stays = previousPeak.includes(h.hour) && w.p > options.peakExitFactor * mean;
    if (w.low > options.peakEnterFactor * mean || stays) out.push({ hour: h.hour, rate: w.p });
  }
  out.sort((a, b) => a.hour - b.hour);
  return { hours: out.map((o) => o.hour), rates: out.map((o) => o.rate), mean };
}

export interface DecideInput {
  channel: string;
  failureCode: string;
  steps: readonly StepEvidence[];
  succeededRetries: number;
  medianDelaySeconds: number;
  peak: { hours: number[]; rates: number[]; mean: number };
  previous: PolicyEntry | null;
}

/**
 * The decision for one (channel, failure code), a pure function of the evidence and the previous
 * entry. Per step k the retry is worth it when the Wilson interval of P(k+1 succeeds | k failed)
 * lies above minSuccessProbability, not when it lies below; when the interval straddles it (or
 * there are fewer than minSample retried failures) the previous decision stands, so the policy
 * does not flap. max_attempts = 1 + the leading steps worth retrying.
 */
export function decide(input: DecideInput, options: PolicyOptions = DEFAULT_POLICY_OPTIONS): PolicyEntry {
  const { channel, failureCode: code, previous } = input;
  const steps = [...input.steps]
    .sort((a, b) => a.k - b.k)
    .filter((s) => s.retried > 0)
    .map((s) => {
      const w = wilson(s.succeeded, s.retried, options.confidence);
      return { k: s.k, retried: s.retried, succeeded: s.succeeded, p: w.p, ciLow: w.low, ciHigh: w.high };
    });
  const failures = input.steps.reduce((a, s) => a + s.failures, 0);
  const backoff = input.succeededRetries > 0 ? Math.max(1, Math.round(input.medianDelaySeconds)) : (previous?.backoffSeconds ?? options.defaultBackoffSeconds);
  const evidence = {
    failures,
    steps,
    succeededRetries: input.succeededRetries,
    medianDelaySeconds: input.medianDelaySeconds,
    channelFailureRate: input.peak.mean,
    peakFailureRates: input.peak.rates,
  };
  const prevMax = previous?.maxAttempts ?? null;
  const first = steps.find((s) => s.k === 1);
  const firstText = first
    ? `a retry after a first failure succeeded ${first.succeeded} of ${first.retried} times (${pct(first.p)}, 95% CI ${pct(first.ciLow)}-${pct(first.ciHigh)})`
    : 'no retries seen';

  let action: PolicyAction;
  let maxAttempts = 1;
  let reason: string;
  const forced = NEVER_RETRY[code];
  if (forced) {
    action = forced;
    reason =
      forced === 'manual_review'
        ? `${code} on ${channel}: blocked by risk, never retried automatically; send to manual review (${firstText}).`
        : `${code} on ${channel}: not transient, never retried automatically (${firstText}).`;
  } else {
    const notes: string[] = [];
    for (let k = 1; k < options.maxAttemptsCap; k++) {
      const s = steps.find((x) => x.k === k);
      const prevRetried = prevMax !== null && prevMax > k;
      let yes: boolean;
      if (!s || s.retried < options.minSample) {
        yes = prevRetried;
        if (k === 1 || prevRetried)
          notes.push(
            `after attempt ${k} only ${s?.retried ?? 0} retried failures (${options.minSample} needed): ` +
              `${prevRetried ? 'previous decision kept' : 'no retry until there is evidence'}`,
          );
      } else if (s.ciLow >= options.minSuccessProbability) {
        yes = true;
      } else if (s.ciHigh < options.minSuccessProbability) {
        yes = false;
      } else {
        yes = prevMax === null ? s.p >= options.minSuccessProbability : prevRetried;
        if (prevMax !== null)
          notes.push(
            `after attempt ${k} the evidence is inconclusive (${pct(s.ciLow)}-${pct(s.ciHigh)} around ${pct(options.minSuccessProbability)}): previous ` +
              `decision kept`,
          );
      }
      if (!yes) break;
      maxAttempts = k + 1;
    }
    action = maxAttempts > 1 ? 'retry' : 'no_retry';
    const threshold = pct(options.minSuccessProbability);
    if (action === 'retry') {
      reason = `${code} on ${channel}: ${firstText}, so retry up to ${maxAttempts} attempts, ${backoff} s apart`;
    } else if (first && first.retried >= options.minSample && first.ciHigh < options.minSuccessProbability) {
      reason = `${code} on ${channel}: ${firstText}, below ${threshold}: do not retry`;
    } else {
      reason = `${code} on ${channel}: ${firstText}: do not retry`;
    }
    if (notes.length > 0) reason += `; ${notes.join('; ')}`;
    reason += '.';
  }
  let peakMax = maxAttempts;
  let peakBackoff = backoff;
  if (action === 'retry' && input.peak.hours.length > 0) {
    peakMax = Math.max(1, maxAttempts - 1);
    peakBackoff = backoff * 2;
    const rates = input.peak.hours.map((h, i) => `${h}h ${pct(input.peak.rates[i] ?? 0)}`).join(', ');
    reason =
      reason.replace(/\.$/, '') +
      `; at peak hours (UTC ${rates} failing vs ${pct(input.peak.mean)} mean) only ${peakMax} attempt${peakMax === 1 ? '' : 's'}, ${peakBackoff} s apart.`;
  }
  const change: PolicyEntry['change'] =
    previous === null
      ? 'new'
      : previous.action !== action || previous.maxAttempts !== maxAttempts || previous.peakMaxAttempts !== peakMax
        ? 'changed'
        : 'unchanged';
  return {
    channel,
    failureCode: code,
    action,
    retry: action === 'retry',
    maxAttempts,
    backoffSeconds: backoff,
    peakHours: action === 'retry' ? input.peak.hours : [],
    peakMaxAttempts: peakMax,
    peakBackoffSeconds: peakBackoff,
    evidence,
    change,
    previous: previous ? { action: previous.action, maxAttempts: previous.maxAttempts, peakMaxAttempts: previous.peakMaxAttempts } : null,
    reason,
  };
}

/** Publishes the policy (e.g. to the compacted Kafka topic); see retry-policy-kafka.ts. */
export interface PolicyPublisher {
  publish(entries: readonly PolicyEntry[]): Promise<void>;
}

export interface RetryPolicyDeps extends AnalyticsDeps {
  /** Optional: without it the policy is only stored in ClickHouse. */
  publisher?: PolicyPublisher;
}

export interface RetryPolicyRunOptions {
  /** Evidence from here (default: lookbackMs before `to`). */
  from?: Date;
  /** Evidence up to here (default: the start of the current hour). */
  to?: Date;
  options?: Partial<PolicyOptions>;
}

type Row = Record<string, unknown>;
const num = (v: unknown) => Number(v ?? 0);
const nums = (v: unknown) => (Array.isArray(v) ? v.map(Number) : []);

function fromRow(r: Row): PolicyEntry {
  const ks = nums(r.ks);
  const retried = nums(r.retried);
  const succeeded = nums(r.retry_succeeded);
  const p = nums(r.p_success);
  const lo = nums(r.ci_low);
  const hi = nums(r.ci_high);
  const previousAction = String(r.previous_action ?? '');
  return {
    channel: String(r.channel),
    failureCode: String(r.failure_code),
    action: String(r.action) as PolicyAction,
    retry: num(r.retry) === 1,
    maxAttempts: num(r.max_attempts),
    backoffSeconds: num(r.backoff_seconds),
    peakHours: nums(r.peak_hours),
    peakMaxAttempts: num(r.peak_max_attempts),
    peakBackoffSeconds: num(r.peak_backoff_seconds),
    evidence: {
      failures: num(r.failures),
      steps: ks.map((k, i) => ({ k, retried: retried[i] ?? 0, succeeded: succeeded[i] ?? 0, p: p[i] ?? 0, ciLow: lo[i] ?? 0, ciHigh: hi[i] ?? 0 })),
      succeededRetries: num(r.succeeded_retries),
      medianDelaySeconds: num(r.median_delay_s),
      channelFailureRate: num(r.channel_failure_rate),
      peakFailureRates: nums(r.peak_failure_rates),
    },
    change: String(r.change) as PolicyEntry['change'],
    previous:
      previousAction === '' ? null : { action: previousAction, maxAttempts: num(r.previous_max_attempts), peakMaxAttempts: num(r.previous_peak_max_attempts) },
    reason: String(r.reason),
    version: num(r.version),
    runId: String(r.run_id),
    computedAt: new Date(num(r.computed_at_s) * 1000),
    window: { from: new Date(num(r.window_from_s) * 1000), to: new Date(num(r.window_to_s) * 1000) },
  };
}

function toRow(e: PolicyEntry, meta: { version: number; runId: string; computedAt: Date; from: Date; to: Date }) {
  return {
    channel: e.channel,
    failure_code: e.failureCode,
    version: meta.version,
    run_id: meta.runId,
    computed_at: toDateTimeText(meta.computedAt.getTime()),
    window_from: toDateTimeText(meta.from.getTime()),
    window_to: toDateTimeText(meta.to.getTime()),
    action: e.action,
    retry: e.retry ? 1 : 0,
    max_attempts: e.maxAttempts,
    backoff_seconds: e.backoffSeconds,
    peak_hours: e.peakHours,
    peak_max_attempts: e.peakMaxAttempts,
    peak_backoff_seconds: e.peakBackoffSeconds,
    failures: e.evidence.failures,
    ks: e.evidence.steps.map((s) => s.k),
    retried: e.evidence.steps.map((s) => s.retried),
    retry_succeeded: e.evidence.steps.map((s) => s.succeeded),
    p_success: e.evidence.steps.map((s) => s.p),
    ci_low: e.evidence.steps.map((s) => s.ciLow),
    ci_high: e.evidence.steps.map((s) => s.ciHigh),
    succeeded_retries: e.evidence.succeededRetries,
    median_delay_s: e.evidence.medianDelaySeconds,
    channel_failure_rate: e.evidence.channelFailureRate,
    peak_failure_rates: e.evidence.peakFailureRates,
    change: e.change,
    previous_action: e.previous?.action ?? '',
    previous_max_attempts: e.previous?.maxAttempts ?? 0,
    previous_peak_max_attempts: e.previous?.peakMaxAttempts ?? 0,
    reason: e.reason,
  };
}

/** The current policy: the entries of the latest run (empty before the first run). */
export async function readPolicy(deps: Pick<AnalyticsDeps, 'clickhouse' | 'database'>): Promise<PolicyEntry[]> {
  return (await queryRows<Row>(deps.clickhouse, latestPolicyQuery(deps.database), 'read retry policy')).map(fromRow);
}

/** The policy of the run before the latest one. */
export async function readPreviousPolicy(deps: Pick<AnalyticsDeps, 'clickhouse' | 'database'>): Promise<PolicyEntry[]> {
  return (await queryRows<Row>(deps.clickhouse, previousPolicyQuery(deps.database), 'read previous retry policy')).map(fromRow);
}

const key = (channel: string, code: string) => `${channel}:${code}`;

/** Computes the policy from history in [from, to) against the previous one, in ClickHouse then in memory. */
export async function tunePolicy(
  deps: Pick<AnalyticsDeps, 'clickhouse' | 'database'>,
  window: { from: Date; to: Date },
  previous: readonly PolicyEntry[],
  options: PolicyOptions = DEFAULT_POLICY_OPTIONS,
): Promise<PolicyEntry[]> {
  const [transitions, delays, hours] = await Promise.all([
    queryRows<Row>(deps.clickhouse, retryTransitionsQuery(deps.database, window), 'read retry transitions'),
    queryRows<Row>(deps.clickhouse, retryDelaysQuery(deps.database, window), 'read retry delays'),
    queryRows<Row>(deps.clickhouse, channelHoursQuery(deps.database, window), 'read channel hours'),
  ]);
  const prevByKey = new Map(previous.map((p) => [key(p.channel, p.failureCode), p]));

  // Peak hours per channel, with the previous run's peak hours of that channel for hysteresis.
  const hoursByChannel = new Map<string, ChannelHour[]>();
  for (const r of hours) {
    const list = hoursByChannel.get(String(r.channel_name)) ?? [];
    list.push({ hour: num(r.hour_utc), attempts: num(r.attempts_n), unsuccessful: num(r.unsuccessful) });
    hoursByChannel.set(String(r.channel_name), list);
  }
  const peaks = new Map<string, { hours: number[]; rates: number[]; mean: number }>();
  for (const [channel, list] of hoursByChannel) {
    const prevPeak = [...new Set(previous.filter((p) => p.channel === channel).flatMap((p) => p.peakHours))];
    peaks.set(channel, peakHours(list, prevPeak, options));
  }

  const steps = new Map<string, { channel: string; code: string; byK: Map<number, StepEvidence> }>();
  for (const r of transitions) {
    const channel = String(r.channel_name);
    const code = String(r.code);
    const entry = steps.get(key(channel, code)) ?? { channel, code, byK: new Map<number, StepEvidence>() };
    const k = num(r.k);
    const s = entry.byK.get(k) ?? { k, failures: 0, retried: 0, succeeded: 0 };
    s.failures += num(r.failures);
    s.retried += num(r.retried);
    s.succeeded += num(r.retry_succeeded);
    entry.byK.set(k, s);
    steps.set(key(channel, code), entry);
  }
  const delayByKey = new Map(delays.map((r) => [key(String(r.channel_name), String(r.code)), { n: num(r.succeeded_retries), median: num(r.median_delay_s) }]));

  const out: PolicyEntry[] = [];
  for (const [k, s] of steps) {
    const d = delayByKey.get(k) ?? { n: 0, median: 0 };
    out.push(
      decide(
        {
          channel: s.channel,
          failureCode: s.code,
          steps: [...s.byK.values()],
          succeededRetries: d.n,
          medianDelaySeconds: d.median,
          peak: peaks.get(s.channel) ?? { hours: [], rates: [], mean: 0 },
          previous: prevByKey.get(k) ?? null,
        },
        options,
      ),
    );
  }
  // A code with no failures in the window keeps its previous entry: no evidence, no change.
  for (const [k, p] of prevByKey) {
    if (steps.has(k)) continue;
    out.push({
      ...p,
      evidence: {
        failures: 0,
        steps: [],
        succeededRetries: 0,
        medianDelaySeconds: 0,
        channelFailureRate: peaks.get(p.channel)?.mean ?? 0,
        peakFailureRates: [],
      },
      change: 'unchanged',
      previous: { action: p.action, maxAttempts: p.maxAttempts, peakMaxAttempts: p.peakMaxAttempts },
      reason:
        `${p.failureCode} on ${p.channel}: no failures with this code in the window, previous decision kept (${p.action}, max ${p.maxAttempts} ` + `attempts).`,
    });
  }
  return out.sort((a, b) => (a.channel === b.channel ? a.failureCode.localeCompare(b.failureCode) : a.channel.localeCompare(b.channel)));
}

const HOUR_MS = 3_600_000;

/**
 * The `retry-policy` job: tunes the policy from the history of [now - lookback, start of this
 * hour), compares it with the latest stored policy, appends it to retry_policy under a new version
 * and, when a publisher is given, publishes every entry (key channel:failure_code). Recorded in
 * job_runs; the row count is the number of entries written.
 */
export async function run(deps: RetryPolicyDeps, now: Date, runOptions: RetryPolicyRunOptions = {}): Promise<JobRun> {
  const options = { ...DEFAULT_POLICY_OPTIONS, ...runOptions.options };
  const to = runOptions.to ?? new Date(Math.floor(now.getTime() / HOUR_MS) * HOUR_MS);
  const from = runOptions.from ?? new Date(to.getTime() - options.lookbackMs);
  return runJob(deps, RETRY_POLICY_JOB, { from, to }, async ({ runId, startedAt }) => {
    const previous = await readPolicy(deps);
    const entries = await tunePolicy(deps, { from, to }, previous, options);
    if (entries.length === 0) return 0;
    // Versions order the runs, so they come from the run's start on runJob's clock, not from
    // `now`, which two runs by hand over the same period share. The entries carry job_runs' run id.
    const version = startedAt.getTime() * 1000 + Math.floor(Math.random() * 1000);
    const computedAt = now;
    await insertRows(
      deps.clickhouse,
      ident(deps.database, 'retry_policy').text,
      entries.map((e) => toRow(e, { version, runId, computedAt, from, to })),
      'write retry policy',
    );
    if (deps.publisher) await deps.publisher.publish(entries);
    const rows = await queryRows<{ n: string }>(deps.clickhouse, policyRowsQuery(deps.database, version), 'count written policy');
    return Number(rows[0]?.n ?? 0);
  });
}

/**
 * The job's schedule: hourly, 7 minutes past, so the hour it reads up to is complete; in
 * analyticsJobs. The scheduled run publishes when its deps carry a publisher (`paysentinel start`
 * passes one).
 */
export const retryPolicyScheduledJob: ScheduledJob<RetryPolicyDeps> = {
  name: RETRY_POLICY_JOB,
  cron: '7 * * * *',
  run: (deps, now) => run(deps, now),
  byHand: {
    window: true,
    publishes: true,
    run: (deps, now, window) => run(deps, now, window),
    text: (r, published) =>
      `${r.job}: ${r.status}, evidence ${r.from.toISOString()} .. ${r.to.toISOString()}, ${r.rows} entries written${published ? ' and published' : ''} ` +
      `(run ${r.runId}). See "paysentinel policy show" and "paysentinel policy diff".`,
  },
};
