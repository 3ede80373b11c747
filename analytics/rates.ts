import { command, queryRows } from '../storage/clickhouse.ts';
import type { SqlFragment } from '../storage/sql.ts';
import { lastSuccessfulWindowEnd, runJob, type AnalyticsDeps, type JobRun, type ScheduledJob } from './jobs.ts';
import {
  bucketSizes,
  countColumns,
  earliestPaymentQuery,
  insertRollupQuery,
  rateColumns,
  ratesQuery,
  storedRatesQuery,
  type BucketSize,
  type Dimension,
} from './queries.ts';
import {
  changedOrdersSql,
  changesPerSecondQuery,
  historyPerStepQuery,
  insertBucketRatesQuery,
  insertItemsQuery,
  ordersInRangeSql,
  readCursorQuery,
  serverNowQuery,
  touchedSinceQuery,
  writeCursorQuery,
  writtenRatesQuery,
} from './rate-items.ts';

type CountColumn = (typeof countColumns)[number];
type RateColumn = keyof typeof rateColumns;

/** One row of rates: a bucket (or the whole window) and a dimension value ('' for `all`). */
export type RateRow = { bucketStart: Date; value: string } & Record<CountColumn, number> & Record<RateColumn, number>;

export interface RatesOptions {
  from: Date;
  to: Date;
  /** @default 'all' */
  by?: Dimension;
  /** Split into time buckets; without it one row per value covers the whole window. */
  bucket?: BucketSize;
}

// JSONEachRow prints UInt64 as strings (both 18.16 and current); every column here is numeric.
function toRateRow(r: Record<string, unknown>): RateRow {
  const out: Record<string, unknown> = { bucketStart: new Date(Number(r.bucket_start) * 1000), value: String(r.value) };
  for (const c of countColumns) out[c] = Number(r[c]);
  for (const c of Object.keys(rateColumns)) out[c] = Number(r[c]);
  return out as RateRow;
}

/** The rates of attempts (and orders) first seen in [from, to), computed in ClickHouse from payment_events. */
export async function computeRates(deps: Pick<AnalyticsDeps, 'clickhouse' | 'database'>, options: RatesOptions): Promise<RateRow[]> {
  const query = ratesQuery(deps.database, {
    fromMs: options.from.getTime(),
    toMs: options.to.getTime(),
    dimension: options.by ?? 'all',
    bucket: options.bucket,
  });
  return (await queryRows<Record<string, unknown>>(deps.clickhouse, query, 'compute rates')).map(toRateRow);
}

/** Rates the `rates` job stored in payment_rates for buckets starting in [from, to). */
export async function readStoredRates(
  deps: Pick<AnalyticsDeps, 'clickhouse' | 'database'>,
  options: { from: Date; to: Date; by?: Dimension; bucket: BucketSize },
): Promise<RateRow[]> {
  const query = storedRatesQuery(deps.database, {
    fromMs: options.from.getTime(),
    toMs: options.to.getTime(),
    dimension: options.by ?? 'all',
    bucket: options.bucket,
  });
  return (await queryRows<Record<string, unknown>>(deps.clickhouse, query, 'read stored rates')).map(toRateRow);
}

export const RATES_JOB = 'rates';

/**
 * planStart's default blanket restatement: every closed bucket of the last hour, whatever changed.
 * The `rates` job passes its own `restateMs` (default 0): late events restate their own buckets
 * through their items, so it needs none. @default 1 hour
 */
export const DEFAULT_RESTATE_MS = 3_600_000;

/** Floors epoch ms to a bucket boundary (UTC). */
export const floorTo = (ms: number, size: BucketSize): number => Math.floor(ms / (bucketSizes[size] * 1000)) * bucketSizes[size] * 1000;

/**
 * The closed buckets a run covers for each size: [floor(from), floor(to)), so a bucket is written
 * only once it has ended. Empty ranges are left out.
 */
export function planBuckets(fromMs: number, toMs: number): { bucket: BucketSize; fromMs: number; toMs: number }[] {
  return (Object.keys(bucketSizes) as BucketSize[])
    .map((bucket) => ({ bucket, fromMs: floorTo(fromMs, bucket), toMs: floorTo(toMs, bucket) }))
    .filter((p) => p.fromMs < p.toMs);
}

/**
 * Where an automatic run's window starts: the end of the last successful run (so downtime is caught
 * up bucket by bucket), but never later than `restateMs` before now, so that many recent buckets
 * are rewritten whatever changed. A first run starts at the day of the earliest event.
 */
