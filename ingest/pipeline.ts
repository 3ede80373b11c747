import { Partitioners, type Kafka, type Producer } from 'kafkajs';
import type { Config } from '../config/index.ts';
import { decodeEvent } from '../contract/index.ts';
import { PaysentinelError, backoffDelay, delay, retry } from '../errors/index.ts';
import { createKafkajsConsumer, type ConsumedBatch, type ConsumerHandlers, type ConsumerSettings, type EventConsumer } from '../kafka/consumer.ts';
import type { Logger } from '../log/index.ts';
import type { IngestMetrics } from '../metrics/registry.ts';
import { writeFailureKind, type ClickHouseClient } from '../storage/clickhouse.ts';
import { createClickHouseHttp } from '../storage/http.ts';
import { toDeadLetter, type PendingRow } from './records.ts';
import { createEventWriter, isTableChanged, type WriteResult } from './writer.ts';

export interface IngestorDeps {
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  config: Config;
  logger: Logger;
  metrics: IngestMetrics;
  /** The consumer of the events topic; kafkajs' (kafka/consumer.ts) unless another is given. */
  createConsumer?: (settings: ConsumerSettings, handlers: ConsumerHandlers) => EventConsumer;
}

interface DeadEntry {
  key: Buffer | null;
  value: string;
  reason: string;
}

/**
 * One consumed message on its way out: a row to store or a dead letter, with its position. A
 * row keeps its message's key and bytes (references into the fetched buffer, not copies) so
 * that a row ClickHouse refuses reaches the dead-letter topic as it arrived.
 */
interface Entry {
  partition: number;
  offset: string;
  /** What it holds in memory, about: the message's bytes plus its row's (or its dead-letter record's). */
  bytes: number;
  row?: PendingRow;
  message?: { key: Buffer | null; value: Buffer | null };
  dead?: DeadEntry;
}

/** What one flush carries: rows to store, messages to dead-letter, and the offsets they stand for. */
interface Batch {
  /** Everything taken, in order: what a log line names. */
  entries: Entry[];
  /** The entries' bytes. */
  bytes: number;
  rows: Entry[];
  dead: DeadEntry[];
  /** Highest offset per partition; committed as offset + 1 once the batch is written. */
  offsets: Map<number, string>;
}

/**
 * Takes the oldest entries, at most `max` of them and at most `maxBytes` (but always one).
 * Entries are in arrival order and batches are written one after another, so every message of a
 * partition below a batch's highest offset is in this batch or an earlier one: committing that
 * offset never skips anything unwritten.
 */
export function takeBatch(entries: Entry[], max: number, maxBytes = Number.POSITIVE_INFINITY): Batch {
  let count = 0;
  let bytes = 0;
  while (count < Math.min(max, entries.length) && (count === 0 || bytes + entries[count]!.bytes <= maxBytes)) bytes += entries[count++]!.bytes;
  const taken = entries.splice(0, count);
  const batch: Batch = { entries: taken, bytes, rows: [], dead: [], offsets: new Map() };
  for (const e of taken) {
    if (e.row) batch.rows.push(e);
    else if (e.dead) batch.dead.push(e.dead);
    batch.offsets.set(e.partition, e.offset);
  }
  return batch;
}

/** A wake-up the flush loop can wait on with a timeout. */
function createWakeup() {
  let wake: (() => void) | null = null;
  return {
    notify(): void {
      wake?.();
      wake = null;
    },
    wait(ms: number): Promise<void> {
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          wake = null;
          resolve();
        }, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    },
  };
}

/** Per partition, the first and last offset of `entries`: what a log line or /healthz names. */
export function positionsOf(entries: readonly { partition: number; offset: string }[]): Record<string, string> {
  const spans = new Map<number, [bigint, bigint]>();
  for (const e of entries) {
    const o = BigInt(e.offset);
    const span = spans.get(e.partition);
    if (!span) spans.set(e.partition, [o, o]);
    else if (o < span[0]) span[0] = o;
    else if (o > span[1]) span[1] = o;
  }
  return Object.fromEntries([...spans].sort(([a], [b]) => a - b).map(([p, [lo, hi]]) => [String(p), lo === hi ? `${lo}` : `${lo}-${hi}`]));
}

