/**
 * For the benches that need millions of stored events quickly: simulator-shaped payment traffic
 * generated inside ClickHouse (INSERT ... SELECT FROM numbers: orders with day-prefixed ids, a
 * processing event and a final status per attempt, declines and timeouts with their codes, retries
 * that succeed, refunds), and what the statements on such a store read.
 */
import { serverNowQuery } from '../analytics/rate-items.ts';
import { command, queryRows, type ClickHouseClient } from '../storage/clickhouse.ts';
import { ident, sql } from '../storage/sql.ts';

/** Events per order on average: processing + final, a retry for 10%, a refund for 5%. */
export const EVENTS_PER_ORDER = 2.15;

/**
 * INSERT ... SELECT of the events of orders [firstOrder, firstOrder + orders), three slots per
 * order (processing, final status, then a succeeded retry or refund for some); the first events of
 * orders [originOrder, originOrder + totalOrders) spread evenly over [baseSec, baseSec + spanSec).
 * `stuckPermille` of the orders (by hash, default none) get their processing event only: stuck.
 */
export function trafficSql(
  database: string,
  o: { firstOrder: number; orders: number; originOrder: number; totalOrders: number; baseSec: number; spanSec: number; prefix: string; stuckPermille?: number },
): string {
  const columns =
    'event_id, occurred_at, occurred_ms, type, status, order_id, attempt, transaction_id, amount_minor, currency, channel, merchant_id, user_id, ' +
    'device_id, ip, failure_code, source, extra, kafka_partition, kafka_offset, ingested_at';
  const rows = sql`SELECT
      i, o, slot, a,
      toUInt32(${o.baseSec} + intDiv((o - ${o.originOrder}) * ${o.spanSec}, ${o.totalOrders})) AS t0,
      slot = 2 AND a < 5 AS is_refund,
      slot = 2 AND a >= 80 AND a < 90 AS is_retry
    FROM (SELECT number + ${o.firstOrder * 3} AS i, intDiv(i, 3) AS o, i % 3 AS slot, intHash32(o) % 100 AS a FROM numbers(${o.orders * 3}))
    WHERE (slot < 2 OR (a >= 80 AND a < 90) OR a < 5) AND NOT (slot > 0 AND intHash32(o + 9) % 1000 < ${o.stuckPermille ?? 0})`;
  return `INSERT INTO ${ident(database, 'payment_events')} (${columns})
SELECT
  concat(${sql`${o.prefix}`}, 'e', toString(i)),
  toDateTime(t0 + multiIf(slot = 0, 0, slot = 1, 2, is_retry, 30, 40), 'UTC'),
  toUInt16(i % 1000),
  if(is_refund, 'refund', 'payment'),
  multiIf(slot = 0, 'processing', slot = 2, 'succeeded', a < 80, 'succeeded', a < 95, 'failed', 'timeout'),
  concat(toString(toYYYYMMDD(toDateTime(t0, 'UTC'))), ${sql`${o.prefix}`}, substring(toString(10000000000 + o), 2)),
  toUInt8(if(is_retry, 2, 1)),
  concat('tx', toString(o)),
  toUInt64(100 + intHash32(o + 7) % 100000),
  'CNY',
  arrayElement(['alipay', 'wechat_pay', 'card', 'unionpay'], intHash32(o + 1) % 4 + 1),
  concat('m', toString(intHash32(o + 2) % 50)),
  concat('u', toString(intHash32(o + 3) % 200000)),
  concat('d', toString(intHash32(o + 3) % 200000)),
  IPv4NumToString(toUInt32(167772160 + intHash32(o + 4) % 100000)),
  if(slot = 1 AND a >= 80, if(a < 95, arrayElement(['card_declined', 'insufficient_funds', 'network_error', 'system_error'], a % 4 + 1), 'timeout'), NULL),
  if(slot = 0, 'client', 'gateway_callback'),
  '',
  toUInt16(o % 6),
  toUInt64(i),
  toDateTime(t0 + 5, 'UTC')
FROM (${rows})`;
}

/**
 * The statements sent on `database` since `fromSec` (found by its name in system.query_log, so the
 * clients must log their queries): how many, the rows they read (all, and the most one read),
 * their CPU (user time) and the most memory one used.
 */
export async function statementsCost(
  admin: ClickHouseClient,
  database: string,
  fromSec: number,
): Promise<{ statements: number; rows: number; maxRows: number; cpuMs: number; maxMemory: number }> {
  await command(admin, 'SYSTEM FLUSH LOGS', 'flush query log');
  const [r] = await queryRows<{ n: string; rows: string; max_rows: string; cpu_us: string; max_mem: string }>(
    admin,
    sql`SELECT count() AS n, sum(read_rows) AS rows, max(read_rows) AS max_rows,
  sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'UserTimeMicroseconds')]) AS cpu_us, max(memory_usage) AS max_mem FROM system.query_log
WHERE type = 2 AND event_date >= toDate(toDateTime(${fromSec}, 'UTC')) AND query_start_time >= toDateTime(${fromSec}, 'UTC') AND position(query,
  ${database}) > 0 AND position(query, 'system.query_log') = 0`,
    'read query log',
  );
  return {
    statements: Number(r?.n ?? 0),
    rows: Number(r?.rows ?? 0),
    maxRows: Number(r?.max_rows ?? 0),
    cpuMs: Number(r?.cpu_us ?? 0) / 1000,
    maxMemory: Number(r?.max_mem ?? 0),
  };
}

/** ClickHouse's clock, in seconds. */
export const serverClock = async (admin: ClickHouseClient): Promise<number> =>
  Number((await queryRows<{ t: number }>(admin, serverNowQuery, 'server clock'))[0]!.t);

/**
 * Waits until ClickHouse's clock is `seconds` past its reading now: the requery job's change-log
 * read overlaps its last run by REQUERY_CHANGES_OVERLAP_SECONDS, so a history written just before
 * its first run would otherwise be read again as late reports.
 */
export async function waitServerSeconds(admin: ClickHouseClient, seconds: number): Promise<void> {
  const from = await serverClock(admin);
  while ((await serverClock(admin)) <= from + seconds) await new Promise((r) => setTimeout(r, 1_000));
}

/**
 * Runs `job` in a second of ClickHouse's clock of its own (so query_log's start times tell one
 * job's statements from the next one's) and returns its result, its wall time and statementsCost.
 */
export async function measureJob<T>(
  admin: ClickHouseClient,
  database: string,
  job: () => Promise<T>,
): Promise<{ result: T; ms: number; cost: Awaited<ReturnType<typeof statementsCost>> }> {
  const previous = await serverClock(admin);
  let since = previous;
  while (since <= previous) {
    await new Promise((r) => setTimeout(r, 100));
    since = await serverClock(admin);
  }
  const t = performance.now();
  const result = await job();
  const ms = performance.now() - t;
  return { result, ms, cost: await statementsCost(admin, database, since) };
}
