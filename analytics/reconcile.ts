import { command, queryRows } from '../storage/clickhouse.ts';
import { runJob, type AnalyticsDeps, type JobRun, type ScheduledJob } from './jobs.ts';
import {
  callbackDelaysQuery,
  insertCallbackDelaysQuery,
  insertReconciledAttemptsQuery,
  latestReconcileVersionQuery,
  reconcileAttemptsQuery,
} from './reconcile-queries.ts';

export const RECONCILE_JOB = 'reconcile';

/** An attempt still processing this long after its first event is stuck. @default 15 minutes */
export const DEFAULT_STUCK_AFTER_MS = 15 * 60_000;
/** How far back each run looks (by the attempt's first event). @default 24 hours */
export const DEFAULT_RECONCILE_LOOKBACK_MS = 24 * 3_600_000;

export interface ReconcileRunOptions {
  stuckAfterMs?: number;
  lookbackMs?: number;
}

/** One attempt a run reported. */
export interface ReconciledAttempt {
  kind: 'stuck_processing' | 'changed_after_final';
  orderId: string;
  attempt: number;
  channel: string;
  merchantId: string;
  firstAt: Date;
  lastAt: Date;
  /** The first final status it reached ('' when none). */
  firstFinal: string;
  /** Its outcome now (latest status). */
  outcome: string;
  finalStatuses: number;
  ageSeconds: number;
}

/** Callback delay percentiles of one channel ('' = all channels), in ms. */
export interface CallbackDelays {
  channel: string;
  attempts: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

export interface ReconcileReport {
  version: number;
  stuck: ReconciledAttempt[];
  changed: ReconciledAttempt[];
  delays: CallbackDelays[];
}

/**
 * The `reconcile` job: for attempts first seen in the last `lookbackMs` before `now`, writes (in
 * ClickHouse, INSERT ... SELECT) those still processing `stuckAfterMs` after their first event, those
 * whose final status changed (a late callback or a correction), and the callback delay percentiles
 * per channel, all under one new version. Recorded in job_runs.
 */
export async function run(deps: AnalyticsDeps, now: Date, options: ReconcileRunOptions = {}): Promise<JobRun> {
  const toMs = now.getTime();
  const fromMs = toMs - (options.lookbackMs ?? DEFAULT_RECONCILE_LOOKBACK_MS);
  return runJob(deps, RECONCILE_JOB, { from: new Date(fromMs), to: now }, async () => {
    const write = {
      fromMs,
      toMs,
      version: Date.now() * 1000 + Math.floor(Math.random() * 1000),
      computedAt: new Date(),
      stuckAfterMs: options.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS,
    };
    await command(deps.clickhouse, insertReconciledAttemptsQuery(deps.database, write), 'write stuck and changed attempts');
    await command(deps.clickhouse, insertCallbackDelaysQuery(deps.database, write), 'write callback delays');
    const report = await readReconcile(deps, write.version);
    return report.stuck.length + report.changed.length + report.delays.length;
  });
}

/** The schedule entry: every 5 minutes, in analyticsJobs. */
export const reconcileScheduledJob: ScheduledJob = {
  name: RECONCILE_JOB,
  cron: '*/5 * * * *',
  run: (deps, now) => run(deps, now),
  byHand: {
    window: false,
    run: (deps, now) => run(deps, now),
    text: (r) => `${r.job}: ${r.status}, attempts first seen ${r.from.toISOString()} .. ${r.to.toISOString()}, ${r.rows} rows written (run ${r.runId}).`,
  },
};

type Row = Record<string, unknown>;

/** What a run (by default the latest) reported; version 0 and empty lists before the first run. */
export async function readReconcile(deps: Pick<AnalyticsDeps, 'clickhouse' | 'database'>, version?: number): Promise<ReconcileReport> {
  const v = version ?? Number((await queryRows<Row>(deps.clickhouse, latestReconcileVersionQuery(deps.database), 'read latest reconcile'))[0]?.v ?? 0);
  if (!v) return { version: 0, stuck: [], changed: [], delays: [] };
  const [attempts, delays] = await Promise.all([
    queryRows<Row>(deps.clickhouse, reconcileAttemptsQuery(deps.database, v), 'read reconciled attempts'),
    queryRows<Row>(deps.clickhouse, callbackDelaysQuery(deps.database, v), 'read callback delays'),
  ]);
  const list = attempts.map(
    (r): ReconciledAttempt => ({
      kind: String(r.kind) as ReconciledAttempt['kind'],
      orderId: String(r.order_id),
      attempt: Number(r.attempt),
      channel: String(r.channel),
      merchantId: String(r.merchant_id),
      firstAt: new Date(Number(r.first_s) * 1000),
      lastAt: new Date(Number(r.last_s) * 1000),
      firstFinal: String(r.first_final),
      outcome: String(r.outcome),
      finalStatuses: Number(r.final_statuses),
      ageSeconds: Number(r.age_seconds),
    }),
  );
  const n = (x: unknown) => (x === null || x === 'nan' || x === undefined ? NaN : Number(x));
  return {
    version: v,
    stuck: list.filter((a) => a.kind === 'stuck_processing'),
    changed: list.filter((a) => a.kind === 'changed_after_final'),
    delays: delays.map((r) => ({
      channel: String(r.channel),
      attempts: Number(r.attempts),
      p50: n(r.p50_ms),
      p90: n(r.p90_ms),
      p95: n(r.p95_ms),
      p99: n(r.p99_ms),
      max: n(r.max_ms),
    })),
  };
}
