import type { Kafka } from 'kafkajs';

/**
 * The consumer ingest needs from a Kafka client, and nothing more (docs/adr/0005): a member of
 * a consumer group reading one topic, batches per partition with their offsets, pause and
 * resume of fetching, offsets committed by hand, notice of the partitions assigned and of a
 * client that gave up. kafkajs is the implementation `paysentinel start` uses;
 * bench/kafka-clients.ts puts another client behind the same interface to compare them.
 */
export interface ConsumedMessage {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
}

export interface ConsumedBatch {
  topic: string;
  partition: number;
  /** In offset order. */
  messages: readonly ConsumedMessage[];
}

/** What the consumer tells its user; every handler is optional. */
export interface ConsumerHandlers {
  /** After each (re)join: the partitions of the topic this member now reads. */
  assigned?(partitions: number[]): void;
  /** The connection to the brokers came up (true) or went down (false). */
  connection?(up: boolean): void;
  /** The client failed; `restart` says whether it restarts by itself (false: it gave up for good). */
  crashed?(error: Error, restart: boolean): void;
}

export interface ConsumerSettings {
  groupId: string;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** Upper bound of one fetch, over all partitions. */
  fetchMaxBytes: number;
  fetchMaxBytesPerPartition: number;
  /** How long the broker may hold a fetch waiting for data. */
  fetchMaxWaitMs: number;
}

/** Called for each batch; `isStale()` turns true once the partition was taken away by a rebalance. */
export type BatchHandler = (batch: ConsumedBatch, isStale: () => boolean) => Promise<void> | void;

export interface EventConsumer {
  /** Connects, joins the group and delivers `topic` from the committed offsets (the beginning when none). Offsets are never committed by itself. */
  start(topic: string, eachBatch: BatchHandler): Promise<void>;
  /** Stops (and resumes) fetching, also across the client's own restarts; batches already fetched may still be delivered. */
  pause(): void;
  resume(): void;
  /** Commits, per partition, the offset of the next message to read. */
  commit(offsets: readonly { partition: number; offset: string }[]): Promise<void>;
  /** Leaves the group and disconnects. */
  stop(): Promise<void>;
}

/** The kafkajs implementation (the one `paysentinel start` uses). */
export function createKafkajsConsumer(kafka: Kafka, settings: ConsumerSettings, handlers: ConsumerHandlers = {}): EventConsumer {
  const consumer = kafka.consumer({
    groupId: settings.groupId,
    sessionTimeout: settings.sessionTimeoutMs,
    heartbeatInterval: settings.heartbeatIntervalMs,
    maxBytesPerPartition: settings.fetchMaxBytesPerPartition,
    maxBytes: settings.fetchMaxBytes,
    maxWaitTimeInMs: settings.fetchMaxWaitMs,
    retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
  let topic: string | null = null;
  // What the user asked for last: a consumer kafkajs restarts after a crash joins unpaused, so a
  // pause is applied again on each join (else it would fetch on while ingest waits for ClickHouse).
  let wantPaused = false;
  const applyPause = () => {
    if (!topic) return;
    try {
      if (wantPaused) consumer.pause([{ topic }]);
      else consumer.resume([{ topic }]);
    } catch {
      // not running (yet, or between a crash and its restart): applied again on the next join
    }
  };
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    if (wantPaused) applyPause();
    handlers.assigned?.(topic ? ((e.payload.memberAssignment[topic] ?? []) as number[]) : []);
  });
  consumer.on(consumer.events.CONNECT, () => handlers.connection?.(true));
  consumer.on(consumer.events.DISCONNECT, () => handlers.connection?.(false));
  consumer.on(consumer.events.CRASH, (e) => {
    const { error, restart } = e.payload as { error: Error; restart: boolean };
    handlers.crashed?.(error, restart);
  });
  return {
    async start(name, eachBatch) {
      topic = name;
      await consumer.connect();
      await consumer.subscribe({ topics: [name], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: true,
        partitionsConsumedConcurrently: 1,
        eachBatch: async ({ batch, isStale }) => eachBatch(batch, isStale),
      });
    },
    pause() {
      wantPaused = true;
      applyPause();
    },
    resume() {
      wantPaused = false;
      applyPause();
    },
    async commit(offsets) {
      if (!topic || offsets.length === 0) return;
      const t = topic;
      await consumer.commitOffsets(offsets.map(({ partition, offset }) => ({ topic: t, partition, offset })));
    },
    stop: () => consumer.disconnect(),
  };
}