/** Why ingest is not keeping up, while a write keeps failing (cleared by the next success). */
export interface IngestTrouble {
  /** unavailable: ClickHouse unreachable or overloaded; environment: a statement or its target is wrong; unexpected: a bug, see the log. */
  kind: 'unavailable' | 'environment' | 'unexpected';
  reason: string;
  since: string;
  attempts: number;
  /** Per partition, the offsets of the batch that waits (as in the log lines). */
  positions: Record<string, string>;
}

export interface Ingestor {
  start(): Promise<void>;
  /** Stops fetching, writes and commits what is buffered, then disconnects. */
  stop(options?: { deadlineMs?: number }): Promise<void>;
  /** Resolves when the pipeline stops by itself because of a fatal error. */
  readonly failed: Promise<Error>;
  status(): { assignedPartitions: number; connected: boolean; paused: boolean; buffered: number; lastFlushAt: number | null; trouble: IngestTrouble | null };
}

/**
 * The loss-free ingest pipeline: Kafka `payments.events` -> validate -> ClickHouse, invalid
 * messages -> dead-letter topic. Offsets are committed only after the ClickHouse insert and the
 * dead-letter produce that contain them were acknowledged.
 *
 * No data stops it: a write that fails because ClickHouse is away, or because a statement or
 * its target is wrong, is retried with backoff (fetching paused, the trouble in status()); a
 * request ClickHouse refuses for its data is written in halves until the rows it refuses are
 * found, and exactly those go to the dead-letter topic with the server's reason.
 */
