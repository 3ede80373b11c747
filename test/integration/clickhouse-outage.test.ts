import { afterAll, describe, expect, test } from 'vitest';
import { startPipeline } from '../../cli/pipeline.ts';
import { silentLogger } from '../../log/index.ts';
import { createLocalStack } from '../../stack/index.ts';
import { committedVsEnd, duplicateIds, makeEvent, repoRoot, services, storedCount } from './helpers.ts';

const s = services({ INGEST_BATCH_MAX_ROWS: '400', INGEST_BATCH_MAX_MS: '100' });
const stack = createLocalStack({ config: s.config, rootDir: repoRoot, logger: silentLogger, progress: () => {} });
afterAll(async () => {
  await stack.startClickHouse();
  await s.cleanup();
});

describe('ClickHouse outage mid-stream', () => {
  test('pauses, commits nothing unstored, resumes by itself: nothing lost, nothing twice', async () => {
    const status = await stack.status();
    // Only a server this project started can be stopped by the test.
    expect(status.services.clickhouse.startedByUs, 'the local ClickHouse must be started by "paysentinel stack up"').toBe(true);

    const pipeline = await startPipeline(s.config, silentLogger);
    const producer = s.kafka.producer();
    await producer.connect();
    let produced = 0;
    const send = async (n: number) => {
      const events = Array.from({ length: n }, () => makeEvent(produced++));
      await producer.send({ topic: s.config.eventsTopic, acks: -1, messages: events.map((e) => ({ key: String(e.order_id), value: JSON.stringify(e) })) });
    };
    await send(2_000);
    await expect.poll(() => storedCount(s), { timeout: 30_000 }).toBe(2_000);

    expect(await stack.stopClickHouse()).toBe(true);
    const outageStarted = Date.now();
    // Traffic keeps arriving while ClickHouse is down, some of it redelivered.
    while (Date.now() - outageStarted < 15_000) {
      await send(300);
      await producer.send({ topic: s.config.eventsTopic, acks: -1, messages: [{ key: 'ord-1', value: JSON.stringify(makeEvent(1)) }] });
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(await pipeline.metrics.paused.get()).toBe(1);
    expect(await pipeline.metrics.writeErrors.get({ target: 'clickhouse' })).toBeGreaterThan(0);
    const during = await committedVsEnd(s.kafka, s.config.kafkaGroupId, s.config.eventsTopic);
    // Nothing written during the outage, so commits cannot have moved past the first 2,000 events.
    expect(during.committed).toBeLessThanOrEqual(2_000);
    expect(during.end).toBeGreaterThan(2_000 + 5_000);

    await stack.startClickHouse();
    await expect.poll(() => storedCount(s), { timeout: 90_000, interval: 250 }).toBe(produced);
    expect(await duplicateIds(s)).toBe(0);
    await expect.poll(() => pipeline.metrics.paused.get(), { timeout: 10_000 }).toBe(0);
    await producer.disconnect();
    await pipeline.stop();
    const after = await committedVsEnd(s.kafka, s.config.kafkaGroupId, s.config.eventsTopic);
    expect(after.committed).toBe(after.end);
  });
});
