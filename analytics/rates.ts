import { command, queryRows } from '../storage/clickhouse.ts';
import { lastSuccessfulWindowEnd, runJob, type AnalyticsDeps, type JobRun } from './jobs.ts';
import {
  bucketSizes,
  countColumns,
  dimensions,
  earliestPaymentQuery,
  insertRollupQuery,
  insertRatesQuery,
  rateColumns,
  ratesQuery,
  storedRatesQuery,
  type BucketSize,
  writtenRowsQuery,
  type Dimension,
} from './queries.ts';

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
  const query = ratesQuery(deps.database, { fromMs: options.from.getTime(), toMs: options.to.getTime(), dimension: options.by ?? 'all', bucket: options.bucket });
  return (await queryRows<Record<string, unknown>>(deps.clickhouse, query, 'compute rates')).map(toRateRow);
}

/** Rates the `rates` job stored in payment_rates for buckets starting in [from, to). */
export async function readStoredRates(
  deps: Pick<AnalyticsDeps, 'clickhouse' | 'database'>,
  options: { from: Date; to: Date; by?: Dimension; bucket: BucketSize },
): Promise<RateRow[]> {
  const query = storedRatesQuery(deps.database, { fromMs: options.from.getTime(), toMs: options.to.getTime(), dimension: options.by ?? 'all', bucket: options.bucket });
  return (await queryRows<Record<string, unknown>>(deps.clickhouse, query, 'read stored rates')).map(toRateRow);
}

export const RATES_JOB = 'rates';

/** How far back every run recomputes closed buckets, so late callbacks and corrections land. @default 1 hour */
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
 * Where an automatic run starts: the end of the last successful run (so downtime is caught up
 * bucket by bucket), but never later than `restateMs` before now, so recent buckets are recomputed
 * while late status changes still arrive. A first run starts at the day of the earliest event.
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
  /** @default DEFAULT_RESTATE_MS */
  restateMs?: number;
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

/**
 * The `rates` job: writes every closed 5-minute, hour and day bucket since the last successful run
 * (and the last `restateMs`) into payment_rates, for every dimension, in ClickHouse. The work goes
 * hour by hour (planChunks), so a long catch-up or backfill never sends one statement over a whole
 * day, and progress is logged. Only 5-minute buckets are computed from payment_events; an hour
 * bucket is the sum of its stored 5-minute buckets, a day bucket the sum of its hours. Re-running
 * a bucket replaces it (see storedRatesQuery). Recorded in job_runs.
 */
export async function run(deps: AnalyticsDeps, now: Date, options: RatesRunOptions = {}): Promise<JobRun> {
  const nowMs = now.getTime();
  let fromMs: number;
  if (options.from) {
    fromMs = options.from.getTime();
  } else {
    const last = await lastSuccessfulWindowEnd(deps, RATES_JOB);
    const earliest = last === null ? await earliestEventMs(deps) : null;
    fromMs = planStart(nowMs, last?.getTime() ?? null, earliest, options.restateMs);
  }
  const toMs = floorTo(Math.min(options.to?.getTime() ?? nowMs, nowMs), '5m');
  const window = { from: new Date(fromMs), to: new Date(Math.max(fromMs, toMs)) };
  return runJob(deps, RATES_JOB, window, async () => {
    // One version per run, from the wall clock (not `now`, which a backfill sets to the past):
    // readers keep the latest run's rows of each bucket. Stays below 2^53.
    const version = Date.now() * 1000 + Math.floor(Math.random() * 1000);
    const { chunks, days } = planChunks(fromMs, toMs);
    // A catch-up of more than a couple of hours reports its progress at info level, a routine run at debug.
    const log = deps.logger.child({ job: RATES_JOB });
    const progress = chunks.length > 2 ? log.info : log.debug;
    const started = Date.now();
    const write = async (bucket: BucketSize, from: number, to: number) => {
      for (const dimension of dimensions) {
        await command(
          deps.clickhouse,
          insertRatesQuery(deps.database, { fromMs: from, toMs: to, bucket, dimension, computedAt: new Date(), version }),
          `write ${bucket} rates by ${dimension} for ${new Date(from).toISOString()} .. ${new Date(to).toISOString()}`,
        );
      }
    };
    for (const [i, chunk] of chunks.entries()) {
      if (chunk.fiveMin.fromMs < chunk.fiveMin.toMs) await write('5m', chunk.fiveMin.fromMs, chunk.fiveMin.toMs);
      if (chunk.hourStartMs !== null) {
        await command(
          deps.clickhouse,
          insertRollupQuery(deps.database, { bucket: 'hour', startMs: chunk.hourStartMs, computedAt: new Date(), version }),
          `write hour rates for ${new Date(chunk.hourStartMs).toISOString()} from its 5-minute buckets`,
        );
      }
      progress('rates chunk written', { chunk: i + 1, chunks: chunks.length, chunk_from: new Date(chunk.fiveMin.fromMs).toISOString(), elapsed_ms: Date.now() - started });
    }
    for (const day of days) {
      await command(deps.clickhouse, insertRollupQuery(deps.database, { bucket: 'day', startMs: day, computedAt: new Date(), version }), `write day rates for ${new Date(day).toISOString().slice(0, 10)} from its hours`);
      progress('day rates written from hours', { day: new Date(day).toISOString().slice(0, 10) });
    }
    const rows = await queryRows<{ n: string }>(deps.clickhouse, writtenRowsQuery(deps.database, version), 'count written rates');
    return Number(rows[0]?.n ?? 0);
  });
}

async function earliestEventMs(deps: AnalyticsDeps): Promise<number | null> {
  const rows = await queryRows<{ n: string; t: number }>(deps.clickhouse, earliestPaymentQuery(deps.database), 'read earliest event');
  const row = rows[0];
  return row && Number(row.n) > 0 ? Number(row.t) * 1000 : null;
}
