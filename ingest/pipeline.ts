import { Partitioners, type Consumer, type Kafka, type Producer } from 'kafkajs';
import type { Config } from '../config/index.ts';
import { decodeEvent } from '../contract/index.ts';
import { PaysentinelError, delay, retry } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import type { IngestMetrics } from '../metrics/registry.ts';
import type { ClickHouseClient } from '../storage/clickhouse.ts';
import { createClickHouseHttp } from '../storage/http.ts';
import { toDeadLetter, toPendingRow, type PendingRow } from './records.ts';
import { createEventWriter } from './writer.ts';

export interface IngestorDeps {
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  config: Config;
  logger: Logger;
  metrics: IngestMetrics;
}

interface DeadEntry {
  key: Buffer | null;
  value: string;
  reason: string;
}

/** One consumed message on its way out: a row to store or a dead letter, with its position. */
interface Entry {
  partition: number;
  offset: string;
  row?: PendingRow;
  dead?: DeadEntry;
}

/** What one flush carries: rows to store, messages to dead-letter, and the offsets they stand for. */
interface Batch {
  rows: PendingRow[];
  dead: DeadEntry[];
  /** Highest offset per partition; committed as offset + 1 once the batch is written. */
  offsets: Map<number, string>;
}

/**
 * Takes the oldest `max` entries. Entries are in arrival order and batches are written one
 * after another, so every message of a partition below a batch's highest offset is in this
 * batch or an earlier one: committing that offset never skips anything unwritten.
 */
