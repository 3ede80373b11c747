// What each Kafka client costs to consume the same backlog: kafkajs (the project's client) and
// @platformatic/kafka, each reading a topic of simulator events from the beginning in its own
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

const kafkajsRun = (total: number) =>
  measure('kafkajs', total, async (onMessages) => {
    const consumer = kafka.consumer({
      groupId: `bench-kafkajs-${randomUUID()}`,
      maxBytesPerPartition: 2 * 1024 * 1024,
      maxBytes: 8 * 1024 * 1024,
      maxWaitTimeInMs: 200,
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) check(m.value);
        onMessages(batch.messages.length);
      },
    });
    return () => consumer.disconnect();
  });

const platformaticRun = (total: number) =>
  measure('@platformatic/kafka', total, async (onMessages) => {
    const consumer = new PlatformaticConsumer({
      groupId: `bench-platformatic-${randomUUID()}`,
      clientId: 'paysentinel-bench',
      bootstrapBrokers: [...config.kafkaBrokers],
      maxBytes: 8 * 1024 * 1024,
      maxWaitTime: 200,
    });
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false });
    stream.on('data', (m: { value: Buffer | undefined }) => {
      check(m.value);
      onMessages(1);
    });
    return async () => {
      await stream.close();
      await consumer.close();
    };
  });

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