export function createIngestor(deps: IngestorDeps): Ingestor {
  const { kafka, config, logger, metrics } = deps;
  const topic = config.eventsTopic;
  const settings: ConsumerSettings = {
    groupId: config.kafkaGroupId,
    sessionTimeoutMs: 30_000,
    heartbeatIntervalMs: 3_000,
    // Bounded fetches keep memory predictable: at most ~8 MB of messages arrive per fetch.
    fetchMaxBytesPerPartition: 2 * 1024 * 1024,
    fetchMaxBytes: 8 * 1024 * 1024,
    fetchMaxWaitMs: 200,
  };
  const handlers: ConsumerHandlers = {
    assigned(partitions) {
      assigned = partitions.length;
      metrics.assigned.set(assigned);
      logger.info('joined consumer group', { partitions });
    },
    connection: (up) => (connected = up),
    crashed(error, restart) {
      logger.error('consumer crashed', { err: error, restart });
      if (!restart && !stopping) failWith(new PaysentinelError('KAFKA_UNAVAILABLE', `Kafka consumer stopped: ${error.message}`, { cause: error }));
    },
  };
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false, createPartitioner: Partitioners.DefaultPartitioner });

  const pending: Entry[] = [];
  let pendingBytes = 0;
  let pendingSince = 0;
  let paused = false;
  let trouble: IngestTrouble | null = null;
  let troubleLoggedAt = 0;
  let stopping = false;
  let connected = false;
  let assigned = 0;
  let inFlightBatches = 0;
  let lastFlushAt: number | null = null;
  const wakeup = createWakeup();
  const hardStop = new AbortController();
  // A 50,000-row batch on a loaded server can take tens of seconds (10,000 rows took up to 5.2 s at
  // load 8-11); a request given up while the server still runs it is written again, so the
  // writer waits well past that instead of the client's usual 30 s; a shutdown's deadline still
  // aborts it.
  const writer = createEventWriter({
    http: createClickHouseHttp(config, { timeoutMs: INSERT_TIMEOUT_MS, signal: hardStop.signal }),
    database: config.clickhouseDatabase,
    logger,
    metrics,
  });
  let flushLoop: Promise<void> = Promise.resolve();
  let failWith: (err: Error) => void = () => {};
  const failed = new Promise<Error>((resolve) => (failWith = resolve));
  const consumer = (deps.createConsumer ?? ((s, h) => createKafkajsConsumer(kafka, s, h)))(settings, handlers);

  const setPaused = (want: boolean, why: string) => {
    if (want === paused) return;
    paused = want;
    metrics.paused.set(want ? 1 : 0);
    if (want) consumer.pause();
    else consumer.resume();
    logger.info(want ? 'paused fetching' : 'resumed fetching', { why, buffered: pending.length, bufferedBytes: pendingBytes });
  };

  function accept(batch: ConsumedBatch) {
    const now = new Date();
    if (pending.length === 0) pendingSince = Date.now();
    const partition = batch.partition;
    for (const message of batch.messages) {
      const result = decodeEvent(message.value, config.maxMessageBytes);
      const received = (message.value?.length ?? 0) + (message.key?.length ?? 0);
      if (result.ok) {
        const row = writer.encode(result.value, partition, Number(message.offset));
        const bytes = received + rowBytes(row);
        pendingBytes += bytes;
        pending.push({
          partition,
          offset: message.offset,
          bytes,
          row,
          // The consumed message itself (it has key and value): no object allocated per event.
          message,
        });
      } else {
        const source = { topic: batch.topic, partition, offset: message.offset };
        const value = JSON.stringify(toDeadLetter(result.reason, source, message.key, message.value, now));
        // The record is a string (2 bytes a character at most); the key, a view into the fetched
        // bytes, keeps them alive, so the message counts as received too.
        const bytes = received + 2 * value.length;
        pendingBytes += bytes;
        pending.push({ partition, offset: message.offset, bytes, dead: { key: message.key, reason: result.reason, value } });
      }
    }
    metrics.consumed.inc(undefined, batch.messages.length);
    metrics.buffered.set(pending.length);
    metrics.bufferedBytes.set(pendingBytes);
    if (batchFull()) wakeup.notify();
    if (pending.length >= config.maxBufferedRows || pendingBytes >= config.maxBufferedBytes) setPaused(true, 'buffer full');
  }

  /**
   * Whether `pending` holds a full batch: by rows or bytes, or by the buffer's own limits when
   * they are the lower ones (fetching has paused then, and waiting for INGEST_BATCH_MAX_MS
   * would only idle).
   */
  function batchFull(): boolean {
    return pending.length >= Math.min(config.batchMaxRows, config.maxBufferedRows) || pendingBytes >= Math.min(config.batchMaxBytes, config.maxBufferedBytes);
  }

  /** Sends dead letters in sends of at most DLQ_SEND_BYTES (the broker refuses a request over its limit, 1 MB by default). */
  async function deadLetter(dead: DeadEntry[]): Promise<void> {
    for (let i = 0; i < dead.length; ) {
      let bytes = 0;
      let j = i;
      while (j < dead.length && (j === i || bytes + dead[j]!.value.length <= DLQ_SEND_BYTES)) bytes += dead[j++]!.value.length;
      const part = dead.slice(i, j);
      await retry(() => producer.send({ topic: config.dlqTopic, acks: -1, messages: part.map((d) => ({ key: d.key, value: d.value })) }), {
        retries: Number.POSITIVE_INFINITY,
        maxDelayMs: 5_000,
        signal: hardStop.signal,
        isRetriable: (err) => (err as { retriable?: boolean }).retriable !== false,
        onRetry: (err, attempt, wait) => {
          metrics.writeErrors.inc({ target: 'dlq' });
          logger.warn('dead-letter produce failed, retrying', { err, attempt, wait });
        },
      });
      for (const d of part) metrics.deadLettered.inc({ reason: reasonKind(d.reason) });
      i = j;
    }
  }

  /** Records a failed attempt; logs the first one and then at most every 30 s, naming the batch. */
  function troubled(kind: IngestTrouble['kind'], err: unknown, entries: readonly Entry[], attempt: number, wait: number): void {
    const reason = err instanceof Error ? err.message : String(err);
    const positions = positionsOf(entries);
    trouble = { kind, reason: reason.slice(0, 500), since: trouble?.since ?? new Date().toISOString(), attempts: attempt, positions };
    metrics.degraded.set(1);
    if (Date.now() - troubleLoggedAt >= 30_000) {
      troubleLoggedAt = Date.now();
      const log = kind === 'unexpected' ? logger.error : logger.warn;
      log.call(
        logger,
        kind === 'unavailable' ? 'ClickHouse write failed; pausing fetch and retrying' : 'batch write keeps failing; pausing fetch and retrying',
        { kind, err, attempt, wait, positions, rows: entries.length },
      );
    }
    setPaused(true, kind === 'unavailable' ? 'ClickHouse unavailable' : 'writes failing');
  }

  function recovered(): void {
    if (!trouble) return;
    logger.info('ClickHouse write recovered', { after: trouble.attempts, since: trouble.since });
    trouble = null;
    troubleLoggedAt = 0;
    metrics.degraded.set(0);
  }

  /** Writes these rows, retrying for as long as the failure is not about the rows themselves. */
  async function write(entries: Entry[]): Promise<WriteResult> {
    return retry(() => writer.write(entries.map((e) => e.row!)), {
      retries: Number.POSITIVE_INFINITY,
      maxDelayMs: 5_000,
      signal: hardStop.signal,
      isRetriable: (err) => writeFailureKind(err) !== 'rows' && !isTableChanged(err),
      onRetry: (err, attempt, wait) => {
        metrics.writeErrors.inc({ target: 'clickhouse' });
        troubled(writeFailureKind(err) === 'unavailable' ? 'unavailable' : 'environment', err, entries, attempt, wait);
      },
    });
  }

  /**
   * Stores the rows and returns the ones ClickHouse refuses, as dead letters with its reason. A
   * refused request is written again in halves: each half without a refused row is stored, so
   * the search ends at exactly the refused rows (about 2·log2(n) writes for one in n). Each write
   * repeats the dedup look-up, so a half that was stored before its answer was lost is not
   * stored twice.
   */
  async function store(entries: Entry[], first = true): Promise<DeadEntry[]> {
    if (entries.length === 0) return [];
    try {
      const result = await write(entries);
      recovered();
      metrics.stored.inc(undefined, result.stored);
      metrics.duplicates.inc(undefined, result.duplicates);
      return [];
    } catch (err) {
      if (hardStop.signal.aborted || writeFailureKind(err) !== 'rows' || isTableChanged(err)) throw err;
      metrics.writeErrors.inc({ target: 'clickhouse' });
      if (entries.length === 1) {
        const e = entries[0]!;
        const reason = `rejected by ClickHouse: ${(err as Error).message}`.slice(0, 1000);
        const source = { topic, partition: e.partition, offset: e.offset };
        logger.warn('ClickHouse refused a row; sending it to the dead-letter topic', { partition: e.partition, offset: e.offset, reason });
        metrics.rejected.inc();
        return [
          {
            key: e.message?.key ?? null,
            reason,
            value: JSON.stringify(toDeadLetter(reason, source, e.message?.key ?? null, e.message?.value ?? null, new Date())),
          },
        ];
      }
      if (first)
        logger.warn('ClickHouse refused a batch; writing it in parts to find the rows it refuses', {
          err,
          rows: entries.length,
          positions: positionsOf(entries),
        });
      const half = Math.ceil(entries.length / 2);
      const refused = await store(entries.slice(0, half), false);
      return refused.concat(await store(entries.slice(half), false));
    }
  }

  async function commit(offsets: Map<number, string>): Promise<void> {
    const list = [...offsets].map(([partition, offset]) => ({ partition, offset: (BigInt(offset) + 1n).toString() }));
    try {
      await consumer.commit(list);
    } catch (err) {
      // The data is stored; after a rebalance the next owner re-reads and the dedup look-up skips it.
      metrics.commitErrors.inc();
      logger.warn('offset commit failed (events are stored; redelivery will be deduplicated)', { err });
    }
  }

  /**
   * Writes one batch, dead-letters what must go there, then commits. Nothing but shutdown ends
   * it before the commit: an error no write path expects (a bug) is logged with the batch's
   * positions and the whole batch is tried again after a backoff, so a batch can neither be
   * skipped nor make the process exit.
   */
  async function flush(batch: Batch): Promise<void> {
    // What is done stays done across attempts: rows stored (with the rows refused), dead letters sent.
    let refused: DeadEntry[] | undefined;
    let deadSent = false;
    let refusedSent = false;
    const t0 = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        // Both settle before anything is retried, so a write is never left running beside its repeat.
        const [stored, sent] = await Promise.allSettled([refused ?? store(batch.rows), deadSent ? undefined : deadLetter(batch.dead)]);
        if (stored.status === 'fulfilled') refused = stored.value;
        if (sent.status === 'fulfilled') deadSent = true;
        if (stored.status === 'rejected') throw stored.reason;
        if (sent.status === 'rejected') throw sent.reason;
        if (!refusedSent) await deadLetter(refused!);
        refusedSent = true;
        const t1 = performance.now();
        await commit(batch.offsets);
        logger.debug('flushed', {
          rows: batch.rows.length,
          bytes: batch.bytes,
          dead: batch.dead.length + refused!.length,
          writeMs: Math.round(t1 - t0),
          commitMs: Math.round(performance.now() - t1),
          buffered: pending.length,
        });
        return;
      } catch (err) {
        // A table altered under RowBinary rows: nothing is committed, and a restart writes what fits it.
        if (hardStop.signal.aborted || isTableChanged(err)) throw err;
        const wait = backoffDelay(attempt, 1_000, 30_000);
        troubleLoggedAt = 0;
        troubled('unexpected', err, batch.entries, attempt + 1, wait);
        await delay(wait, hardStop.signal);
      }
    }
  }

  async function runFlushLoop(): Promise<void> {
    for (;;) {
      const count = pending.length;
      if (count === 0) {
        if (stopping) return;
        await wakeup.wait(config.batchMaxMs);
        continue;
      }
      const age = Date.now() - pendingSince;
      if (!stopping && !batchFull() && age < config.batchMaxMs) {
        await wakeup.wait(config.batchMaxMs - age);
        continue;
      }
      const batch = takeBatch(pending, config.batchMaxRows, config.batchMaxBytes);
      pendingBytes -= batch.bytes;
      pendingSince = Date.now();
      await flush(batch);
      metrics.batches.inc();
      lastFlushAt = Date.now();
      metrics.buffered.set(pending.length);
      metrics.bufferedBytes.set(pendingBytes);
      if (paused && !stopping && pending.length < config.maxBufferedRows / 2 && pendingBytes < config.maxBufferedBytes / 2) setPaused(false, 'buffer drained');
    }
  }

  return {
    failed,
    async start() {
      // The insert format is chosen before the first row is encoded in it.
      const format = await retry(() => writer.prepare(), {
        retries: Number.POSITIVE_INFINITY,
        maxDelayMs: 5_000,
        signal: hardStop.signal,
        isRetriable: (err) => writeFailureKind(err) === 'unavailable',
        onRetry: (err, attempt, wait) => logger.warn('reading the columns of payment_events failed, retrying', { err, attempt, wait }),
      });
      logger.info('ingest writes', { format });
      await producer.connect();
      await consumer.start(topic, async (batch, isStale) => {
        inFlightBatches++;
        try {
          if (!isStale()) accept(batch);
        } finally {
          inFlightBatches--;
        }
      });
      flushLoop = runFlushLoop().catch((err: Error) => {
        if (hardStop.signal.aborted) return;
        logger.error('ingest stopped: a batch could not be written', { err });
        failWith(err);
      });
    },
    async stop({ deadlineMs = 30_000 } = {}) {
      stopping = true;
      consumer.pause();
      while (inFlightBatches > 0) await delay(10);
      wakeup.notify();
      const timer = setTimeout(() => hardStop.abort(new Error('shutdown deadline reached')), deadlineMs);
      await flushLoop;
      clearTimeout(timer);
      if (hardStop.signal.aborted) logger.warn('shutdown deadline reached: uncommitted events will be re-read on the next start');
      await consumer.stop();
      await producer.disconnect();
    },
    status: () => ({ assignedPartitions: assigned, connected, paused, buffered: pending.length, lastFlushAt, trouble }),
  };
}

/** Bytes a buffered row holds: its RowBinary bytes, or its JSONEachRow text (2 bytes a character at most). */
const rowBytes = (row: PendingRow): number => ('bytes' in row ? row.bytes.length : 2 * row.head.length);

/** How long one batch write (look-up and insert) may take before it is given up and retried. */
const INSERT_TIMEOUT_MS = 180_000;

/** Bytes of dead-letter records per send: one record is at most about 700 KB (see toDeadLetter). */
const DLQ_SEND_BYTES = 512 * 1024;

/** A short label for the metrics: the reason up to its first quote or colon. */
function reasonKind(reason: string): string {
  return (
    reason
      .replace(/".*$|:.*$|\d+/g, '')
      .trim()
      .slice(0, 60) || 'invalid'
  );
}
