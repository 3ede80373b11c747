import { command, queryRows } from '../storage/clickhouse.ts';
import type { SqlFragment } from '../storage/sql.ts';
import { runJob, type AnalyticsDeps, type JobRun, type ScheduledJob } from './jobs.ts';
import {
  changedOrdersSql,
  changesPerSecondQuery,
  historyPerStepQuery,
  ordersInRangeSql,
  readCursorQuery,
  serverNowQuery,
  writeCursorQuery,
} from './rate-items.ts';
import { CHANGES_OVERLAP_SECONDS, changesReadFrom, takeWithin } from './rates.ts';
import {
  callbackDelayCountsQuery,
  callbackDelayRows,
  callbackDelaysQuery,
  type CallbackDelays,
  changedOrdersOfRecordsSql,
  dropRecordDayQuery,
  insertCallbackDelaysQuery,
  insertChangedRecordsQuery,
  insertReconciledAttemptsQuery,
  latestReconcileVersionQuery,
  reconcileAttemptsQuery,
  recordDaysQuery,
} from './reconcile-queries.ts';

export const RECONCILE_JOB = 'reconcile';

/** An attempt still processing this long after its first event is stuck. @default 15 minutes */
export const DEFAULT_STUCK_AFTER_MS = 15 * 60_000;
/** How far back each run looks (by the attempt's first event). @default 24 hours */
export const DEFAULT_RECONCILE_LOOKBACK_MS = 24 * 3_600_000;

