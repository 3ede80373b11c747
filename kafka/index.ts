import { Kafka, logLevel as KafkaLogLevel, type Admin, type logCreator } from 'kafkajs';
import type { Config } from '../config/index.ts';
import type { Logger } from '../log/index.ts';

/** Routes kafkajs' own logs through our logger (warnings and errors only). */
const kafkaLogCreator =
  (logger: Logger): logCreator =>
  () =>
  ({ level, log }) => {
    const { message, ...rest } = log;
    if (level <= KafkaLogLevel.ERROR) logger.error(`kafka: ${message}`, rest);
    else if (level === KafkaLogLevel.WARN) logger.warn(`kafka: ${message}`, rest);
  };

/** Creates a kafkajs client for the configured brokers. Does not connect. */
export function createKafka(config: Pick<Config, 'kafkaBrokers' | 'kafkaClientId'>, logger: Logger, clientIdSuffix = ''): Kafka {
  return new Kafka({
    clientId: config.kafkaClientId + clientIdSuffix,
    brokers: [...config.kafkaBrokers],
    logLevel: KafkaLogLevel.WARN,
    logCreator: kafkaLogCreator(logger),
    connectionTimeout: 3000,
    // Reconnects after a broker restart are handled by kafkajs' retries plus our restart loop.
    retry: { initialRetryTime: 300, retries: 8, maxRetryTime: 10_000 },
  });
}

export interface TopicSpec {
  topic: string;
  numPartitions: number;
  replicationFactor: number;
  configEntries?: { name: string; value: string }[];
}

/** Creates the topics that are missing; existing topics are left as they are. */
export async function ensureTopics(admin: Admin, specs: TopicSpec[]): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !existing.has(s.topic));
  if (missing.length === 0) return [];
  await admin.createTopics({ topics: missing, waitForLeaders: true });
  return missing.map((s) => s.topic);
}

/** The topics the ingest pipeline needs. */
export function ingestTopics(config: Config): TopicSpec[] {
  return [
    { topic: config.eventsTopic, numPartitions: config.topicPartitions, replicationFactor: config.topicReplication },
    { topic: config.dlqTopic, numPartitions: config.topicPartitions, replicationFactor: config.topicReplication },
  ];
}
