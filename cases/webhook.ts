/**
 * Case webhook: every message of the cases topic is POSTed, signed, to `CASE_WEBHOOK_URL`.
 *
 * Delivery is a Kafka consumer group (`<KAFKA_GROUP_ID>-webhook`) on the cases topic. A
 * message's offset is committed only after the receiver answered 2xx, so the committed offset
 * is the delivery state: after a crash, a restart or a rebalance, delivery resumes from there.
 * That makes delivery at-least-once: a receiver can see the same case version twice and must
 * dedupe on `case_id` + `version` (both in the body). Cases are keyed by `case_id`, so all
 * versions of one case share a partition and arrive in order.
 *
 * Request: `POST` with the message value as the body (`application/json`, one case version) and
 *   - `X-Paysentinel-Timestamp`: unix seconds when this attempt was sent;
 *   - `X-Paysentinel-Signature`: `sha256=` + hex HMAC-SHA256(secret, `<timestamp>.<raw body>`);
 *   - `X-Paysentinel-Case-Id`, `X-Paysentinel-Delivery` (`topic/partition/offset`) for logs.
 * Receivers recompute the signature over the raw bytes (`verifyWebhook`) and reject timestamps
 * more than 5 minutes away from their clock, so a captured request cannot be replayed later.
 * Each attempt is signed afresh, so a retry after a long outage still passes that check.
 *
 * Answers: 2xx = delivered. 408, 425, 429, 5xx, timeouts and network errors = retried with
 * exponential backoff and jitter (honouring `Retry-After`) until delivered or stopped; later
 * cases of the same partition wait, which keeps per-case order. Any other answer (3xx, 4xx)
 * means the receiver refuses this request and resending the same bytes cannot change that, so
 * it is logged at error level with case, version and offset, counted as rejected, and skipped
 * rather than blocking every later case. Re-send skipped cases by resetting the group's offset.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Consumer, Kafka } from 'kafkajs';
import { PaysentinelError, backoffDelay, delay } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { Registry } from '../metrics/registry.ts';

export const SIGNATURE_HEADER = 'x-paysentinel-signature';
export const TIMESTAMP_HEADER = 'x-paysentinel-timestamp';

/** `sha256=<hex>` of HMAC-SHA256 over `<timestampSec>.<body>`. */
export function signWebhook(secret: string, timestampSec: number | string, body: string | Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestampSec}.`).update(body).digest('hex');
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

export interface VerifyInput {
  secret: string;
  /** The raw request body, exactly as received (not re-serialised JSON). */
  body: string | Buffer;
  timestamp: string | string[] | undefined;
  signature: string | string[] | undefined;
  /** @default Date.now() */
  nowMs?: number;
  /** How far the timestamp may be from now. @default 300 */
  toleranceSec?: number;
}

/** What a receiver runs on each request: signature and freshness, in constant time. */
export function verifyWebhook(input: VerifyInput): VerifyResult {
  const { timestamp, signature } = input;
  if (typeof timestamp !== 'string' || !/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'missing or malformed timestamp header' };
  const skewSec = Math.abs((input.nowMs ?? Date.now()) / 1000 - Number(timestamp));
  if (skewSec > (input.toleranceSec ?? 300)) return { ok: false, reason: 'timestamp too old or in the future (replay?)' };
  if (typeof signature !== 'string') return { ok: false, reason: 'missing signature header' };
  const expected = Buffer.from(signWebhook(input.secret, timestamp, input.body));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature does not match' };
  return { ok: true };
}

/** How an HTTP status is handled: see the module comment. */
export function classifyStatus(status: number): 'delivered' | 'retry' | 'rejected' {
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 408 || status === 425 || status === 429 || status >= 500) return 'retry';
  return 'rejected';
}

/** `Retry-After` in ms (seconds or an HTTP date), undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, nowMs = Date.now()): number | undefined {
  if (!header) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

type Attempt =
  | { kind: 'delivered'; status: number }
  | { kind: 'retry'; reason: string; retryAfterMs?: number }
  | { kind: 'rejected'; status: number; reason: string };

export interface CaseWebhookOptions {
  kafka: Kafka;
  /** The cases topic. */
  topic: string;
  /** Consumer group holding the delivery state, `<KAFKA_GROUP_ID>-webhook` in the pipeline. */
  groupId: string;
  url: string;
  secret: string;
  logger: Logger;
  /** Where the delivery counters go (the pipeline's /metrics registry). @default a private one */
  registry?: Registry;
  /** Bound on one POST, response included. @default 10000 */
  timeoutMs?: number;
  /** First retry delay. @default 500 */
  initialDelayMs?: number;
  /** Longest delay between retries. @default 30000 */
  maxDelayMs?: number;
}

export interface CaseWebhook {
  /** Aborts in-flight POSTs (their offsets stay uncommitted, so they are re-sent later) and leaves the group. */
  stop(): Promise<void>;
  /** Resolves when the consumer stopped for good by itself. */
  readonly failed: Promise<Error>;
}

// Waits longer than this are split so the group keeps hearing from us (session timeout 30 s).
const HEARTBEAT_MS = 3_000;

/** Starts delivering the cases topic to the webhook; resolves once subscribed. */
export async function startCaseWebhook(options: CaseWebhookOptions): Promise<CaseWebhook> {
  const { kafka, topic, url, secret, logger } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const initialDelayMs = options.initialDelayMs ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  const registry = options.registry ?? new Registry();
  const delivered = registry.counter('paysentinel_case_webhook_delivered_total', 'Case messages the webhook answered with 2xx.');
  const retries = registry.counter('paysentinel_case_webhook_retries_total', 'Webhook attempts that failed and are retried (down, timeout, 5xx, 429).');
  const rejected = registry.counter(
    'paysentinel_case_webhook_rejected_total',
    'Case messages skipped because the webhook refused them (3xx/4xx other than 408/425/429).',
  );
  // The path may carry a token; logs name the origin only.
  const target = new URL(url).origin;
  const stopping = new AbortController();
  let failWith: (err: Error) => void = () => {};
  const failed = new Promise<Error>((resolve) => (failWith = resolve));

  const consumer: Consumer = kafka.consumer({
    groupId: options.groupId,
    sessionTimeout: 30_000,
    heartbeatInterval: HEARTBEAT_MS,
    maxBytesPerPartition: 1024 * 1024,
    maxWaitTimeInMs: 250,
    retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
  consumer.on(consumer.events.CRASH, (e) => {
    const { error, restart } = e.payload as { error: Error; restart: boolean };
    logger.error('case webhook consumer crashed', { err: error, restart });
    if (!restart && !stopping.signal.aborted)
      failWith(new PaysentinelError('KAFKA_UNAVAILABLE', `Case webhook consumer stopped: ${error.message}`, { cause: error }));
  });

  async function post(body: Buffer, caseId: string, delivery: string): Promise<Attempt> {
    const timestamp = Math.floor(Date.now() / 1000);
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'paysentinel-webhook',
          [TIMESTAMP_HEADER]: String(timestamp),
          [SIGNATURE_HEADER]: signWebhook(secret, timestamp, body),
          'x-paysentinel-case-id': caseId,
          'x-paysentinel-delivery': delivery,
        },
        body: new Uint8Array(body),
        // A redirected POST would be replayed as GET by fetch; treat it as a refusal instead.
        redirect: 'manual',
        signal: AbortSignal.any([stopping.signal, AbortSignal.timeout(timeoutMs)]),
      });
      const kind = classifyStatus(res.status);
      // The receiver's explanation is worth logging only when it refuses the case for good.
      if (kind === 'rejected') return { kind, status: res.status, reason: `HTTP ${res.status} ${(await res.text()).slice(0, 300)}`.trim() };
      await res.body?.cancel();
      if (kind === 'delivered') return { kind, status: res.status };
      return { kind, reason: `HTTP ${res.status}`, retryAfterMs: retryAfterMs(res.headers.get('retry-after')) };
    } catch (err) {
      if (stopping.signal.aborted) throw err;
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const reason = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message);
      return { kind: 'retry', reason };
    }
  }

  /** Sends one message until it is delivered or refused; throws only when stopping or on a rebalance. */
  async function deliver(body: Buffer, caseId: string, delivery: string, heartbeat: () => Promise<void>): Promise<void> {
    let version: unknown;
    try {
      version = (JSON.parse(body.toString('utf8')) as { version?: unknown }).version;
    } catch {
      // Forwarded as is; the receiver decides.
    }
    for (let attempt = 0; ; attempt++) {
      const result = await post(body, caseId, delivery);
      if (result.kind === 'delivered') {
        delivered.inc();
        if (attempt > 0) logger.info('case webhook delivered after retries', { target, case_id: caseId, version, attempts: attempt + 1 });
        return;
      }
      if (result.kind === 'rejected') {
        rejected.inc();
        logger.error('case webhook REFUSED a case: skipped, not retried; fix the receiver and reset the group offset to re-send', {
          target,
          case_id: caseId,
          version,
          delivery,
          status: result.status,
          reason: result.reason,
        });
        return;
      }
      retries.inc();
      const wait = Math.max(backoffDelay(attempt, initialDelayMs, maxDelayMs), Math.min(result.retryAfterMs ?? 0, maxDelayMs));
      if (attempt === 0 || attempt % 10 === 0)
        logger.warn('case webhook unavailable, retrying', { target, case_id: caseId, version, attempt: attempt + 1, reason: result.reason, wait });
      for (let left = wait; left > 0; left -= HEARTBEAT_MS) {
        await delay(Math.min(left, HEARTBEAT_MS), stopping.signal);
        await heartbeat();
      }
    }
  }

  await consumer.connect();
  // A new group starts at the oldest retained case so nothing published before it joined is missed.
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    // Only offsets that were delivered are resolved, so a batch cut short is fetched again.
    eachBatchAutoResolve: false,
    // Partitions are independent; within one, messages (and so each case's versions) go in order.
    partitionsConsumedConcurrently: 4,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      for (const message of batch.messages) {
        if (!isRunning() || isStale() || stopping.signal.aborted) return;
        if (message.value) {
          try {
            await deliver(message.value, message.key?.toString('utf8') ?? '', `${batch.topic}/${batch.partition}/${message.offset}`, heartbeat);
          } catch (err) {
            // Shutdown: leave the offset uncommitted; whoever owns the partition next re-sends it.
            if (stopping.signal.aborted) return;
            throw err;
          }
        }
        resolveOffset(message.offset);
        try {
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(message.offset) + 1n).toString() }]);
        } catch (err) {
          // Delivered but not recorded: the next owner re-sends it, which receivers dedupe.
          logger.warn('case webhook offset commit failed; the message may be delivered again', {
            err,
            delivery: `${batch.topic}/${batch.partition}/${message.offset}`,
          });
        }
      }
    },
  });
  logger.info('delivering cases to webhook', { target, topic, group: options.groupId });

  return {
    failed,
    async stop() {
      stopping.abort(new Error('case webhook stopping'));
      await consumer.disconnect();
    },
  };
}