export function planStart(nowMs: number, lastEndMs: number | null, earliestEventMs: number | null, restateMs = DEFAULT_RESTATE_MS): number {
  const restateFrom = floorTo(nowMs, '5m') - restateMs;
  if (lastEndMs !== null) return Math.min(lastEndMs, restateFrom);
  if (earliestEventMs !== null) return Math.min(floorTo(earliestEventMs, 'day'), restateFrom);
  return restateFrom;
}

export interface RatesRunOptions {
  /** Recompute from here instead of catching up from job_runs (backfill). */
  from?: Date;
  /** Stop here instead of at `now`; never later than `now`. */
  to?: Date;
  /**
   * Also rewrite every closed bucket of this long before the last closed one, whatever changed
   * (by hand, after a fix). Late events need none: they restate their own buckets. @default 0
   */
  restateMs?: number;
  /** How far back payment_changes is read again before the cursor. @default CHANGES_OVERLAP_SECONDS */
  changesOverlapSeconds?: number;
  /**
   * A run without `from` starts no new slice after this long (ms); the next run continues from the
   * cursor. The scheduler passes RATES_RUN_BUDGET_MS. @default Infinity (until caught up)
   */
  budgetMs?: number;
  /**
   * Changes stored less than this long (seconds) before the run are taken whatever the budget, so
   * a run at a steady rate finishes its own minute instead of leaving part of it to the next one
   * (which then falls further behind every run); the budget bounds only a backlog older than this.
   * The scheduler passes RATES_RECENT_SECONDS. @default 0
   */
  finishRecentSeconds?: number;
  /** The most events one slice builds items for. @default RATES_SLICE_EVENTS */
  sliceEvents?: number;
}

/** One bounded piece of a run: at most one hour of attempts per statement. */
export interface RatesChunk {
  /** 5-minute buckets starting in [fromMs, toMs) (empty when fromMs == toMs). */
  fiveMin: { fromMs: number; toMs: number };
  /** The hour bucket starting here, when it is part of the run; else null. */
  hourStartMs: number | null;
}

/**
 * Splits a run's closed buckets into chunks of one clock hour each, so no statement scans more than
 * an hour of attempts however long the catch-up or backfill: chunk h holds the 5-minute buckets of
 * hour h that the run covers and, when the run covers it, the hour bucket h itself (summed from
 * the stored 5-minute buckets). Day buckets are listed separately: they are summed from the stored
 * hour buckets (see insertRollupQuery).
 */
export function planChunks(fromMs: number, toMs: number): { chunks: RatesChunk[]; days: number[] } {
  const plans = Object.fromEntries(planBuckets(fromMs, toMs).map((p) => [p.bucket, p])) as Partial<Record<BucketSize, { fromMs: number; toMs: number }>>;
  const chunks: RatesChunk[] = [];
  const five = plans['5m'];
  const hour = plans.hour;
  if (five) {
    for (let h = floorTo(five.fromMs, 'hour'); h < five.toMs; h += HOUR_MS) {
      const hourStartMs = hour && h >= hour.fromMs && h < hour.toMs ? h : null;
      chunks.push({ fiveMin: { fromMs: Math.max(h, five.fromMs), toMs: Math.min(h + HOUR_MS, five.toMs) }, hourStartMs });
    }
  }
  const days: number[] = [];
  const day = plans.day;
  if (day) for (let d = day.fromMs; d < day.toMs; d += DAY_MS) days.push(d);
  return { chunks, days };
}

const HOUR_MS = bucketSizes.hour * 1000;
const DAY_MS = bucketSizes.day * 1000;

/** How far back each run re-reads payment_changes, for inserts that ClickHouse committed after their rows' seen_at. @default 15 s */
export const CHANGES_OVERLAP_SECONDS = 15;
/** The longest slice of payment_changes one statement reads, so a catch-up after downtime goes piece by piece. @default 1 hour */
const CHANGES_SLICE_SECONDS = 3600;

/**
 * The buckets (epoch ms) a run writes: every bucket of its window, the closed, complete buckets its
 * changes touched, and every closed bucket of `also` (the range the history pass just completed).
 */
export function planWrites(
  window: { fromMs: number; toMs: number },
  touchedMs: readonly number[],
  coveredFromMs: number,
  also?: { fromMs: number; toMs: number },
): number[] {
  const out = new Set<number>();
  for (let b = floorTo(window.fromMs, '5m'); b < window.toMs; b += FIVE_MIN_MS) out.add(b);
  for (const b of touchedMs) if (b >= coveredFromMs && b + FIVE_MIN_MS <= window.toMs) out.add(b);
  if (also) for (let b = ceilTo5m(also.fromMs); b < also.toMs && b + FIVE_MIN_MS <= window.toMs; b += FIVE_MIN_MS) out.add(b);
  return [...out].sort((a, b) => a - b);
}

