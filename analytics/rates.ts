import { command, queryRows } from '../storage/clickhouse.ts';
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
  insertBucketRatesQuery,
  insertItemsQuery,
  ordersInRangeSql,
  readCursorQuery,
  serverNowQuery,
  touchedBucketsQuery,
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

/** The buckets (epoch ms) a run writes: every bucket of its window, and the closed, complete buckets its changes touched. */
export function planWrites(window: { fromMs: number; toMs: number }, touchedMs: readonly number[], coveredFromMs: number): number[] {
  const out = new Set<number>();
  for (let b = floorTo(window.fromMs, '5m'); b < window.toMs; b += FIVE_MIN_MS) out.add(b);
  for (const b of touchedMs) if (b >= coveredFromMs && b + FIVE_MIN_MS <= window.toMs) out.add(b);
  return [...out].sort((a, b) => a - b);
}

const FIVE_MIN_MS = bucketSizes['5m'] * 1000;

/**
 * The `rates` job, incremental (docs/adr/0003). Each run
 * 1. turns the orders that changed since the last run (payment_changes, by ClickHouse's insert
 *    clock) into items: what each of their attempts and each order adds to its 5-minute bucket,
 *    from the attempts' aggregate states, never from their events;
 * 2. restates the closed buckets those items touched (a late callback restates its own bucket),
 *    plus every bucket of its window (since the last successful run, and the last `restateMs`),
 *    all dimensions in one statement per hour;
 * 3. sums the touched hours from their 5-minute buckets and the touched days from their hours.
 * A backfill (`from`), a first run, or a window reaching before the buckets whose items are
 * complete, first builds the items of its window hour by hour from the orders with a payment event
 * in that hour (read by time from payment_events), so its cost follows the events of the range.
 * Progress is logged per hour when the window has more than two. Recorded in job_runs.
 */