export interface ReconcileRunOptions {
  stuckAfterMs?: number;
  lookbackMs?: number;
  /** The most events one statement rebuilds the records of. @default RECONCILE_SLICE_EVENTS */
  sliceEvents?: number;
  /**
   * Rebuild every record of the window under a new generation (a run by hand does): it then never
   * writes records that a scheduled run may be updating at the same time.
   */
  rebuild?: boolean;
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

export type { CallbackDelays };

export interface ReconcileReport {
  version: number;
  stuck: ReconciledAttempt[];
  changed: ReconciledAttempt[];
  delays: CallbackDelays[];
}

/**
 * The most stored events whose orders one statement rebuilds the records of: the changes a run
 * reads (payment_changes rows) and each slice of time of a rebuild. @default 500,000
 */
export const RECONCILE_SLICE_EVENTS = 500_000;

/** The records cover the attempts first seen from this long before the window on. @default 1 hour */
export const RECONCILE_COVER_MARGIN_MS = 3_600_000;

/**
 * Cuts counts per key (ascending keys: seconds, or 10-second steps) into slices of at most `max`
 * (at least one key each), [from, to) in keys, the first from `start`, the last open-ended (null).
 */
export function cutSlices(counts: readonly { k: number; n: number }[], max: number, start: number): { from: number; to: number | null; n: number }[] {
  const out: { from: number; to: number | null; n: number }[] = [];
  for (let i = 0, from = start; i < counts.length; ) {
    const k = takeWithin(
      counts.slice(i).map((c) => c.n),
      max,
    );
    const to = i + k < counts.length ? counts[i + k]!.k : null;
    out.push({ from, to, n: counts.slice(i, i + k).reduce((a, c) => a + c.n, 0) });
    i += k;
    if (to !== null) from = to;
  }
  return out;
}

/**
 * Where the cursor stands after the changes up to `toSec` were applied: `overlapSec` before the
 * server's now at most (rows of those last seconds may still be joined by inserts ClickHouse commits
 * late), and never back from where it was, unless the server's clock stepped back: then the run read
 * from before the step and the cursor moves back with it, so the next run reads on from there.
 */
export function seenToAfter(cursor: { seenToSec: number; steppedBackSec: number }, toSec: number, nowSec: number, overlapSec: number): number {
  const floor = cursor.steppedBackSec > 0 ? -Infinity : cursor.seenToSec;
  return Math.max(floor, Math.min(toSec, nowSec - overlapSec));
}

/** The reconcile job's cursor over payment_changes (analytics_cursors, job `reconcile`). */
interface Cursor {
  seenToSec: number;
  /** The records cover the attempts first seen from here on (ms, whole seconds). */
  coveredFromMs: number;
  /** The records' generation: a rebuild starts a new one. */
  generation: number;
  serverAtSec: number;
  serverUptime: number;
}

async function readCursor(deps: AnalyticsDeps): Promise<Cursor | null> {
  const [row] = await queryRows<Record<string, string | number>>(deps.clickhouse, readCursorQuery(deps.database, RECONCILE_JOB), 'read the reconcile cursor');
  if (!row) return null;
  return {
    seenToSec: Number(row.seen_to),
    coveredFromMs: Number(row.covered_from) * 1000,
    generation: Number(row.written_version),
    serverAtSec: Number(row.server_at),
    serverUptime: Number(row.server_uptime),
  };
}

/**
 * The `reconcile` job: for attempts first seen in the last `lookbackMs` before `now`, writes (in
 * ClickHouse) those still processing `stuckAfterMs` after their first event, those whose final
 * status changed (a late callback or a correction), and the callback delay percentiles per channel,
 * all under one new version. Recorded in job_runs.
 *
 * It reads the attempts' records (migration 029), not the window's events: a run first brings the
 * records up to date with the orders stored since its cursor (payment_changes, by ClickHouse's insert
 * clock, in slices of at most RECONCILE_SLICE_EVENTS rows, each committing the cursor), rebuilding
 * each changed order's attempts from its own events. The first run, and a run whose window reaches
 * back before what the records cover, rebuild every attempt of the window instead (under a new
 * generation), the same way from the orders with an event in each slice of time of at most
 * RECONCILE_SLICE_EVENTS events, with progress logged. Days of records before the window are dropped.
 */
export async function run(deps: AnalyticsDeps, now: Date, options: ReconcileRunOptions = {}): Promise<JobRun> {
  const toMs = now.getTime();
  const fromMs = toMs - (options.lookbackMs ?? DEFAULT_RECONCILE_LOOKBACK_MS);
  return runJob(deps, RECONCILE_JOB, { from: new Date(fromMs), to: now }, async () => {
    const db = deps.database;
    // Versions from the wall clock (not `now`, which a test or a by-hand run may set), increasing within the run.
    let lastVersion = 0;
    const nextVersion = () => (lastVersion = Math.max(lastVersion + 1, Date.now() * 1000 + Math.floor(Math.random() * 1000)));
    const [clock] = await queryRows<{ t: number; up: string }>(deps.clickhouse, serverNowQuery, 'read server clock');
    const server = { nowSec: Number(clock?.t), uptime: Number(clock?.up) };
    const overlap = CHANGES_OVERLAP_SECONDS;
    const windowFromMs = Math.floor(fromMs / 1000) * 1000;
    const stored = await readCursor(deps);
    // The records reach RECONCILE_COVER_MARGIN_MS before the window, so a run whose window starts
    // a little earlier than the last one (another host's clock, a shorter look-back) does not rebuild.
    const rebuild = options.rebuild === true || stored === null || windowFromMs < stored.coveredFromMs;
    const cursor: Cursor = !rebuild
      ? { ...stored, coveredFromMs: Math.max(stored.coveredFromMs, windowFromMs - RECONCILE_COVER_MARGIN_MS) }
      : {
          seenToSec: server.nowSec - overlap,
          coveredFromMs: windowFromMs - RECONCILE_COVER_MARGIN_MS,
          generation: nextVersion(),
          serverAtSec: 0,
          serverUptime: 0,
        };
    const commit = () =>
      command(
        deps.clickhouse,
        writeCursorQuery(db, RECONCILE_JOB, {
          seenToSec: cursor.seenToSec,
          coveredFromSec: cursor.coveredFromMs / 1000,
          historyFromSec: 0,
          writtenVersion: cursor.generation,
          serverAtSec: server.nowSec,
          serverUptime: server.uptime,
          version: nextVersion(),
        }),
        'move the reconcile cursor',
      );
    const log = deps.logger.child({ job: RECONCILE_JOB });
    const slice = options.sliceEvents ?? RECONCILE_SLICE_EVENTS;
    const update = (orders: SqlFragment, what: string) =>
      command(
        deps.clickhouse,
        insertChangedRecordsQuery(db, { generation: cursor.generation, version: nextVersion(), coveredFromMs: cursor.coveredFromMs, orders }),
        what,
      );
    if (rebuild) {
      // A rebuild, under a new generation: the orders with a payment event from the records'
      // start on, in slices of time of at most `slice` events (the first run over a day at 5,000
      // events/s is 432 million events: one statement could not hold them), oldest first. Changes
      // stored while it runs are read by the next run (the cursor is from before it, less the overlap).
      const steps = (await queryRows<{ k: number; n: string }>(deps.clickhouse, historyPerStepQuery(db, cursor.coveredFromMs, null), 'count events per 10 s'))
        .map((c) => ({ k: Number(c.k), n: Number(c.n) }))
        .reverse();
      const slices = cutSlices(steps, slice, cursor.coveredFromMs / 1000);
      const total = slices.reduce((a, c) => a + c.n, 0);
      log.info('rebuilding the attempt records of the window from the events', {
        from: new Date(cursor.coveredFromMs).toISOString(),
        reason: options.rebuild ? 'run by hand' : stored ? 'the window reaches back before the records' : 'first run',
        events: total,
        slices: slices.length,
      });
      let done = 0;
      for (const [i, c] of slices.entries()) {
        await update(ordersInRangeSql(db, c.from * 1000, c.to === null ? null : c.to * 1000), 'rebuild the reconcile records');
        done += c.n;
        (slices.length > 2 ? log.info : log.debug)('reconcile rebuild slice', { slice: i + 1, of: slices.length, events: done, of_events: total });
      }
      await commit();
    } else {
      const { fromSec, steppedBackSec } = changesReadFrom(cursor, server, overlap);
      if (steppedBackSec > 0) {
        log.warn("the server's clock stepped back: payment_changes is read again from before the step", { stepped_back_s: steppedBackSec });
      }
      // Every change stored since the cursor, in slices, each committing the cursor. The counts have
      // no upper bound, so rows stored after a step back of the clock (seen_at ahead of now) are
      // counted; the last slice ends after the last counted second, so the two reads of one
      // statement (the changed orders' events and their records) see the same orders.
      const counts = (await queryRows<{ k: number; n: string }>(deps.clickhouse, changesPerSecondQuery(db, fromSec, null), 'count changes per second')).map(
        (c) => ({ k: Number(c.k), n: Number(c.n) }),
      );
      const end = Math.max(server.nowSec, counts.at(-1)?.k ?? 0) + 1;
      const before = cursor.seenToSec;
      const seenTo = (to: number) => seenToAfter({ seenToSec: before, steppedBackSec }, to, server.nowSec, overlap);
      for (const c of cutSlices(counts, slice, fromSec)) {
        const to = c.to ?? end;
        await update(changedOrdersOfRecordsSql(db, c.from, to, cursor.coveredFromMs), 'update the reconcile records of changed orders');
        cursor.seenToSec = seenTo(to);
        await commit();
      }
      if (counts.length === 0) {
        cursor.seenToSec = seenTo(end);
        await commit();
      }
    }

    const write = {
      fromMs,
      toMs,
      generation: cursor.generation,
      version: nextVersion(),
      computedAt: new Date(),
      stuckAfterMs: options.stuckAfterMs ?? DEFAULT_STUCK_AFTER_MS,
    };
    await command(deps.clickhouse, insertReconciledAttemptsQuery(db, write), 'write stuck and changed attempts');
    const counts = await queryRows<{ channel: string; delay_ms: string; n: string }>(
      deps.clickhouse,
      callbackDelayCountsQuery(db, cursor.generation, write),
      'count callback delays',
    );
    const rows = callbackDelayRows(counts.map((c) => ({ channel: String(c.channel), delayMs: Number(c.delay_ms), n: Number(c.n) })));
    await command(deps.clickhouse, insertCallbackDelaysQuery(db, write, rows), 'write callback delays');
    await dropOldDays(deps, cursor.coveredFromMs);
    const report = await readReconcile(deps, write.version);
    return report.stuck.length + report.changed.length + report.delays.length;
  });
}

/** Drops the days of records that end a day or more before the records' coverage starts. */
async function dropOldDays(deps: AnalyticsDeps, coveredFromMs: number): Promise<void> {
  const keepFrom = new Date(coveredFromMs - 86_400_000).toISOString().slice(0, 10).replaceAll('-', '');
  const days = await queryRows<{ id: string }>(deps.clickhouse, recordDaysQuery(deps.database), 'list the reconcile record days');
  for (const { id } of days) {
    if (/^\d{8}$/.test(id) && id < keepFrom) await command(deps.clickhouse, dropRecordDayQuery(deps.database, id), `drop the reconcile records of ${id}`);
  }
}

/** The schedule entry: every 5 minutes, in analyticsJobs. */
export const reconcileScheduledJob: ScheduledJob = {
  name: RECONCILE_JOB,
  cron: '*/5 * * * *',
  run: (deps, now) => run(deps, now),
  byHand: {
    window: false,
    run: (deps, now) => run(deps, now, { rebuild: true }),
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