const FIVE_MIN_MS = bucketSizes['5m'] * 1000;
const ceilTo5m = (ms: number): number => Math.ceil(ms / FIVE_MIN_MS) * FIVE_MIN_MS;

/**
 * The most events one slice builds items for: the changes, the history pass and a backfill's hours
 * (a slice is at least one second of changes or one 10-second step of events, so it can hold more).
 * 300,000 (a minute at 5,000 events/s) since 2026-12-08: a minute's changes in one slice read
 * the attempt states of its late events' orders once, not once per slice (`npm run
 * bench:rates-run`: 15 % less CPU per run than with 100,000, at 527 MB for the statement).
 * @default 300,000
 */
export const RATES_SLICE_EVENTS = 300_000;
/** A scheduled run starts no new slice after this long; the next run continues where it stopped. @default 5 s */
export const RATES_RUN_BUDGET_MS = 5_000;
/**
 * A scheduled run takes the changes of the last this many seconds whatever its budget: the minute
 * since the last run and some margin (at 5,000 events/s, at most 450,000 events, 2 slices). @default 90 s
 */
export const RATES_RECENT_SECONDS = 90;

/** How many of `counts`, taken in order, add up to at most `max`: at least one when there is any (a slice is never empty). */
export function takeWithin(counts: readonly number[], max: number): number {
  let sum = 0;
  for (let i = 0; i < counts.length; i++) {
    sum += counts[i]!;
    if (sum > max) return Math.max(1, i);
  }
  return counts.length;
}

/**
 * Cuts [fromMs, toMs) into slices of at most `max` payment events (at least one 10-second step
 * each), newest first, from the per-step counts of historyPerStepQuery (newest first): the last
 * slice reaches down to fromMs. A range without events is one empty slice.
 */
export function stepSlices(
  counts: readonly { k: number; n: number }[],
  fromMs: number,
  toMs: number,
  max: number,
): { fromMs: number; toMs: number; events: number }[] {
  const out: { fromMs: number; toMs: number; events: number }[] = [];
  let top = toMs;
  for (let i = 0; i < counts.length; ) {
    const k = takeWithin(
      counts.slice(i).map((c) => c.n),
      max,
    );
    const last = i + k === counts.length;
    const sliceFrom = last ? fromMs : Math.max(fromMs, counts[i + k - 1]!.k * 1000);
    out.push({ fromMs: sliceFrom, toMs: top, events: counts.slice(i, i + k).reduce((a, c) => a + c.n, 0) });
    top = sliceFrom;
    i += k;
  }
  if (out.length === 0) out.push({ fromMs, toMs, events: 0 });
  return out;
}

/**
 * Where a run reads payment_changes from, and by how many seconds the server's clock stepped back
 * since the cursor was written (0: it did not). seen_at is the server's clock at insert, so after a
 * step back of more than the overlap the rows inserted since lie before seen_to. The server's
 * uptime never steps: while it is the same server process (uptime not lower than the cursor's), the
 * real time since the cursor is the uptime's advance, and every row inserted since has a seen_at
 * of at least `now - that time`, which is where the run reads again from. After a restart of the
 * server (uptime lower) with its clock behind the cursor's: everything since the server started.
 * Not seen: a step back within a restart while the clock still ran ahead of the cursor's.
 */
export function changesReadFrom(
  cursor: { seenToSec: number; serverAtSec: number; serverUptime: number },
  server: { nowSec: number; uptime: number },
  overlapSec: number,
): { fromSec: number; steppedBackSec: number } {
  if (cursor.serverAtSec === 0) return { fromSec: cursor.seenToSec, steppedBackSec: 0 };
  if (server.uptime >= cursor.serverUptime) {
    const elapsed = server.uptime - cursor.serverUptime;
    const back = cursor.serverAtSec + elapsed - server.nowSec;
    return back > overlapSec
      ? { fromSec: Math.min(cursor.seenToSec, server.nowSec - elapsed - overlapSec), steppedBackSec: back }
      : { fromSec: cursor.seenToSec, steppedBackSec: 0 };
  }
  const back = cursor.serverAtSec - server.nowSec;
  return back > overlapSec
    ? { fromSec: Math.min(cursor.seenToSec, server.nowSec - server.uptime - overlapSec), steppedBackSec: back }
    : { fromSec: cursor.seenToSec, steppedBackSec: 0 };
}

