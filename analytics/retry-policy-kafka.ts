import { Partitioners, type Kafka, type Producer } from 'kafkajs';
import { ensureTopics } from '../kafka/index.ts';
import type { PolicyEntry, PolicyPublisher } from './retry-policy.ts';

/** Where the payment service reads the retry policy: compacted, one message per channel:failure_code. */
export const RETRY_POLICY_TOPIC = 'payments.retry-policy';

/** The message value of one entry: the decision, its evidence and the reason. */
export function policyMessage(entry: PolicyEntry): { key: string; value: string } {
  return {
    key: `${entry.channel}:${entry.failureCode}`,
    value: JSON.stringify({
      channel: entry.channel,
      failure_code: entry.failureCode,
      action: entry.action,
      retry: entry.retry,
      max_attempts: entry.maxAttempts,
      backoff_seconds: entry.backoffSeconds,
      peak_hours_utc: entry.peakHours,
      peak_max_attempts: entry.peakMaxAttempts,
      peak_backoff_seconds: entry.peakBackoffSeconds,
      evidence: entry.evidence,
      reason: entry.reason,
      change: entry.change,
    }),
  };
}

export interface KafkaPolicyPublisher extends PolicyPublisher {
  /** Disconnects the producer (if it was connected). */
  close(): Promise<void>;
}

/**
 * Publishes every entry of a run to the compacted topic (created on first use with
 * cleanup.policy=compact), so a reader that consumes it from the beginning ends up with the latest
 * entry per key. Connects lazily.
 */
export function createKafkaPolicyPublisher(kafka: Kafka, options: { topic?: string; replicationFactor?: number } = {}): KafkaPolicyPublisher {
  const topic = options.topic ?? RETRY_POLICY_TOPIC;
  let producer: Producer | null = null;
  return {
    async publish(entries) {
      if (!producer) {
        const admin = kafka.admin();
        await admin.connect();
        try {
          await ensureTopics(admin, [
            { topic, numPartitions: 1, replicationFactor: options.replicationFactor ?? 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
          ]);
        } finally {
          await admin.disconnect();
        }
        const p = kafka.producer({ allowAutoTopicCreation: false, idempotent: false, createPartitioner: Partitioners.DefaultPartitioner });
        await p.connect();
        producer = p;
      }
      if (entries.length > 0) await producer.send({ topic, messages: entries.map(policyMessage) });
    },
    async close() {
      const p = producer;
      producer = null;
      if (p) await p.disconnect();
    },
  };
}