export async function run(deps: AnalyticsDeps, now: Date, options: RatesRunOptions = {}): Promise<JobRun> {
  const nowMs = now.getTime();
  const backfill = options.from !== undefined;
  let fromMs: number;
  if (options.from) {
    fromMs = options.from.getTime();
  } else {
    const last = await lastSuccessfulWindowEnd(deps, RATES_JOB);
    const earliest = last === null ? await earliestEventMs(deps) : null;
    fromMs = planStart(nowMs, last?.getTime() ?? null, earliest, options.restateMs ?? 0);
  }
  const toMs = floorTo(Math.min(options.to?.getTime() ?? nowMs, nowMs), '5m');
  const window = { from: new Date(fromMs), to: new Date(Math.max(fromMs, toMs)) };
  const result = await runJob(deps, RATES_JOB, window, async () => {
    // One version per run, from the wall clock (not `now`, which a backfill sets to the past):
    // readers keep the latest run's rows of each bucket. Stays below 2^53.
    const version = Date.now() * 1000 + Math.floor(Math.random() * 1000);
    const log = deps.logger.child({ job: RATES_JOB });
    const { chunks, days } = planChunks(fromMs, toMs);
    // A catch-up of more than a couple of hours reports its progress at info level, a routine run at debug.
    const progress = chunks.length > 2 ? log.info : log.debug;
    const started = Date.now();
    const cursor = await readCursor(deps);
    const serverNow = Number((await queryRows<{ t: number }>(deps.clickhouse, serverNowQuery, 'read server clock'))[0]?.t);
    const windowStart = chunks[0]?.fiveMin.fromMs ?? fromMs;
    const items = (orders: string, what: string) => command(deps.clickhouse, insertItemsQuery(deps.database, { orders, version }), what);

    // 1. Items. The window's own orders when its items may be incomplete; then what changed.
    const rebuild = backfill || cursor === null || windowStart < cursor.coveredFromMs;
    if (rebuild) {
      for (const [i, chunk] of chunks.entries()) {
        const { fromMs: f, toMs: t } = chunk.fiveMin;
        if (f < t) await items(ordersInRangeSql(deps.database, f, t), `build rate items of ${new Date(f).toISOString()} .. ${new Date(t).toISOString()}`);
        progress('rates items built', { chunk: i + 1, chunks: chunks.length, chunk_from: new Date(f).toISOString(), elapsed_ms: Date.now() - started });
      }
      // A first run covers every order seen since its window began, also in the open bucket.
      if (cursor === null && !backfill) await items(ordersInRangeSql(deps.database, toMs, null), 'build rate items after the window');
    }
    if (cursor !== null && !backfill) {
      // Up to and including the current second: its later rows are read again next run (overlap).
      for (let s = cursor.seenToSec; s <= serverNow; s += CHANGES_SLICE_SECONDS) {
        const e = Math.min(s + CHANGES_SLICE_SECONDS, serverNow + 1);
        await items(
          changedOrdersSql(deps.database, s, e),
          `build rate items of the orders changed ${new Date(s * 1000).toISOString()} .. ${new Date(e * 1000).toISOString()}`,
        );
      }
    }
    // Items are complete from coveredFrom on: a rebuilt window extends that when it reaches it.
    let coveredFromMs = cursor?.coveredFromMs ?? windowStart;
    if (rebuild && cursor !== null && toMs >= cursor.coveredFromMs) coveredFromMs = Math.min(windowStart, cursor.coveredFromMs);

    // 2. 5-minute buckets, one statement per hour; 3. hours and days summed from them.
    const touched = (await queryRows<{ b: number }>(deps.clickhouse, touchedBucketsQuery(deps.database, version), 'read touched buckets')).map(
      (r) => Number(r.b) * 1000,
    );
    const writes = planWrites({ fromMs, toMs }, touched, coveredFromMs);
    const hours = new Map<number, number[]>();
    for (const b of writes) hours.set(floorTo(b, 'hour'), [...(hours.get(floorTo(b, 'hour')) ?? []), b / 1000]);
    const windowHours = new Set(chunks.map((c) => floorTo(c.fiveMin.fromMs, 'hour')));
    const rollupHours = new Set<number>(chunks.flatMap((c) => (c.hourStartMs === null ? [] : [c.hourStartMs])));
    const rollupDays = new Set<number>(days);
    for (const h of hours.keys()) {
      if (h + HOUR_MS <= toMs) rollupHours.add(h);
      if (floorTo(h, 'day') + DAY_MS <= toMs) rollupDays.add(floorTo(h, 'day'));
    }
    const writeHour = async (h: number) => {
      const buckets = hours.get(h);
      if (buckets) {
        await command(
          deps.clickhouse,
          insertBucketRatesQuery(deps.database, { fromMs: h, toMs: h + HOUR_MS, buckets, computedAt: new Date(), version }),
          `write 5m rates of ${buckets.length} buckets in ${new Date(h).toISOString()}`,
        );
      }
      if (rollupHours.has(h)) {
        await command(
          deps.clickhouse,
          insertRollupQuery(deps.database, { bucket: 'hour', startMs: h, computedAt: new Date(), version }),
          `write hour rates for ${new Date(h).toISOString()} from its 5-minute buckets`,
        );
      }
    };
    // The window's hours in order, with progress; then the earlier or later hours only changes touched.
    for (const [i, chunk] of chunks.entries()) {
      await writeHour(floorTo(chunk.fiveMin.fromMs, 'hour'));
      progress('rates chunk written', {
        chunk: i + 1,
        chunks: chunks.length,
        chunk_from: new Date(chunk.fiveMin.fromMs).toISOString(),
        elapsed_ms: Date.now() - started,
      });
    }
    const others = [...new Set([...hours.keys(), ...rollupHours])].filter((h) => !windowHours.has(h)).sort((a, b) => a - b);
    for (const h of others) await writeHour(h);
    for (const day of [...rollupDays].sort((a, b) => a - b)) {
      await command(
        deps.clickhouse,
        insertRollupQuery(deps.database, { bucket: 'day', startMs: day, computedAt: new Date(), version }),
        `write day rates for ${new Date(day).toISOString().slice(0, 10)} from its hours`,
      );
      progress('day rates written from hours', { day: new Date(day).toISOString().slice(0, 10) });
    }
    if (!backfill || cursor !== null) {
      const seenToSec = backfill ? cursor!.seenToSec : Math.max(cursor?.seenToSec ?? 0, serverNow - (options.changesOverlapSeconds ?? CHANGES_OVERLAP_SECONDS));
      await command(
        deps.clickhouse,
        writeCursorQuery(deps.database, RATES_JOB, { seenToSec, coveredFromSec: Math.floor(coveredFromMs / 1000), version }),
        'move the rates cursor',
      );
    }
    const span = [...writes, ...rollupHours, ...rollupDays];
    if (span.length === 0) return 0;
    const rows = await queryRows<{ n: string }>(
      deps.clickhouse,
      writtenRatesQuery(deps.database, version, Math.min(...span), Math.max(...span) + 1),
      'count written rates',
    );
    log.debug('rates written', {
      buckets: writes.length,
      touched: touched.length,
      hours: rollupHours.size,
      days: rollupDays.size,
      elapsed_ms: Date.now() - started,
    });
    return Number(rows[0]?.n ?? 0);
  });
  // Every closed bucket up to the window's end is written (a backfill of the past proves nothing about now).
  if (!backfill) deps.metrics?.ratesWrittenUntil(window.to.getTime() / 1000);
  return result;
}

interface Cursor {
  seenToSec: number;
  coveredFromMs: number;
}

async function readCursor(deps: AnalyticsDeps): Promise<Cursor | null> {
  const [row] = await queryRows<{ seen_to: number; covered_from: number }>(deps.clickhouse, readCursorQuery(deps.database, RATES_JOB), 'read the rates cursor');
  return row ? { seenToSec: Number(row.seen_to), coveredFromMs: Number(row.covered_from) * 1000 } : null;
}

async function earliestEventMs(deps: AnalyticsDeps): Promise<number | null> {
  const rows = await queryRows<{ n: string; t: number }>(deps.clickhouse, earliestPaymentQuery(deps.database), 'read earliest event');
  const row = rows[0];
  return row && Number(row.n) > 0 ? Number(row.t) * 1000 : null;
}

/** The rates job's schedule and its run by hand (a backfill with --from/--to). */
export const ratesScheduledJob: ScheduledJob = {
  name: RATES_JOB,
  cron: '* * * * *',
  run: (deps, now) => run(deps, now),
  byHand: {
    window: true,
    run: (deps, now, window) => run(deps, now, window),
    text: (r) => `${r.job}: ${r.status}, buckets ${r.from.toISOString()} .. ${r.to.toISOString()}, ${r.rows} rows written (run ${r.runId}).`,
  },
};
