import { afterAll, describe, expect, test } from 'vitest';
import { committedVsEnd, duplicateIds, makeEvent, services, spawnPipeline, storedCount } from './helpers.ts';

const s = services({ INGEST_BATCH_MAX_ROWS: '500', INGEST_BATCH_MAX_MS: '100' });
afterAll(() => s.cleanup());

/** Produces `total` events (plus exact redeliveries) at a steady pace, like a live gateway. */
async function produceStream(total: number, perSend: number, pauseMs: number) {
  const producer = s.kafka.producer();
  await producer.connect();
  for (let i = 0; i < total; i += perSend) {
    const batch = Array.from({ length: Math.min(perSend, total - i) }, (_, k) => makeEvent(i + k));
    const messages = batch.map((e) => ({ key: String(e.order_id), value: JSON.stringify(e) }));
    // Every 10th event is delivered twice.
    messages.push(...messages.filter((_, k) => k % 10 === 0));
    await producer.send({ topic: s.config.eventsTopic, acks: -1, messages });
    await new Promise((r) => setTimeout(r, pauseMs));
  }
  await producer.disconnect();
}

describe('crash safety of `paysentinel start`', () => {
  test('SIGKILL mid-stream, then restart: nothing lost, nothing counted twice', async () => {
    const total = 20_000;
    const first = spawnPipeline(s.env);
    const streaming = produceStream(total, 250, 25);
    await expect.poll(() => storedCount(s), { timeout: 60_000, interval: 100 }).toBeGreaterThan(3_000);
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe(null);
    const storedAtKill = await storedCount(s);
    expect(storedAtKill).toBeLessThan(total);

    const second = spawnPipeline(s.env);
    await streaming;
    await expect.poll(() => storedCount(s), { timeout: 90_000, interval: 250 }).toBe(total);
    expect(await duplicateIds(s)).toBe(0);

    // A clean stop commits everything it stored and exits 0.
    await expect
      .poll(
        async () => {
          const o = await committedVsEnd(s.kafka, s.config.kafkaGroupId, s.config.eventsTopic);
          return o.end - o.committed;
        },
        { timeout: 30_000 },
      )
      .toBe(0);
    second.child.kill('SIGTERM');
    expect(await second.exited, second.output()).toBe(0);
    expect(await storedCount(s)).toBe(total);
  });
});
