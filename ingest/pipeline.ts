import { Partitioners, type Consumer, type Kafka, type Producer } from 'kafkajs';
import type { Config } from '../config/index.ts';
import { decodeEvent } from '../contract/index.ts';
import { PaysentinelError, delay, retry } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import type { IngestMetrics } from '../metrics/registry.ts';
import type { ClickHouseClient } from '../storage/clickhouse.ts';
import { toDeadLetter, toDateTimeText, toEventRow, type EventRow } from './records.ts';
import { createEventWriter } from './writer.ts';

export interface IngestorDeps {
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  config: Config;
  logger: Logger;
  metrics: IngestMetrics;
}

/** What one flush carries: rows to store, messages to dead-letter, and the offsets they stand for. */
interface Pending {
  rows: EventRow[];
  dead: { key: Buffer | null; value: string; reason: string }[];
  /** Highest offset seen per partition; committed as offset + 1 once everything above is stored. */
  offsets: Map<number, string>;
  firstAt: number;
}

const emptyPending = (): Pending => ({ rows: [], dead: [], offsets: new Map(), firstAt: 0 });

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
  const writer = createEventWriter({ clickhouse: deps.clickhouse, database: config.clickhouseDatabase, logger, metrics });
  const consumer: Consumer = kafka.consumer({
    groupId: config.kafkaGroupId,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    maxBytesPerPartition: 4 * 1024 * 1024,
    maxBytes: 32 * 1024 * 1024,
    maxWaitTimeInMs: 200,
    retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
  const producer: Producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false, createPartitioner: Partitioners.DefaultPartitioner });

  let pending = emptyPending();
  let buffered = 0;
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
    logger.info(want ? 'paused fetching' : 'resumed fetching', { why, buffered });
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
    const ingestedAt = toDateTimeText(Date.now());
    const now = new Date();
    if (pending.rows.length + pending.dead.length === 0) pending.firstAt = Date.now();
    for (const message of batch.messages) {
      const result = decodeEvent(message.value, config.maxMessageBytes);
      if (result.ok) {
        pending.rows.push(toEventRow(result.value, batch.partition, Number(message.offset), ingestedAt));
      } else {
        const source = { topic: batch.topic, partition: batch.partition, offset: message.offset };
        pending.dead.push({ key: message.key, reason: result.reason, value: JSON.stringify(toDeadLetter(result.reason, source, message.key, message.value, now)) });
      }
      pending.offsets.set(batch.partition, message.offset);
    }
    metrics.consumed.inc(undefined, batch.messages.length);
    buffered += batch.messages.length;
    metrics.buffered.set(buffered);
    if (buffered >= config.batchMaxRows) wakeup.notify();
    if (buffered >= config.maxBufferedRows) setPaused(true, 'buffer full');
  }

  async function deadLetter(dead: Pending['dead']): Promise<void> {
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

  async function store(rows: EventRow[]): Promise<void> {
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
      const count = pending.rows.length + pending.dead.length;
      if (count === 0 && pending.offsets.size === 0) {
        if (stopping) return;
        await wakeup.wait(config.batchMaxMs);
        continue;
      }
      const age = Date.now() - pending.firstAt;
      if (!stopping && count < config.batchMaxRows && age < config.batchMaxMs) {
        await wakeup.wait(config.batchMaxMs - age);
        continue;
      }
      const batch = pending;
      pending = emptyPending();
      await Promise.all([store(batch.rows), deadLetter(batch.dead)]);
      await commit(batch.offsets);
      metrics.batches.inc();
      lastFlushAt = Date.now();
      buffered -= batch.rows.length + batch.dead.length;
      metrics.buffered.set(buffered);
      if (paused && !stopping && buffered < config.maxBufferedRows / 2) setPaused(false, writeFailing ? 'ClickHouse back' : 'buffer drained');
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
    status: () => ({ assignedPartitions: assigned, connected, paused, buffered, lastFlushAt }),
  };
}

/** A short label for the metrics: the reason up to its first quote or colon. */
function reasonKind(reason: string): string {
  return reason.replace(/".*$|:.*$|\d+/g, '').trim().slice(0, 60) || 'invalid';
}
