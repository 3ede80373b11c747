import type { EventFilter } from '../rules/schema.ts';
import { queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { eventsByPosition } from '../storage/copies.ts';
import { identList, joinSql, sql, sqlFragment, type SqlFragment } from '../storage/sql.ts';
import { writtenBy } from './query-parts.ts';

/**
 * Which rows are new to detection. They are found by Kafka position, not by time: per
 * partition, every offset above the last one seen. Instances write batches of a partition in
 * offset order, whereas a clock-based watermark would skip a batch that took longer to land than
 * another instance's later one. ingested_at (the write attempt's time) only bounds the scan.
 */

/** How far back (by write time) a tick scans for rows above the offsets it has seen. A write attempt lasts at most the 30 s request timeout. */
const SCAN_WINDOW_MS = 120_000;

/** Rows (of the copy ordered by position, storage/copies.ts) whose Kafka position is above `seen` and at most `newest`, per partition. */
export function positionRange(seen: ReadonlyMap<number, number>, newest: ReadonlyMap<number, number>): SqlFragment {
  const parts = [...newest]
    .filter(([p, o]) => o > (seen.get(p) ?? -1))
    .map(([p, o]) => sqlFragment`(kafka_partition = ${p} AND kafka_offset > ${seen.get(p) ?? -1} AND kafka_offset <= ${o})`);
  return parts.length ? sqlFragment`(${joinSql(parts, ' OR ')})` : sqlFragment`0`;
}

/**
 * Positions above `seen`: per partition, every offset above the last one seen; all of a
 * partition not in it. The partitions not seen are written as ranges between the seen ones
 * (not `NOT IN`), so ClickHouse can use the position order for every part of the condition.
 */
function aboveSeen(seen: ReadonlyMap<number, number>): SqlFragment {
  const known = [...seen.keys()].sort((a, b) => a - b);
  const above = known.map((p) => sqlFragment`(kafka_partition = ${p} AND kafka_offset > ${seen.get(p)!})`);
  const gaps = known.map((p, i) =>
    i === 0 ? sqlFragment`kafka_partition < ${p}` : sqlFragment`(kafka_partition > ${known[i - 1]!} AND kafka_partition < ${p})`,
  );
  gaps.push(known.length ? sqlFragment`kafka_partition > ${known[known.length - 1]!}` : sqlFragment`1`);
  return sqlFragment`(${joinSql([...above, ...gaps], ' OR ')})`;
}

/**
 * Per partition, the oldest and newest Kafka offset written since `sinceSec` above the ones seen
 * and how many rows, with the channels and merchants of those rows. `occurredFromSec` leaves out
 * rows older than every feature window (they change no feature) and lets ClickHouse read only
 * the recent range of the primary key. `untilSec` limits rows to those written by then (a
 * backtest replays what a live tick would have seen).
 */
export function newRowsQuery(database: string, sinceSec: number, seen: ReadonlyMap<number, number>, untilSec?: number, occurredFromSec?: number): string {
  const relevant = occurredFromSec === undefined ? sqlFragment`` : sqlFragment` AND occurred_at >= toDateTime(${occurredFromSec}, 'UTC')`;
  return sql`SELECT kafka_partition AS p, min(kafka_offset) AS lo, max(kafka_offset) AS o, count() AS n,
    groupUniqArray(channel) AS channels, groupUniqArray(merchant_id) AS merchants
    FROM ${eventsByPosition(database)}
    WHERE ingested_at >= toDateTime(${sinceSec}, 'UTC')${writtenBy(untilSec)}${relevant} AND ${aboveSeen(seen)}
    GROUP BY p`;
}

/** Fields of an event that newKeysQuery returns besides the keys: every field a feature filter can test (rules/schema.ts EventFilter; see mayMatch). */
export const NEW_ROW_FILTER_FIELDS = ['type', 'status', 'failure_code', 'source'] as const;

/** One new row as newKeysQuery returns it: its IP, device, user and order, and NEW_ROW_FILTER_FIELDS. */
export type NewKeyRow = Readonly<Record<string, string | null>>;

/** The IP, device, user and order of every new row at `position` (see positionRange), one row each, with NEW_ROW_FILTER_FIELDS. */
export function newKeysQuery(database: string, sinceSec: number, position: SqlFragment, untilSec?: number): string {
  return sql`SELECT ip, device_id, user_id, order_id, ${identList(NEW_ROW_FILTER_FIELDS)} FROM ${eventsByPosition(database)}
    WHERE ${position} AND ingested_at >= toDateTime(${sinceSec}, 'UTC')${writtenBy(untilSec)}`;
}

/**
 * Whether an event with these fields may match `filter`: false only when a field the row has
 * rules it out. A filter on a field the row lacks may match (a new row from newKeysQuery has
 * only the keys and NEW_ROW_FILTER_FIELDS), so counting rows with it never undercounts.
 */
export function mayMatch(row: NewKeyRow, filter: EventFilter | undefined): boolean {
  if (!filter) return true;
  for (const [field, allowed] of Object.entries(filter)) {
    if (!(field in row)) continue;
    const v = row[field];
    if (typeof v !== 'string' || !(allowed as string[]).includes(v)) return false;
  }
  return true;
}

/** Partitions with new rows, as newRowsQuery returns them. */
export interface PartitionRows {
  p: number;
  lo: string;
  o: string;
  n: string;
  channels: string[];
  merchants: string[];
}

/**
 * The rows a tick takes of `partitions`: at most `maxRows`, split evenly over the partitions
 * with new rows; per partition, the offset up to which it takes them.
 */
export function takeShare(
  previous: ReadonlyMap<number, number>,
  partitions: readonly PartitionRows[],
  maxRows: number,
): { newest: Map<number, number>; taken: number; behind: boolean } {
  // Offsets of a partition only grow, so taking offsets up to base + share takes at most `share` rows.
  const share = Math.max(1, Math.floor(maxRows / Math.max(1, partitions.length)));
  const newest = new Map(previous);
  let taken = 0;
  let behind = false;
  for (const r of partitions) {
    const p = Number(r.p);
    const n = Number(r.n);
    // Offsets below the oldest new row are gaps or rows too old to matter: start the share at it.
    const base = Math.max(previous.get(p) ?? -1, Number(r.lo) - 1);
    if (n > share) behind = true;
    newest.set(p, n > share ? Math.min(Number(r.o), base + share) : Number(r.o));
    taken += Math.min(n, share);
  }
  return { newest, taken, behind };
}

/** The new rows one tick takes. */
export interface NewRows {
  /** Write time (epoch seconds) the scan started from: the rows' reads start there too. */
  sinceSec: number;
  /** The rows taken, as a condition on Kafka position (positionRange). */
  position: SqlFragment;
  /** Whether any partition had new rows. */
  any: boolean;
  taken: number;
  /** Whether rows were left for the next tick (detection has a backlog). */
  behind: boolean;
  /** `channel|<id>` and `merchant|<id>` of the partitions with new rows: the context their entities need. */
  contextKeys: Set<string>;
  /** Per partition, the highest offset taken: the watermark once the tick succeeds. */
  newest: Map<number, number>;
}

export interface PositionsDeps {
  clickhouse: ClickHouseClient;
  database: string;
  /** How far back a new leader looks for rows. @default 10 minutes */
  startLookbackMs?: number;
  /** Rows written before this time (epoch seconds) are never new (a backtest's start). */
  writtenFrom?: number;
  /** At most this many new rows per tick. @default 50_000 */
  maxRowsPerTick?: number;
}

/**
 * The offsets detection has taken per partition (the watermark), and while it is behind, the
 * write time the scan keeps starting from. Advanced only once a tick's cases are stored and
 * published, so a failed tick takes the same rows again.
 */
export function createPositions(deps: PositionsDeps) {
  /** Highest Kafka offset taken per partition; null until the first tick as leader. */
  let seen: Map<number, number> | null = null;
  /** While behind, the scan keeps starting where the rows not yet taken were written. */
  let backlogFromSec: number | null = null;

  return {
    /** The rows new since the watermark, up to the tick's share; `untilSec` and `occurredFromSec` as in newRowsQuery. */
    async scan(nowMs: number, untilSec: number | undefined, occurredFromSec: number): Promise<NewRows> {
      const previous = seen ?? new Map<number, number>();
      const window = Math.floor((nowMs - (seen === null ? (deps.startLookbackMs ?? 600_000) : SCAN_WINDOW_MS)) / 1000);
      const sinceSec = Math.max(deps.writtenFrom ?? 0, Math.min(window, backlogFromSec ?? window));
      const partitions = await queryRows<PartitionRows>(
        deps.clickhouse,
        newRowsQuery(deps.database, sinceSec, previous, untilSec, occurredFromSec),
        'new rows',
      );
      const { newest, taken, behind } = takeShare(previous, partitions, deps.maxRowsPerTick ?? 50_000);
      return {
        sinceSec,
        position: positionRange(previous, newest),
        any: partitions.length > 0,
        taken,
        behind,
        contextKeys: new Set(partitions.flatMap((r) => [...r.channels.map((c) => `channel|${c}`), ...r.merchants.map((m) => `merchant|${m}`)])),
        newest,
      };
    },
    /** Moves the watermark past `rows`: called once their tick's cases are stored and published. */
    advance(rows: NewRows): void {
      seen = rows.newest;
      backlogFromSec = rows.behind ? rows.sinceSec : null;
    },
    /** Leadership lost: a new leadership starts from its look-back. */
    reset(): void {
      seen = null;
      backlogFromSec = null;
    },
  };
}
export type Positions = ReturnType<typeof createPositions>;
