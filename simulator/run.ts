import { CompressionTypes, type Producer } from 'kafkajs';
import { PaysentinelError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import type { TrafficGenerator, TrafficItem } from './generate.ts';

/** What a run produced; `distinctEvents` is what should end up stored after deduplication. */
export interface SimulationStats {
  produced: number;
  events: number;
  distinctEvents: number;
  redeliveries: number;
  invalid: number;
  byType: Record<string, number>;
  byStatus: Record<string, number>;
  byScenario: Record<string, number>;
  elapsedMs: number;
  /** True when the run was stopped (signal) before every item was sent. */
  aborted: boolean;
}

/** Progress snapshot, reported about once a second. */
export interface SimulationProgress {
  produced: number;
  /** Messages the run is planned to send (rate × duration, before the end flush). */
  planned: number;
  elapsedMs: number;
  /** Messages per second since the start. */
  rate: number;
  /** 0..1 of the planned duration elapsed. */
  fraction: number;
}

/** The one producer call the simulator needs, so tests can pass a fake. */
export type MessageSink = Pick<Producer, 'send'>;

/** Tally kept while sending; counts follow the item kinds. */
export function createStatsCounter(): { add(item: TrafficItem): void; stats(elapsedMs: number, aborted: boolean): SimulationStats } {
  const s: Omit<SimulationStats, 'elapsedMs' | 'aborted'> = {
    produced: 0,
    events: 0,
    distinctEvents: 0,
    redeliveries: 0,
    invalid: 0,
    byType: {},
    byStatus: {},
    byScenario: {},
  };
  const bump = (map: Record<string, number>, key: string) => void (map[key] = (map[key] ?? 0) + 1);
  return {
    add(item) {
      s.produced++;
      if (item.kind === 'invalid') s.invalid++;
      else if (item.kind === 'redelivery') s.redeliveries++;
      else {
        // Every 'event' item carries a fresh event_id by construction (the generator tests
        // check it), so counting beats keeping millions of ids in a set.
        s.events++;
        s.distinctEvents++;
        bump(s.byType, item.event!.type);
        bump(s.byStatus, item.event!.status);
        if (item.scenario) bump(s.byScenario, item.scenario);
      }
    },
    stats: (elapsedMs, aborted) => ({ ...s, byType: { ...s.byType }, byStatus: { ...s.byStatus }, byScenario: { ...s.byScenario }, elapsedMs, aborted }),
  };
}

export interface RunSimulationOptions {
  producer: MessageSink;
  topic: string;
  generator: TrafficGenerator;
  logger: Logger;
  onProgress?: (progress: SimulationProgress) => void;
  /** Stops between batches; the batch in flight completes. */
  signal?: AbortSignal;
  /** Interval between batches while items wait for their time. @default 25 */
  tickMs?: number;
  /** Cap of one send when behind schedule. @default 2000 */
  maxBatch?: number;
  /** Wall clock, epoch ms (tests inject a fake). @default Date.now */
  now?: () => number;
  /** Sleep (tests inject a fake). Rejects or resolves early on abort. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

const defaultSleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

function kafkaError(err: unknown): PaysentinelError {
  return new PaysentinelError('KAFKA_UNAVAILABLE', `Kafka refused or lost the messages: ${(err as Error).message}`, { retriable: true, cause: err });
}

/**
 * Sends the generator's items when they are due against the wall clock. Each item is due at
 * generator start + sendAtMs, an absolute time, so a slow send never accumulates drift: the
 * next batch simply holds everything that became due meanwhile.
 */
export async function runSimulation(options: RunSimulationOptions): Promise<SimulationStats> {
  const { producer, topic, generator, logger, onProgress, signal, tickMs = 25, maxBatch = 2000 } = options;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? defaultSleep;
  const startMs = generator.options.startMs;
  const counter = createStatsCounter();
  const planned = generator.plannedCount;
  const durationMs = generator.options.durationMs;
  let lastProgress = now();
  let aborted = false;
  let lastBatchAt = -Infinity;

  for (;;) {
    if (signal?.aborted) {
      aborted = true;
      break;
    }
    const nextAt = generator.peekSendAtMs();
    if (nextAt === null) break;
    const elapsed = now() - startMs;
    // One batch per tick at most: waiting for the tick to end lets messages gather into a
    // batch instead of going out in twos. Only a backlog (behind by a tick) skips the wait.
    const behind = elapsed - nextAt > tickMs;
    const wakeAt = behind ? nextAt : Math.max(nextAt, lastBatchAt + tickMs);
    if (wakeAt > elapsed) {
      await sleep(wakeAt - elapsed, signal);
      continue;
    }
    lastBatchAt = elapsed;
    const batch: TrafficItem[] = [];
    for (let at: number | null = nextAt; at !== null && at <= elapsed && batch.length < maxBatch; at = generator.peekSendAtMs()) {
      batch.push(generator.next()!);
    }
    try {
      await producer.send({
        topic,
        acks: -1,
        compression: CompressionTypes.None,
        messages: batch.map((item) => ({ key: item.key, value: item.value })),
      });
    } catch (err) {
      logger.error('simulate: send failed', { err, batch: batch.length });
      throw kafkaError(err);
    }
    for (const item of batch) counter.add(item);
    const t = now();
    if (onProgress && t - lastProgress >= 1000) {
      lastProgress = t;
      const elapsedMs = t - startMs;
      const s = counter.stats(elapsedMs, false);
      onProgress({
        produced: s.produced,
        planned,
        elapsedMs,
        rate: elapsedMs > 0 ? (s.produced * 1000) / elapsedMs : 0,
        fraction: durationMs > 0 ? Math.min(1, elapsedMs / durationMs) : 1,
      });
    }
  }
  return counter.stats(now() - startMs, aborted);
}

export interface ProduceAsFastOptions {
  producer: MessageSink;
  topic: string;
  /** Any item source; a TrafficGenerator works, as does a pre-generated array. */
  generator: Iterable<TrafficItem>;
  /** Stop after this many messages (or when the source runs out). */
  count: number;
  /** Messages per send. @default 1000 */
  batchSize?: number;
  /** Sends in flight at once. @default 4 */
  concurrency?: number;
  signal?: AbortSignal;
  /** @default Date.now */
  now?: () => number;
}

/**
 * Produces `count` messages ignoring their send times, as fast as Kafka takes them: the
 * load side of the ingest benchmark. Ordering across concurrent batches is not kept, which
 * is fine for throughput but not for the realistic run (use runSimulation there).
 */
export async function produceAsFast(options: ProduceAsFastOptions): Promise<SimulationStats> {
  const { producer, topic, count, batchSize = 1000, concurrency = 4, signal } = options;
  const now = options.now ?? Date.now;
  const counter = createStatsCounter();
  const iterator = options.generator[Symbol.iterator]();
  const started = now();
  let taken = 0;
  let aborted = false;

  const nextBatch = (): TrafficItem[] => {
    const batch: TrafficItem[] = [];
    while (taken < count && batch.length < batchSize) {
      const r = iterator.next();
      if (r.done) {
        taken = count;
        break;
      }
      batch.push(r.value);
      taken++;
    }
    return batch;
  };

  const worker = async () => {
    for (;;) {
      if (signal?.aborted) {
        aborted = true;
        return;
      }
      const batch = nextBatch();
      if (batch.length === 0) return;
      try {
        await producer.send({ topic, acks: -1, compression: CompressionTypes.None, messages: batch.map((i) => ({ key: i.key, value: i.value })) });
      } catch (err) {
        throw kafkaError(err);
      }
      for (const item of batch) counter.add(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return counter.stats(now() - started, aborted);
}
