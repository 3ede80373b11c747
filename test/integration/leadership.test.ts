import { randomUUID } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { createKafka } from '../../kafka/index.ts';
import { startLeadership } from '../../kafka/leadership.ts';
import { silentLogger } from '../../log/index.ts';
import { configFor } from './helpers.ts';

describe('leader election among instances', () => {
  test('exactly one instance leads, and another takes over when it stops', async () => {
    const config = configFor({});
    const id = randomUUID().slice(0, 8);
    const topic = `t${id}.leader`;
    const groupId = `t${id}-leader`;
    const a = await startLeadership({ kafka: createKafka(config, silentLogger, '-a'), topic, groupId, logger: silentLogger });
    const b = await startLeadership({ kafka: createKafka(config, silentLogger, '-b'), topic, groupId, logger: silentLogger });
    try {
      await expect.poll(() => Number(a.isLeader()) + Number(b.isLeader()), { timeout: 30_000 }).toBe(1);
      const [leader, follower] = a.isLeader() ? [a, b] : [b, a];
      await leader.stop();
      await expect.poll(() => follower.isLeader(), { timeout: 30_000 }).toBe(true);
      expect(leader.isLeader()).toBe(false);
    } finally {
      await Promise.allSettled([a.stop(), b.stop()]);
      const admin = createKafka(config, silentLogger, '-cleanup').admin();
      await admin.connect();
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    }
  });
});
