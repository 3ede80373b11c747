import { validateEvent } from '../contract/index.ts';
import { toPendingRow, lineOf } from '../ingest/records.ts';
import type { ClickHouseHttp } from '../storage/http.ts';
import { ident, type SqlFragment, toDateTimeText } from '../storage/sql.ts';
import { retry } from '../errors/index.ts';
import { createTrafficGenerator } from '../simulator/generate.ts';

export interface BacklogOptions {
  /** Benign events, each from its own IP, device, user and order. */
  events: number;
  /** Event times are spread over the 5 minutes before this, when the rows count as written. */
  nowMs: number;
  /** Kafka partitions the rows are spread over (as ingest writes them). @default 3 */
  partitions?: number;
  /** When set, 15 declined attempts at 15 amounts from this IP (card testing) come last. */
  attackIp?: string;
  onProgress?: (written: number) => void;
}

/**
 * One insert of generated rows, sent again when ClickHouse could not be reached (typically a
 * kept-alive socket the server closed after its 3 s idle timeout, on a busy machine). These
 * rows are bench and test data written once, not a pipeline guarantee: ingest has its own
 * retries behind the dedup look-up.
 */
export function insert(http: ClickHouseHttp, table: SqlFragment, lines: readonly string[], what: string): Promise<void> {
  return retry(() => http.insertLines(table, lines, what), { retries: 5 });
}

/**
 * Writes a detection backlog straight into payment_events, as ingest would have stored it:
 * `events` payments that each touch a new IP, device, user and order (the worst case for
 * per-entity work), plus optionally one card-testing burst. Rows are built and inserted in
 * chunks, so the writer itself stays small. Returns the number of rows written.
 */
export async function writeBacklog(http: ClickHouseHttp, database: string, options: BacklogOptions): Promise<number> {
  const partitions = options.partitions ?? 3;
  const table = ident(database, 'payment_events');
  const ingestedAt = toDateTimeText(options.nowMs);
  const spread = 300_000;
  const offsets = new Array<number>(partitions).fill(0);
  const line = (i: number, event: Record<string, unknown>): string => {
    const checked = validateEvent(event);
    if (!checked.ok) throw new Error(`backlog event ${i} is invalid: ${checked.reason}`);
    const p = i % partitions;
    return lineOf(toPendingRow(checked.value, p, offsets[p]!++), ingestedAt);
  };
  const benign = (i: number) => ({
    event_id: `bl-${i}`,
    occurred_at: new Date(options.nowMs - spread + Math.floor((i * spread) / Math.max(1, options.events))).toISOString(),
    type: 'payment',
    status: 'succeeded',
    order_id: `bl-order-${i}`,
    attempt: 1,
    transaction_id: `bl-tx-${i}`,
    amount_minor: 1000 + (i % 5000),
    currency: 'CNY',
    channel: ['alipay', 'wechat_pay', 'card'][i % 3],
    merchant_id: `m-${i % 50}`,
    user_id: `bl-user-${i}`,
    device_id: `bl-device-${i}`,
    ip: `${10 + ((i >>> 24) & 0xff)}.${(i >>> 16) & 0xff}.${(i >>> 8) & 0xff}.${i & 0xff}`,
    source: 'gateway_callback',
  });
  const chunk = 50_000;
  let written = 0;
  for (let start = 0; start < options.events; start += chunk) {
    const lines: string[] = [];
    for (let i = start; i < Math.min(options.events, start + chunk); i++) lines.push(line(i, benign(i)));
    await insert(http, table, lines, 'backlog insert');
    written += lines.length;
    options.onProgress?.(written);
  }
  if (options.attackIp) {
    const lines: string[] = [];
    for (let k = 0; k < 15; k++) {
      lines.push(
        line(options.events + k, {
          ...benign(options.events + k),
          event_id: `bl-attack-${k}`,
          occurred_at: new Date(options.nowMs - 60_000 + k * 1000).toISOString(),
          status: 'failed',
          failure_code: 'insufficient_funds',
          amount_minor: 100 + k * 7,
          ip: options.attackIp,
        }),
      );
    }
    await insert(http, table, lines, 'backlog attack insert');
    written += lines.length;
  }
  return written;
}

export interface HistoryOptions {
  /** Events to store (simulator traffic, all kinds of event, redeliveries skipped). */
  events: number;
  /** Event times run over the `spreadMs` before this. */
  nowMs: number;
  spreadMs: number;
  /** When the rows count as written (ingested_at). */
  ingestedAtMs: number;
  /** Kafka partitions the rows are spread over (as ingest writes them). @default 6 */
  partitions?: number;
  seed?: number;
  onProgress?: (written: number) => void;
}

/**
 * Writes simulator traffic straight into payment_events, as ingest would have stored it: the
 * customers, IPs and devices of a real run, whose keys interleave with those of the traffic
 * that follows (unlike writeBacklog's, which sort apart from everything else). That is what a
 * store holds after sustained traffic, so reads by entity meet their neighbours' rows.
 */
export async function writeSimulatedHistory(http: ClickHouseHttp, database: string, options: HistoryOptions): Promise<number> {
  const partitions = options.partitions ?? 6;
  const table = ident(database, 'payment_events');
  const ingestedAt = toDateTimeText(options.ingestedAtMs);
  const generator = createTrafficGenerator({
    seed: options.seed ?? 17,
    rate: (options.events * 1000) / options.spreadMs,
    durationMs: options.spreadMs,
    startMs: options.nowMs - options.spreadMs,
  });
  const offsets = new Array<number>(partitions).fill(0);
  let written = 0;
  let taken = 0;
  let lines: string[] = [];
  const flush = async () => {
    // Building 50,000 events takes longer than ClickHouse keeps an idle socket open: a write on
    // a socket it closed fails before anything is sent, and is sent again on a fresh one.
    for (let attempt = 1; ; attempt++) {
      try {
        await insert(http, table, lines, 'history insert');
        break;
      } catch (err) {
        if (attempt >= 3 || !(err as { retriable?: boolean }).retriable) throw err;
      }
    }
    written += lines.length;
    lines = [];
    options.onProgress?.(written);
  };
  for (let item = generator.next(); item && written + lines.length < options.events; item = generator.next()) {
    if (item.kind !== 'event' || !item.event) continue;
    const checked = validateEvent(item.event);
    if (!checked.ok) throw new Error(`simulated event is invalid: ${checked.reason}`);
    const p = taken++ % partitions;
    lines.push(lineOf(toPendingRow(checked.value, p, offsets[p]!++), ingestedAt));
    if (lines.length >= 50_000) await flush();
    // Lets the HTTP client's timers run, so it drops sockets the server is about to close.
    else if (lines.length % 5_000 === 0) await new Promise((r) => setImmediate(r));
  }
  await flush();
  return written;
}
