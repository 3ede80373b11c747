import type { Consumer, Kafka } from 'kafkajs';
import type { Logger } from '../log/index.ts';
import { ensureTopics } from './index.ts';

export interface Leadership {
  /** True while this instance holds the lease (partition 0 of the leader topic is assigned to it). */
  isLeader(): boolean;
  stop(): Promise<void>;
}

/**
 * Elects one instance among all `paysentinel start` processes through Kafka's own group
 * coordination: every instance joins one consumer group on a single-partition topic, and the
 * member that is assigned that partition is the leader. A leader that stops hands over at once
 * (it leaves the group); one that dies hands over after the session timeout. Work guarded by it
 * (scheduled jobs) must stay idempotent: during a rebalance the old leader learns of its loss
 * only when it rejoins, so two instances may briefly overlap.
 */
export async function startLeadership(deps: {
  kafka: Kafka;
  topic: string;
  groupId: string;
  logger: Logger;
  /** Replication factor if the topic must be created (KAFKA_REPLICATION_FACTOR, like every topic the pipeline creates). @default 1 */
  replicationFactor?: number;
  sessionTimeoutMs?: number;
}): Promise<Leadership> {
  const admin = deps.kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, [{ topic: deps.topic, numPartitions: 1, replicationFactor: deps.replicationFactor ?? 1 }]);
  } finally {
    await admin.disconnect();
  }
  let leader = false;
  const consumer: Consumer = deps.kafka.consumer({
    groupId: deps.groupId,
    sessionTimeout: deps.sessionTimeoutMs ?? 10_000,
    heartbeatInterval: 1_000,
  });
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const now = (e.payload.memberAssignment[deps.topic] ?? []).includes(0);
    if (now !== leader) deps.logger.info(now ? 'this instance is now the leader (runs scheduled jobs)' : 'leadership moved to another instance');
    leader = now;
  });
  consumer.on(consumer.events.CRASH, () => (leader = false));
  consumer.on(consumer.events.STOP, () => (leader = false));
  await consumer.connect();
  await consumer.subscribe({ topics: [deps.topic], fromBeginning: false });
  // Nothing is ever produced to the topic: membership alone carries the lease.
  await consumer.run({ autoCommit: false, eachMessage: async () => {} });
  return {
    isLeader: () => leader,
    async stop() {
      leader = false;
      await consumer.disconnect();
    },
  };
}
