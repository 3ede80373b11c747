// What each Kafka client costs to consume the same backlog: kafkajs (the project's client) and
// @platformatic/kafka, both behind ingest's consumer interface (kafka/consumer.ts), each reading a topic of simulator events from the beginning in its own
// consumer group, with the fetch sizes ingest uses, and validating every message with the
// contract (the per-message work ingest does before the row). Prints wall time and the node
// process's CPU per message (user + system), which a loaded machine disturbs less than wall time.
// Alternates the clients over --rounds. Run:
//   npm run bench:kafka-clients -- [--count 300000] [--rounds 2]
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { Consumer as PlatformaticConsumer } from '@platformatic/kafka';
import { Partitioners } from 'kafkajs';
import { loadConfig } from '../config/index.ts';
import { decodeEvent } from '../contract/index.ts';
import { createKafkajsConsumer, type ConsumedBatch, type ConsumerHandlers, type ConsumerSettings, type EventConsumer } from '../kafka/consumer.ts';
import { createKafka, ensureTopics } from '../kafka/index.ts';
import { silentLogger } from '../log/index.ts';
import { createTrafficGenerator } from '../simulator/generate.ts';
import { produceAsFast } from '../simulator/run.ts';

const { values } = parseArgs({ options: { count: { type: 'string', default: '300000' }, rounds: { type: 'string', default: '2' } } });
const count = Number(values.count);
const rounds = Number(values.rounds);
const config = loadConfig();
const kafka = createKafka(config, silentLogger, '-bench');
const topic = `bench-clients-${randomUUID().slice(0, 8)}`;
const admin = kafka.admin();
await admin.connect();

interface Run {
  client: string;
  seconds: number;
  cpuMicrosPerMessage: number;
  messagesPerSecond: number;
}

/** Times `consume` until it has seen `total` messages; CPU is this process's, so nothing else may run meanwhile. */
async function measure(client: string, total: number, consume: (onMessages: (n: number) => void) => Promise<() => Promise<void>>): Promise<Run> {
  let seen = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => (done = resolve));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const stop = await consume((n) => {
    seen += n;
    if (seen >= total) done();
  });
  await finished;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await stop();
  return { client, seconds, cpuMicrosPerMessage: (cpu.user + cpu.system) / total, messagesPerSecond: total / seconds };
}

let invalid = 0;
const check = (value: Buffer | null | undefined) => {
  if (!decodeEvent(value ?? null, config.maxMessageBytes).ok) invalid++;
};

/** Ingest's consumer settings, in a group of its own for each run. */
const settingsFor = (client: string): ConsumerSettings => ({
  groupId: `bench-${client}-${randomUUID()}`,
  sessionTimeoutMs: 30_000,
  heartbeatIntervalMs: 3_000,
  fetchMaxBytesPerPartition: 2 * 1024 * 1024,
  fetchMaxBytes: 8 * 1024 * 1024,
  fetchMaxWaitMs: 200,
});

/**
 * @platformatic/kafka behind ingest's consumer interface (kafka/consumer.ts). Its consumer is a
 * stream of single messages, so each arrives as a batch of one; it does not say when a
 * partition was taken away, so `isStale()` is always false. Enough to measure, not to run ingest.
 */
function createPlatformaticConsumer(settings: ConsumerSettings, handlers: ConsumerHandlers = {}): EventConsumer {
  const consumer = new PlatformaticConsumer({
    groupId: settings.groupId,
    clientId: 'paysentinel-bench',
    bootstrapBrokers: [...config.kafkaBrokers],
    sessionTimeout: settings.sessionTimeoutMs,
    heartbeatInterval: settings.heartbeatIntervalMs,
    maxBytes: settings.fetchMaxBytes,
    maxWaitTime: settings.fetchMaxWaitMs,
  });
  let topic: string | null = null;
  let stream: Awaited<ReturnType<typeof consumer.consume>> | null = null;
  const notStale = () => false;
  return {
    async start(name, eachBatch) {
      topic = name;
      stream = await consumer.consume({ topics: [name], mode: 'committed', fallbackMode: 'earliest', autocommit: false });
      handlers.connection?.(true);
      stream.on('data', (m: { partition: number; offset: bigint; key: Buffer | undefined; value: Buffer | undefined }) => {
        const batch: ConsumedBatch = {
          topic: name,
          partition: m.partition,
          messages: [{ offset: String(m.offset), key: m.key ?? null, value: m.value ?? null }],
        };
        void eachBatch(batch, notStale);
      });
      stream.on('error', (err: Error) => handlers.crashed?.(err, false));
    },
    pause: () => void stream?.pause(),
    resume: () => void stream?.resume(),
    async commit(offsets) {
      const t = topic;
      if (!t || offsets.length === 0) return;
      await consumer.commit({ offsets: offsets.map(({ partition, offset }) => ({ topic: t, partition, offset: BigInt(offset), leaderEpoch: -1 })) });
    },
    async stop() {
      await stream?.close();
      await consumer.close();
      handlers.connection?.(false);
    },
  };
}

/** Both clients through the same interface ingest uses: every message validated, counted per batch. */
const runWith = (client: string, create: (settings: ConsumerSettings) => EventConsumer) => (total: number) =>
  measure(client, total, async (onMessages) => {
    const consumer = create(settingsFor(client.replace(/\W+/g, '')));
    await consumer.start(topic, (batch) => {
      for (const m of batch.messages) check(m.value);
      onMessages(batch.messages.length);
    });
    return () => consumer.stop();
  });
const kafkajsRun = runWith('kafkajs', (settings) => createKafkajsConsumer(kafka, settings));
const platformaticRun = runWith('@platformatic/kafka', (settings) => createPlatformaticConsumer(settings));

try {
  await ensureTopics(admin, [{ topic, numPartitions: 6, replicationFactor: config.topicReplication }]);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const generator = createTrafficGenerator({ seed: 1, rate: 20_000, durationMs: Math.ceil((count / 20_000) * 1000), startMs: Date.now() - 3_600_000 });
  const produced = await produceAsFast({ producer, topic, generator, count, batchSize: 2000, concurrency: 4 });
  await producer.disconnect();
  process.stdout.write(
    `${os.cpus().length} cores (${os.cpus()[0]?.model}), node ${process.version}, load average ${os.loadavg()[0]!.toFixed(1)}; ${produced.produced} ` +
      `messages on ${topic}\n`,
  );
  for (let round = 1; round <= rounds; round++) {
    for (const run of [kafkajsRun, platformaticRun]) {
      const r = await run(produced.produced);
      process.stdout.write(
        `round ${round} ${r.client.padEnd(20)} ${Math.round(r.messagesPerSecond).toLocaleString('en-US')} messages/s (${r.seconds.toFixed(1)} s), ` +
          `${r.cpuMicrosPerMessage.toFixed(2)} µs CPU/message incl. validation, load ${os.loadavg()[0]!.toFixed(1)}\n`,
      );
    }
  }
  process.stdout.write(`(${invalid} messages over all runs failed validation (the same in every run))\n`);
} finally {
  await admin.deleteTopics({ topics: [topic] }).catch(() => {});
  await admin.disconnect();
}
