import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Kafka } from 'kafkajs';
import { loadConfig, type Config } from '../../config/index.ts';
import { createKafka } from '../../kafka/index.ts';
import { silentLogger } from '../../log/index.ts';
import { createClickHouse, queryRows, command, type ClickHouseClient } from '../../storage/clickhouse.ts';
import { ident } from '../../storage/sql.ts';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Environment for one test: its own topics, group and database so tests never collide. */
export function isolatedEnv(extra: Record<string, string> = {}): Record<string, string> {
  const id = randomUUID().slice(0, 8);
  return {
    KAFKA_EVENTS_TOPIC: `t${id}.payments.events`,
    KAFKA_DLQ_TOPIC: `t${id}.payments.events.dlq`,
    KAFKA_CASES_TOPIC: `t${id}.payments.cases`,
    KAFKA_COMMANDS_TOPIC: `t${id}.payments.commands`,
    KAFKA_COMMAND_RESULTS_TOPIC: `t${id}.payments.command-results`,
    KAFKA_GROUP_ID: `t${id}-ingest`,
    KAFKA_TOPIC_PARTITIONS: '3',
    CLICKHOUSE_DATABASE: `ps_test_${id}`,
    HTTP_PORT: '0',
    INGEST_BATCH_MAX_MS: '200',
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

export function configFor(env: Record<string, string>): Config {
  return loadConfig({ ...process.env, ...env });
}

export interface TestServices {
  config: Config;
  env: Record<string, string>;
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  cleanup(): Promise<void>;
}

export function services(extra: Record<string, string> = {}): TestServices {
  const env = isolatedEnv(extra);
  const config = configFor(env);
  const kafka = createKafka(config, silentLogger, '-test');
  const clickhouse = createClickHouse(config);
  return {
    config,
    env,
    kafka,
    clickhouse,
    async cleanup() {
      await command(clickhouse, `DROP DATABASE IF EXISTS ${ident(config.clickhouseDatabase)}`).catch(() => {});
      const admin = kafka.admin();
      await admin.connect();
      await admin
        .deleteTopics({ topics: [config.eventsTopic, config.dlqTopic, config.casesTopic, config.commandsTopic, config.commandResultsTopic] })
        .catch(() => {});
      await admin.disconnect();
      await clickhouse.close();
    },
  };
}

export async function scalar(clickhouse: ClickHouseClient, query: string): Promise<number> {
  const rows = await queryRows<Record<string, string | number>>(clickhouse, query);
  return Number(Object.values(rows[0] ?? { v: 0 })[0]);
}

/** Rows in payment_events, 0 while the table does not exist yet. */
export async function storedCount(s: TestServices): Promise<number> {
  try {
    return await scalar(s.clickhouse, `SELECT count() FROM ${ident(s.config.clickhouseDatabase, 'payment_events')}`);
  } catch {
    return 0;
  }
}

/** event_ids stored more than once: must always be zero. */
export async function duplicateIds(s: TestServices): Promise<number> {
  return scalar(
    s.clickhouse,
    `SELECT count() FROM (SELECT event_id FROM ${ident(s.config.clickhouseDatabase, 'payment_events')} GROUP BY event_id HAVING count() > 1)`,
  );
}

/** Reads every message currently in a topic (from the beginning) with a throwaway consumer group. */
export async function readTopic(
  kafka: Kafka,
  topic: string,
  expected: number,
  timeoutMs = 60_000,
): Promise<{ key: string | null; value: string; partition: number }[]> {
  const consumer = kafka.consumer({ groupId: `reader-${randomUUID()}` });
  const out: { key: string | null; value: string; partition: number }[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => (done = resolve));
  await consumer.run({
    eachMessage: async ({ message, partition }) => {
      out.push({ key: message.key?.toString('utf8') ?? null, value: message.value?.toString('utf8') ?? '', partition });
      if (out.length >= expected) done();
    },
  });
  await Promise.race([finished, new Promise((r) => setTimeout(r, timeoutMs))]);
  await consumer.disconnect();
  return out;
}

/** Every message in a topic so far: as many as its partitions' offsets say it holds. */
export async function readWholeTopic(kafka: Kafka, topic: string): Promise<{ key: string | null; value: string; partition: number }[]> {
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
  const total = offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
  if (total === 0) return [];
  const messages = await readTopic(kafka, topic, total, 30_000);
  if (messages.length < total) throw new Error(`read ${messages.length} of the ${total} messages of ${topic} in 30 s`);
  return messages;
}

/** Committed offsets of the group, summed over partitions, and the topic's end offsets summed. */
export async function committedVsEnd(kafka: Kafka, groupId: string, topic: string): Promise<{ committed: number; end: number }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [offsets, high] = await Promise.all([admin.fetchOffsets({ groupId, topics: [topic] }), admin.fetchTopicOffsets(topic)]);
    const committed = offsets.flatMap((t) => t.partitions).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
    const end = high.reduce((sum, p) => sum + Number(p.high), 0);
    return { committed, end };
  } finally {
    await admin.disconnect();
  }
}

export interface ChildPipeline {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/** Runs `paysentinel start` as a real process, as a user would (`args` e.g. `['--roles', 'ingest']`). */
export function spawnPipeline(env: Record<string, string>, args: readonly string[] = []): ChildPipeline {
  const child = spawn(process.execPath, ['bin/paysentinel.mjs', 'start', ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** A valid contract event with sensible defaults. */
export function makeEvent(i: number, patch: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: `evt-${i}`,
    occurred_at: new Date(Date.UTC(2026, 10, 25, 10, 0, 0) + i * 37).toISOString(),
    type: 'payment',
    status: 'succeeded',
    order_id: `ord-${Math.floor(i / 2)}`,
    attempt: 1 + (i % 2),
    transaction_id: `tx-${i}`,
    amount_minor: 1000 + i,
    currency: 'CNY',
    channel: ['alipay', 'wechat_pay', 'card'][i % 3],
    merchant_id: `m-${i % 7}`,
    user_id: `u-${i % 101}`,
    device_id: `d-${i % 53}`,
    ip: `10.0.${i % 250}.${(i * 7) % 250}`,
    source: 'gateway_callback',
    ...patch,
  };
}