export function takeBatch(entries: Entry[], max: number): Batch {
  const taken = entries.splice(0, max);
  const batch: Batch = { rows: [], dead: [], offsets: new Map() };
  for (const e of taken) {
    if (e.row) batch.rows.push(e.row);
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

export interface Ingestor {
  start(): Promise<void>;
  /** Stops fetching, writes and commits what is buffered, then disconnects. */
  stop(options?: { deadlineMs?: number }): Promise<void>;
  /** Resolves when the pipeline stops by itself because of a fatal error. */
  readonly failed: Promise<Error>;
  status(): { assignedPartitions: number; connected: boolean; paused: boolean; buffered: number; lastFlushAt: number | null };
}

/**
 * The loss-free ingest pipeline: Kafka `payments.events` -> validate -> ClickHouse, invalid
 * messages -> dead-letter topic. Offsets are committed only after the ClickHouse insert and the
 * dead-letter produce that contain them were acknowledged.
 */
export function createIngestor(deps: IngestorDeps): Ingestor {
  const { kafka, config, logger, metrics } = deps;
  const topic = config.eventsTopic;
  const writer = createEventWriter({ http: createClickHouseHttp(config), database: config.clickhouseDatabase, logger, metrics });
  const consumer: Consumer = kafka.consumer({
    groupId: config.kafkaGroupId,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    // Bounded fetches keep memory predictable: at most ~8 MB of messages arrive per fetch.
    maxBytesPerPartition: 2 * 1024 * 1024,
    maxBytes: 8 * 1024 * 1024,
    maxWaitTimeInMs: 200,
    retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false, createPartitioner: Partitioners.DefaultPartitioner });

  const pending: Entry[] = [];
  let pendingSince = 0;
  let paused = false;
  let writeFailing = false;
  let stopping = false;
  let connected = false;
  let assigned = 0;
  let inFlightBatches = 0;
  let lastFlushAt: number | null = null;
  const wakeup = createWakeup();
  const hardStop = new AbortController();
  let flushLoop: Promise<void> = Promise.resolve();
  let failWith: (err: Error) => void = () => {};
  const failed = new Promise<Error>((resolve) => (failWith = resolve));

  const setPaused = (want: boolean, why: string) => {
    if (want === paused) return;
    paused = want;
    metrics.paused.set(want ? 1 : 0);
    if (want) consumer.pause([{ topic }]);
    else consumer.resume([{ topic }]);
    logger.info(want ? 'paused fetching' : 'resumed fetching', { why, buffered: pending.length });
  };

  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const partitions = (e.payload.memberAssignment[topic] ?? []) as number[];
    assigned = partitions.length;
    metrics.assigned.set(assigned);
    logger.info('joined consumer group', { partitions });
  });
  consumer.on(consumer.events.CONNECT, () => (connected = true));
  consumer.on(consumer.events.DISCONNECT, () => (connected = false));
  consumer.on(consumer.events.CRASH, (e) => {
    const { error, restart } = e.payload as { error: Error; restart: boolean };
    logger.error('consumer crashed', { err: error, restart });
    if (!restart && !stopping) failWith(new PaysentinelError('KAFKA_UNAVAILABLE', `Kafka consumer stopped: ${error.message}`, { cause: error }));
  });

  function accept(batch: { topic: string; partition: number; messages: { offset: string; key: Buffer | null; value: Buffer | null }[] }) {
    const now = new Date();
    if (pending.length === 0) pendingSince = Date.now();
    const partition = batch.partition;
    for (const message of batch.messages) {
      const result = decodeEvent(message.value, config.maxMessageBytes);
      if (result.ok) {
        pending.push({ partition, offset: message.offset, row: toPendingRow(result.value, partition, Number(message.offset)) });
      } else {
        const source = { topic: batch.topic, partition, offset: message.offset };
        const value = JSON.stringify(toDeadLetter(result.reason, source, message.key, message.value, now));
        pending.push({ partition, offset: message.offset, dead: { key: message.key, reason: result.reason, value } });
      }
    }
    metrics.consumed.inc(undefined, batch.messages.length);
    metrics.buffered.set(pending.length);
    if (pending.length >= config.batchMaxRows) wakeup.notify();
    if (pending.length >= config.maxBufferedRows) setPaused(true, 'buffer full');
  }

  async function deadLetter(dead: DeadEntry[]): Promise<void> {
    if (dead.length === 0) return;
    await retry(
      () => producer.send({ topic: config.dlqTopic, acks: -1, messages: dead.map((d) => ({ key: d.key, value: d.value })) }),
      {
        retries: Number.POSITIVE_INFINITY,
        maxDelayMs: 5_000,
        signal: hardStop.signal,
        isRetriable: (err) => (err as { retriable?: boolean }).retriable !== false,
        onRetry: (err, attempt, wait) => {
          metrics.writeErrors.inc({ target: 'dlq' });
          logger.warn('dead-letter produce failed, retrying', { err, attempt, wait });
        },
      },
    );
    for (const d of dead) metrics.deadLettered.inc({ reason: reasonKind(d.reason) });
  }

  async function store(rows: PendingRow[]): Promise<void> {
    if (rows.length === 0) return;
    const result = await retry(() => writer.write(rows), {
      retries: Number.POSITIVE_INFINITY,
      maxDelayMs: 5_000,
      signal: hardStop.signal,
      onRetry: (err, attempt, wait) => {
        metrics.writeErrors.inc({ target: 'clickhouse' });
        if (!writeFailing) logger.warn('ClickHouse write failed; pausing fetch and retrying', { err, attempt, wait });
        writeFailing = true;
        setPaused(true, 'ClickHouse unavailable');
      },
    });
    if (writeFailing) logger.info('ClickHouse write recovered');
    writeFailing = false;
    metrics.stored.inc(undefined, result.stored);
    metrics.duplicates.inc(undefined, result.duplicates);
  }

  async function commit(offsets: Map<number, string>): Promise<void> {
    const list = [...offsets].map(([partition, offset]) => ({ topic, partition, offset: (BigInt(offset) + 1n).toString() }));
    try {
      await consumer.commitOffsets(list);
    } catch (err) {
      // The data is stored; after a rebalance the next owner re-reads and the dedup look-up skips it.
      metrics.commitErrors.inc();
      logger.warn('offset commit failed (events are stored; redelivery will be deduplicated)', { err });
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
      if (!stopping && count < config.batchMaxRows && age < config.batchMaxMs) {
        await wakeup.wait(config.batchMaxMs - age);
        continue;
      }
      const batch = takeBatch(pending, config.batchMaxRows);
      pendingSince = Date.now();
      const t0 = performance.now();
      await Promise.all([store(batch.rows), deadLetter(batch.dead)]);
      const t1 = performance.now();
      await commit(batch.offsets);
      logger.debug('flushed', { rows: batch.rows.length, dead: batch.dead.length, writeMs: Math.round(t1 - t0), commitMs: Math.round(performance.now() - t1), buffered: pending.length });
      metrics.batches.inc();
      lastFlushAt = Date.now();
      metrics.buffered.set(pending.length);
      if (paused && !stopping && pending.length < config.maxBufferedRows / 2) setPaused(false, writeFailing ? 'ClickHouse back' : 'buffer drained');
    }
  }

  return {
    failed,
    async start() {
      await producer.connect();
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: true,
        partitionsConsumedConcurrently: 1,
        eachBatch: async ({ batch, isStale }) => {
          inFlightBatches++;
          try {
            if (!isStale()) accept(batch);
          } finally {
            inFlightBatches--;
          }
        },
      });
      flushLoop = runFlushLoop().catch((err: Error) => {
        if (hardStop.signal.aborted) return;
        logger.error('ingest stopped: a batch could not be written', { err });
        failWith(err);
      });
    },
    async stop({ deadlineMs = 30_000 } = {}) {
      stopping = true;
      try {
        consumer.pause([{ topic }]);
      } catch {
        // not running yet
      }
      while (inFlightBatches > 0) await delay(10);
      wakeup.notify();
      const timer = setTimeout(() => hardStop.abort(new Error('shutdown deadline reached')), deadlineMs);
      await flushLoop;
      clearTimeout(timer);
      if (hardStop.signal.aborted) logger.warn('shutdown deadline reached: uncommitted events will be re-read on the next start');
      await consumer.disconnect();
      await producer.disconnect();
    },
    status: () => ({ assignedPartitions: assigned, connected, paused, buffered: pending.length, lastFlushAt }),
  };
}

/** A short label for the metrics: the reason up to its first quote or colon. */
function reasonKind(reason: string): string {
  return reason.replace(/".*$|:.*$|\d+/g, '').trim().slice(0, 60) || 'invalid';
}
