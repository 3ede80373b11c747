import { afterAll, describe, expect, test } from 'vitest';
import { createCaseStore } from '../../cases/index.ts';
import { silentLogger } from '../../log/index.ts';
import type { Hit } from '../../rules/index.ts';
import { migrate } from '../../storage/migrations.ts';
import { ensureTopics } from '../../kafka/index.ts';
import { services } from './helpers.ts';

const s = services();
afterAll(() => s.cleanup());

const hit = (i: number, value: number): Hit => ({
  ruleId: 'retry_storm',
  ruleVersion: 'v1',
  title: 'Retry storm',
  severity: 'medium',
  action: 'notify_support',
  entityType: 'user',
  entityId: `user-'${i}`,
  cooldownMs: 600_000,
  recommendedAction: `User ${i} retried ${value} times.`,
  evidence: { user_max_attempts_per_order_1m: value },
});

describe('case store on the real ClickHouse and Kafka', () => {
  test('a tick with 20,000 hits opens 20,000 cases, and the next tick with fresh evidence updates each of them: no statement too big to run, no Kafka request too big to send', async () => {
    const database = s.config.clickhouseDatabase;
    await migrate(s.clickhouse, database, silentLogger);
    const topic = `${s.config.eventsTopic}.cases`;
    const admin = s.kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [{ topic, numPartitions: 1, replicationFactor: 1 }]);
    const producer = s.kafka.producer();
    await producer.connect();
    const store = createCaseStore({ clickhouse: s.clickhouse, database, producer, topic });
    const n = 20_000;
    const first = await store.applyHits(
      Array.from({ length: n }, (_, i) => hit(i, 5)),
      Date.now(),
    );
    expect(first.opened).toHaveLength(n);
    expect(first.updated).toHaveLength(0);
    const second = await store.applyHits(
      Array.from({ length: n }, (_, i) => hit(i, 6)),
      Date.now() + 1_000,
    );
    expect(second.opened).toHaveLength(0);
    expect(second.updated).toHaveLength(n);
    expect(second.updated.every((c) => c.hit_count === 2)).toBe(true);
    // Every version reached the real broker (whose default limit is 1 MB a request).
    const [end] = await admin.fetchTopicOffsets(topic);
    expect(Number(end!.high)).toBe(2 * n);
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
    expect(await store.list({ limit: 10_000 })).toHaveLength(10_000);
  });
});