/**
 * The `rates` job, incremental (docs/adr/0003). A scheduled run (no `from`) works in bounded
 * slices, each committing its progress to the cursor, and starts no new slice once `budgetMs` has
 * passed (the next run continues):
 * 1. changes: the orders stored since the cursor (payment_changes, by ClickHouse's insert clock),
 *    in slices of at most `sliceEvents` rows, become items (what each of their attempts and each
 *    order adds to its 5-minute bucket, from the attempts' aggregate states);
 * 2. history: while the items are not complete back to where the job's buckets start (a first
 *    run: the day of the earliest event, or the end of the last run before migration 016),
 *    the orders with a payment event in the next older slice of time (at most `sliceEvents`
 *    payment events) become items, newest first, so the latest buckets are complete first;
 * 3. writes: the closed buckets the run's items touched, the buckets of its window and those the
 *    history pass completed, all dimensions in one statement per hour; then the touched hours from
 *    their 5-minute buckets and the touched days from their hours.
 * A late callback restates its own buckets. A backfill (`from`) rebuilds the items of its range
 * hour by hour from the events (by time), in slices of at most `sliceEvents` events, with progress,
 * and writes the range; its duration is not bounded, its statements are.
 * Recorded in job_runs.
 */
export async function run(deps: AnalyticsDeps, now: Date, options: RatesRunOptions = {}): Promise<JobRun> {
  if (options.from !== undefined) return backfill(deps, now, { ...options, from: options.from });
  const nowMs = now.getTime();
  const last = await lastSuccessfulWindowEnd(deps, RATES_JOB);
  const earliest = last === null ? await earliestEventMs(deps) : null;
  const fromMs = planStart(nowMs, last?.getTime() ?? null, earliest, options.restateMs ?? 0);
  const toMs = floorTo(Math.min(options.to?.getTime() ?? nowMs, nowMs), '5m');
  const window = { from: new Date(fromMs), to: new Date(Math.max(fromMs, toMs)) };
  const budgetMs = options.budgetMs ?? Infinity;
  const sliceEvents = options.sliceEvents ?? RATES_SLICE_EVENTS;
  const overlap = options.changesOverlapSeconds ?? CHANGES_OVERLAP_SECONDS;
  const finishRecent = options.finishRecentSeconds ?? 0;
  let complete = false;
  const result = await runJob(deps, RATES_JOB, window, async () => {
    const log = deps.logger.child({ job: RATES_JOB });
    const started = Date.now();
    const overBudget = () => Date.now() - started >= budgetMs;
    // Versions from the wall clock (not `now`, which a test or a by-hand run may set), strictly
    // increasing within the run: items, cursor and rates each take the next. Stays below 2^53.
    let lastVersion = 0;
    const nextVersion = () => (lastVersion = Math.max(lastVersion + 1, Date.now() * 1000 + Math.floor(Math.random() * 1000)));
    const db = deps.database;
    const [clock] = await queryRows<{ t: number; up: string }>(deps.clickhouse, serverNowQuery, 'read server clock');
    const server = { nowSec: Number(clock?.t), uptime: Number(clock?.up) };
    const stored = await readCursor(deps);
    const fresh = stored === null;
    const firstItems = nextVersion();
    // A first run starts its items at the bucket after now: whatever was stored before is history.
    const cursor: Cursor = stored ?? {
      seenToSec: server.nowSec - overlap,
      coveredFromMs: floorTo(nowMs, '5m') + FIVE_MIN_MS,
      historyFromMs: fromMs,
      writtenVersion: firstItems - 1,
      serverAtSec: 0,
      serverUptime: 0,
    };
    const commit = () =>
      command(
        deps.clickhouse,
        writeCursorQuery(db, RATES_JOB, {
          seenToSec: cursor.seenToSec,
          coveredFromSec: Math.floor(cursor.coveredFromMs / 1000),
          historyFromSec: Math.max(0, Math.floor(cursor.historyFromMs / 1000)),
          writtenVersion: cursor.writtenVersion,
          serverAtSec: server.nowSec,
          serverUptime: server.uptime,
          version: nextVersion(),
        }),
        'move the rates cursor',
      );
    let itemsVersion = firstItems;
    let usedVersion = 0;
    const items = async (orders: SqlFragment, what: string) => {
      await command(deps.clickhouse, insertItemsQuery(db, { orders, version: itemsVersion }), what);
      usedVersion = itemsVersion;
      itemsVersion = nextVersion();
    };

    // 1. Changes since the cursor, in slices (a first run has none: everything before it is history).
    let caughtUp = fresh;
    let changeSlices = 0;
    if (!fresh) {
      const { fromSec, steppedBackSec } = changesReadFrom(cursor, server, overlap);
      if (steppedBackSec > 0) {
        log.warn("the server's clock stepped back: payment_changes is read again from before the step", {
          stepped_back_s: steppedBackSec,
          read_from: new Date(fromSec * 1000).toISOString(),
        });
      }
      const floorSeen = steppedBackSec > 0 ? -Infinity : fromSec;
      for (let at = fromSec; ; ) {
        // Over budget, a run still finishes the changes stored in the `finishRecent` seconds before
        // it started, and no more: past its start it would chase the live stream for as long as it is slow.
        if (changeSlices > 0 && overBudget() && !(at >= server.nowSec - finishRecent && at < server.nowSec)) {
          // Every change stored before the run started is taken: the closed buckets are complete.
          if (at >= server.nowSec) caughtUp = true;
          break;
        }
        // The last hour up to now is read without an upper bound, so rows stored after a step
        // back of the clock (seen_at ahead of now) are taken too.
        const openEnded = at + CHANGES_SLICE_SECONDS > server.nowSec;
        const counts = await queryRows<{ k: number; n: string }>(
          deps.clickhouse,
          changesPerSecondQuery(db, at, openEnded ? null : at + CHANGES_SLICE_SECONDS),
          'count changes per second',
        );
        if (counts.length === 0 && openEnded) {
          caughtUp = true;
          break;
        }
        const k = takeWithin(
          counts.map((c) => Number(c.n)),
          sliceEvents,
        );
        const lastSlice = openEnded && k === counts.length;
        const end = lastSlice ? null : k < counts.length ? Number(counts[k]!.k) : at + CHANGES_SLICE_SECONDS;
        if (counts.length > 0) {
          await items(
            changedOrdersSql(db, at, end),
            `build rate items of the orders changed ${new Date(at * 1000).toISOString()} .. ${end === null ? 'now' : new Date(end * 1000).toISOString()}`,
          );
          changeSlices++;
        }
        // Rows of the last `overlap` seconds may still be joined by inserts ClickHouse commits late.
        cursor.seenToSec = Math.max(floorSeen, Math.min(end ?? Infinity, server.nowSec - overlap));
        await commit();
        // A catch-up of more than a couple of slices reports its progress at info level, a routine run at debug.
        (changeSlices > 2 ? log.info : log.debug)('rates changes slice', {
          from: new Date(at * 1000).toISOString(),
          events: sumN(counts.slice(0, k)),
          elapsed_ms: Date.now() - started,
        });
        if (lastSlice) {
          caughtUp = true;
          break;
        }
        at = end!;
      }
    }

    // 2. History, newest first, in slices of time (a first run's first slice has no upper bound:
    // events stored before it with times after now belong to it too).
    const coveredAtStart = cursor.coveredFromMs;
    let historySteps = 0;
    let top: number | null = fresh ? null : cursor.coveredFromMs;
    while (cursor.historyFromMs > 0 && cursor.coveredFromMs > cursor.historyFromMs) {
      if (historySteps > 0 && overBudget()) break;
      historySteps++;
      const spanFrom = Math.max(cursor.historyFromMs, cursor.coveredFromMs - HOUR_MS);
      const counts = await queryRows<{ k: number; n: string }>(deps.clickhouse, historyPerStepQuery(db, spanFrom, top), 'count history per 10 s');
      const [slice] = stepSlices(
        counts.map((c) => ({ k: Number(c.k), n: Number(c.n) })),
        spanFrom,
        top ?? Infinity,
        sliceEvents,
      );
      const sliceFrom = slice!.fromMs;
      if (counts.length > 0) {
        await items(
          ordersInRangeSql(db, sliceFrom, top),
          `build rate items of the history ${new Date(sliceFrom).toISOString()} .. ${top === null ? 'now' : new Date(top).toISOString()}`,
        );
      }
      cursor.coveredFromMs = sliceFrom;
      top = sliceFrom;
      if (cursor.coveredFromMs <= cursor.historyFromMs) cursor.historyFromMs = 0;
      if (counts.length > 0 || cursor.historyFromMs === 0) await commit();
      (historySteps > 2 ? log.info : log.debug)('rates history slice', {
        covered_from: new Date(sliceFrom).toISOString(),
        events: slice!.events,
        elapsed_ms: Date.now() - started,
      });
    }
    if (fresh && historySteps === 0) await commit();

    // 3. The closed buckets touched by the run's items (and by earlier runs' not yet written),
    // the window's and those the history pass completed; hours and days summed from them.
    const coveredFromMs = cursor.coveredFromMs;
    const touched =
      usedVersion > cursor.writtenVersion
        ? (await queryRows<{ b: number }>(deps.clickhouse, touchedSinceQuery(db, cursor.writtenVersion, usedVersion), 'read touched buckets')).map(
            (r) => Number(r.b) * 1000,
          )
        : [];
    const writeFrom = Math.max(fromMs, ceilTo5m(coveredFromMs));
    const completed = coveredFromMs < coveredAtStart ? { fromMs: coveredFromMs, toMs: coveredAtStart } : undefined;
    const writes = planWrites({ fromMs: Math.min(writeFrom, toMs), toMs }, touched, coveredFromMs, completed);
    const version = nextVersion();
    const rows = await writeBuckets(deps, { fromMs: Math.min(writeFrom, toMs), toMs, writes, version, coveredFromMs, progress: log.debug, started });
    if (usedVersion > cursor.writtenVersion) {
      cursor.writtenVersion = usedVersion;
      await commit();
    }
    complete = caughtUp && (cursor.historyFromMs === 0 || coveredFromMs <= toMs - FIVE_MIN_MS);
    const behind = { changes_behind_s: caughtUp ? 0 : server.nowSec - cursor.seenToSec, history_left: cursor.historyFromMs > 0 };
    (behind.changes_behind_s > 0 || behind.history_left ? log.info : log.debug)('rates run', {
      change_slices: changeSlices,
      history_steps: historySteps,
      ...behind,
      covered_from: new Date(coveredFromMs).toISOString(),
      buckets: writes.length,
      touched: touched.length,
      elapsed_ms: Date.now() - started,
    });
    return rows;
  });
  // Every closed bucket up to the window's end is written, once the changes are caught up and the
  // history pass has reached the latest closed bucket (or has nothing left to build).
  if (complete) deps.metrics?.ratesWrittenUntil(window.to.getTime() / 1000);
  return result;
}

