import { afterAll, describe, expect, test } from 'vitest';
import { startPipeline } from '../../cli/pipeline.ts';
import { silentLogger } from '../../log/index.ts';
import { createLocalStack } from '../../stack/index.ts';
import { duplicateIds, makeEvent, repoRoot, services, storedCount } from './helpers.ts';

const s = services({ INGEST_BATCH_MAX_MS: '100' });
const stack = createLocalStack({ config: s.config, rootDir: repoRoot, logger: silentLogger, progress: () => {} });
afterAll(async () => {
  await stack.startKafka();
  await s.cleanup();
});

const send = async (from: number, n: number) => {
  const producer = s.kafka.producer();
  await producer.connect();
  const events = Array.from({ length: n }, (_, i) => makeEvent(from + i));
  await producer.send({ topic: s.config.eventsTopic, acks: -1, messages: events.map((e) => ({ key: String(e.order_id), value: JSON.stringify(e) })) });
  await producer.disconnect();
};

describe('Kafka restart', () => {
  test('the pipeline reconnects by itself and keeps storing, once each', async () => {
    expect((await stack.status()).services.kafka.startedByUs, 'the local Kafka must be started by "paysentinel stack up"').toBe(true);
    const pipeline = await startPipeline(s.config, silentLogger);
    try {
      await send(0, 1_000);
      await expect.poll(() => storedCount(s), { timeout: 30_000 }).toBe(1_000);

      expect(await stack.stopKafka()).toBe(true);
      await stack.startKafka();
      // Redeliver part of the first batch and add new events after the restart.
      await send(500, 1_500);
      await expect.poll(() => storedCount(s), { timeout: 120_000, interval: 500 }).toBe(2_000);
      expect(await duplicateIds(s)).toBe(0);
    } finally {
      await pipeline.stop();
    }
  });
});