const sumN = (rows: readonly { n: string }[]): number => rows.reduce((a, r) => a + Number(r.n), 0);

/**
 * Writes the 5-minute buckets `writes` (one statement per hour, all dimensions), the hours of
 * [fromMs, toMs) and those `writes` fall in once closed (from their 5-minute buckets), and the
 * closed days they fall in (from their hours); hours and days entirely before `coveredFromMs`
 * are left alone. Returns the number of rows written under `version`.
 */
async function writeBuckets(
  deps: AnalyticsDeps,
  o: {
    fromMs: number;
    toMs: number;
    writes: number[];
    version: number;
    coveredFromMs: number;
    progress: (msg: string, fields?: Record<string, unknown>) => void;
    started: number;
  },
): Promise<number> {
  const { chunks, days } = planChunks(o.fromMs, o.toMs);
  const hours = new Map<number, number[]>();
  for (const b of o.writes) hours.set(floorTo(b, 'hour'), [...(hours.get(floorTo(b, 'hour')) ?? []), b / 1000]);
  const windowHours = new Set(chunks.map((c) => floorTo(c.fiveMin.fromMs, 'hour')));
  const rollupHours = new Set<number>(chunks.flatMap((c) => (c.hourStartMs === null || c.hourStartMs + HOUR_MS <= o.coveredFromMs ? [] : [c.hourStartMs])));
  const rollupDays = new Set<number>(days.filter((d) => d + DAY_MS > o.coveredFromMs));
  for (const h of hours.keys()) {
    if (h + HOUR_MS <= o.toMs) rollupHours.add(h);
    if (floorTo(h, 'day') + DAY_MS <= o.toMs) rollupDays.add(floorTo(h, 'day'));
  }
  const writeHour = async (h: number) => {
    const buckets = hours.get(h);
    if (buckets) {
      await command(
        deps.clickhouse,
        insertBucketRatesQuery(deps.database, { fromMs: h, toMs: h + HOUR_MS, buckets, computedAt: new Date(), version: o.version }),
        `write 5m rates of ${buckets.length} buckets in ${new Date(h).toISOString()}`,
      );
    }
    if (rollupHours.has(h)) {
      await command(
        deps.clickhouse,
        insertRollupQuery(deps.database, { bucket: 'hour', startMs: h, computedAt: new Date(), version: o.version }),
        `write hour rates for ${new Date(h).toISOString()} from its 5-minute buckets`,
      );
    }
  };
  for (const [i, chunk] of chunks.entries()) {
    await writeHour(floorTo(chunk.fiveMin.fromMs, 'hour'));
    o.progress('rates chunk written', {
      chunk: i + 1,
      chunks: chunks.length,
      chunk_from: new Date(chunk.fiveMin.fromMs).toISOString(),
      elapsed_ms: Date.now() - o.started,
    });
  }
  const others = [...new Set([...hours.keys(), ...rollupHours])].filter((h) => !windowHours.has(h)).sort((a, b) => a - b);
  for (const h of others) await writeHour(h);
  for (const day of [...rollupDays].sort((a, b) => a - b)) {
    await command(
      deps.clickhouse,
      insertRollupQuery(deps.database, { bucket: 'day', startMs: day, computedAt: new Date(), version: o.version }),
      `write day rates for ${new Date(day).toISOString().slice(0, 10)} from its hours`,
    );
    o.progress('day rates written from hours', { day: new Date(day).toISOString().slice(0, 10) });
  }
  const span = [...o.writes, ...rollupHours, ...rollupDays];
  if (span.length === 0) return 0;
  const rows = await queryRows<{ n: string }>(
    deps.clickhouse,
    writtenRatesQuery(deps.database, o.version, Math.min(...span), Math.max(...span) + 1),
    'count written rates',
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * A backfill (`analytics run rates --from --to`): builds the items of its range hour by hour from
 * the orders with a payment event in that hour (read by time from payment_events), in slices of
 * at most `sliceEvents` payment events (so a statement's memory does not grow with the rate), then writes
 * every bucket of the range, with progress per hour (at info level when it has more than two or has run 10 s). When the job has a
 * cursor and the range reaches the buckets whose items are complete, they are complete from the
 * range's start on (which also ends a history pass the range covers).
 */
async function backfill(deps: AnalyticsDeps, now: Date, options: RatesRunOptions & { from: Date }): Promise<JobRun> {
  const nowMs = now.getTime();
  const fromMs = options.from.getTime();
  const toMs = floorTo(Math.min(options.to?.getTime() ?? nowMs, nowMs), '5m');
  const sliceEvents = options.sliceEvents ?? RATES_SLICE_EVENTS;
  const window = { from: new Date(fromMs), to: new Date(Math.max(fromMs, toMs)) };
  return runJob(deps, RATES_JOB, window, async () => {
    // Versions from the wall clock, strictly increasing. The slices' item versions follow the first
    // one by 1: a block below the clock-based versions of any run that starts later by more than
    // the block's size in microseconds (4,320 slices for a day at 5,000 events/s: 5 ms), so
    // marking the block written in the cursor marks no other run's items.
    let lastVersion = 0;
    const nextVersion = () => (lastVersion = Math.max(lastVersion + 1, Date.now() * 1000 + Math.floor(Math.random() * 1000)));
    const log = deps.logger.child({ job: RATES_JOB });
    const { chunks } = planChunks(fromMs, toMs);
    // A backfill of more than a couple of hours, or one past its first 10 s (an hour at 5,000
    // events/s takes minutes), reports its progress at info level.
    const started = Date.now();
    const progress = (msg: string, fields?: Record<string, unknown>) =>
      (chunks.length > 2 || Date.now() - started > 10_000 ? log.info : log.debug).call(log, msg, fields);
    const cursor = await readCursor(deps);
    const windowStart = chunks[0]?.fiveMin.fromMs ?? fromMs;
    const firstItems = nextVersion();
    let usedVersion = 0;
    let eventsTotal = 0;
    for (const [i, chunk] of chunks.entries()) {
      const { fromMs: f, toMs: t } = chunk.fiveMin;
      let slices = 0;
      let events = 0;
      if (f < t) {
        // Slices of at most sliceEvents payment events: a quarter of an hour at 5,000 events/s in one
        // statement holds over a million orders' states and needed more than 4 GiB.
        const counts = await queryRows<{ k: number; n: string }>(deps.clickhouse, historyPerStepQuery(deps.database, f, t), 'count events per 10 s');
        const planned = stepSlices(
          counts.map((c) => ({ k: Number(c.k), n: Number(c.n) })),
          f,
          t,
          sliceEvents,
        );
        for (const slice of planned) {
          if (slice.events === 0) continue;
          const version = usedVersion === 0 ? firstItems : usedVersion + 1;
          await command(
            deps.clickhouse,
            insertItemsQuery(deps.database, { orders: ordersInRangeSql(deps.database, slice.fromMs, slice.toMs), version }),
            `build rate items of ${new Date(slice.fromMs).toISOString()} .. ${new Date(slice.toMs).toISOString()}`,
          );
          usedVersion = version;
          slices++;
          events += slice.events;
          log.debug('rates items slice', {
            slice_from: new Date(slice.fromMs).toISOString(),
            slice_to: new Date(slice.toMs).toISOString(),
            events: slice.events,
          });
        }
      }
      eventsTotal += events;
      progress('rates items built', {
        chunk: i + 1,
        chunks: chunks.length,
        chunk_from: new Date(f).toISOString(),
        slices,
        events,
        events_total: eventsTotal,
        elapsed_ms: Date.now() - started,
      });
    }
    let coveredFromMs = cursor?.coveredFromMs ?? windowStart;
    if (cursor !== null && toMs >= cursor.coveredFromMs) coveredFromMs = Math.min(windowStart, cursor.coveredFromMs);
    const touched =
      usedVersion > 0
        ? (await queryRows<{ b: number }>(deps.clickhouse, touchedSinceQuery(deps.database, firstItems - 1, usedVersion), 'read touched buckets')).map(
            (r) => Number(r.b) * 1000,
          )
        : [];
    const writes = planWrites({ fromMs, toMs }, touched, coveredFromMs);
    lastVersion = Math.max(lastVersion, usedVersion);
    const version = nextVersion();
    const rows = await writeBuckets(deps, { fromMs, toMs, writes, version, coveredFromMs: -Infinity, progress, started });
    if (cursor !== null) {
      // This run wrote its own touched buckets: the scheduled runs need not again.
      const [clock] = await queryRows<{ t: number; up: string }>(deps.clickhouse, serverNowQuery, 'read server clock');
      await command(
        deps.clickhouse,
        writeCursorQuery(deps.database, RATES_JOB, {
          seenToSec: cursor.seenToSec,
          coveredFromSec: Math.floor(coveredFromMs / 1000),
          historyFromSec: cursor.historyFromMs > 0 && coveredFromMs > cursor.historyFromMs ? Math.floor(cursor.historyFromMs / 1000) : 0,
          writtenVersion: Math.max(cursor.writtenVersion, usedVersion),
          serverAtSec: Number(clock?.t),
          serverUptime: Number(clock?.up),
          version: nextVersion(),
        }),
        'move the rates cursor',
      );
    }
    log.debug('rates written', { buckets: writes.length, touched: touched.length, events: eventsTotal, elapsed_ms: Date.now() - started });
    return rows;
  });
}

interface Cursor {
  seenToSec: number;
  coveredFromMs: number;
  /** 0: no history left to build. */
  historyFromMs: number;
  writtenVersion: number;
  serverAtSec: number;
  serverUptime: number;
}

async function readCursor(deps: AnalyticsDeps): Promise<Cursor | null> {
  const [row] = await queryRows<Record<string, string | number>>(deps.clickhouse, readCursorQuery(deps.database, RATES_JOB), 'read the rates cursor');
  if (!row) return null;
  // A cursor from before migration 021 has written every bucket of its own version.
  const written = Number(row.written_version);
  return {
    seenToSec: Number(row.seen_to),
    coveredFromMs: Number(row.covered_from) * 1000,
    historyFromMs: Number(row.history_from) * 1000,
    writtenVersion: written > 0 ? written : Number(row.version),
    serverAtSec: Number(row.server_at),
    serverUptime: Number(row.server_uptime),
  };
}

async function earliestEventMs(deps: AnalyticsDeps): Promise<number | null> {
  const rows = await queryRows<{ n: string; t: number }>(deps.clickhouse, earliestPaymentQuery(deps.database), 'read earliest event');
  const row = rows[0];
  return row && Number(row.n) > 0 ? Number(row.t) * 1000 : null;
}

/**
 * The rates job's schedule and its run by hand (a backfill with --from/--to). A scheduled run
 * stops starting slices after RATES_RUN_BUDGET_MS, so a catch-up spreads over several runs; by
 * hand without --from it runs until caught up.
 */
export const ratesScheduledJob: ScheduledJob = {
  name: RATES_JOB,
  cron: '* * * * *',
  // Bounded by its budget, so it runs at RATES_PRIORITY, by default between ingest's and detection's
  // priority and the other jobs' (docs/adr/0003, docs/benchmarks.md: the rates job's priority at full size).
  bounded: true,
  run: (deps, now) => run(deps, now, { budgetMs: RATES_RUN_BUDGET_MS, finishRecentSeconds: RATES_RECENT_SECONDS }),
  byHand: {
    window: true,
    run: (deps, now, window) => run(deps, now, window),
    text: (r) => `${r.job}: ${r.status}, buckets ${r.from.toISOString()} .. ${r.to.toISOString()}, ${r.rows} rows written (run ${r.runId}).`,
  },
};
