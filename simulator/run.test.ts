import { describe, expect, test } from 'vitest';
import { silentLogger } from '../log/index.ts';
import { createTrafficGenerator } from './generate.ts';
import { produceAsFast, runSimulation, type MessageSink, type SimulationProgress } from './run.ts';

const START = Date.UTC(2026, 10, 25, 10, 0, 0);

/** A fake wall clock: sleeping and sending advance it, nothing really waits. */
function fakeWorld(sendLatencyMs: number, failAfter = Infinity) {
  let now = START;
  const sends: { at: number; topic: string; acks: number | undefined; messages: { key: string; value: Buffer }[] }[] = [];
  const producer: MessageSink = {
    send: async (record) => {
      if (sends.length >= failAfter) throw new Error('broker went away');
      sends.push({ at: now, topic: record.topic, acks: record.acks, messages: record.messages as { key: string; value: Buffer }[] });
      now += sendLatencyMs;
      return [];
    },
  };
  return { producer, sends, now: () => now, sleep: async (ms: number) => void (now += ms) };
}

describe('runSimulation', () => {
  test('sends every item no earlier than its time, in small batches, and counts what it sent', async () => {
    const generator = createTrafficGenerator({ seed: 3, rate: 400, durationMs: 10_000, startMs: START, scenarios: ['retry-storm'], invalidShare: 0.02 });
    const reference = [...createTrafficGenerator({ seed: 3, rate: 400, durationMs: 10_000, startMs: START, scenarios: ['retry-storm'], invalidShare: 0.02 })];
    const world = fakeWorld(5);
    const progress: SimulationProgress[] = [];
    const stats = await runSimulation({
      producer: world.producer,
      topic: 't',
      generator,
      logger: silentLogger,
      now: world.now,
      sleep: world.sleep,
      onProgress: (p) => progress.push(p),
    });

    const sent = world.sends.flatMap((s) => s.messages);
    expect(sent.length).toBe(reference.length);
    expect(sent.every((m, i) => m.key === reference[i]!.key && m.value.equals(reference[i]!.value))).toBe(true);
    expect(world.sends.every((s) => s.topic === 't' && s.acks === -1)).toBe(true);
    // No message leaves before its planned time (no event from the future).
    let i = 0;
    const early: number[] = [];
    for (const s of world.sends) {
      for (let k = 0; k < s.messages.length; k++, i++) if (reference[i]!.sendAtMs > s.at - START) early.push(i);
    }
    expect(early).toEqual([]);
    expect(i).toBe(reference.length);
    // Batches every ~25 ms: 10 s gives a few hundred sends, not one per message.
    expect(world.sends.length).toBeGreaterThan(200);
    expect(world.sends.length).toBeLessThan(600);
    expect(stats).toMatchObject({
      produced: reference.length,
      events: reference.filter((r) => r.kind === 'event').length,
      distinctEvents: new Set(reference.filter((r) => r.kind !== 'invalid').map((r) => r.event!.event_id)).size,
      redeliveries: reference.filter((r) => r.kind === 'redelivery').length,
      invalid: reference.filter((r) => r.kind === 'invalid').length,
      aborted: false,
    });
    expect(stats.byScenario['retry-storm']).toBeGreaterThanOrEqual(8);
    expect(stats.byType.payment).toBeGreaterThan(3000);
    expect(Object.values(stats.byStatus).reduce((a, b) => a + b, 0)).toBe(stats.events);
    // About one progress report per second, ending near 100%.
    expect(progress.length).toBeGreaterThanOrEqual(8);
    expect(progress.length).toBeLessThanOrEqual(11);
    expect(progress.at(-1)!.fraction).toBeGreaterThan(0.85);
    expect(progress.at(-1)!.rate).toBeGreaterThan(350);
  });

  test('does not drift when sends are slow: a 10 s run still takes about 10 s', async () => {
    const generator = createTrafficGenerator({ seed: 3, rate: 400, durationMs: 10_000, startMs: START });
    const world = fakeWorld(40);
    const stats = await runSimulation({ producer: world.producer, topic: 't', generator, logger: silentLogger, now: world.now, sleep: world.sleep });
    expect(stats.elapsedMs).toBeGreaterThanOrEqual(10_000);
    expect(stats.elapsedMs).toBeLessThan(10_200);
  });

  test('stops between batches when aborted and reports it', async () => {
    const generator = createTrafficGenerator({ seed: 3, rate: 400, durationMs: 10_000, startMs: START });
    const world = fakeWorld(5);
    const controller = new AbortController();
    const sleep = async (ms: number) => {
      await world.sleep(ms);
      if (world.now() - START > 2000) controller.abort();
    };
    const stats = await runSimulation({
      producer: world.producer,
      topic: 't',
      generator,
      logger: silentLogger,
      now: world.now,
      sleep,
      signal: controller.signal,
    });
    expect(stats.aborted).toBe(true);
    expect(stats.produced).toBeGreaterThan(700);
    expect(stats.produced).toBeLessThan(900);
    expect(stats.produced).toBe(world.sends.reduce((n, s) => n + s.messages.length, 0));
  });

  test('a failing broker surfaces as KAFKA_UNAVAILABLE', async () => {
    const generator = createTrafficGenerator({ seed: 3, rate: 400, durationMs: 5_000, startMs: START });
    const world = fakeWorld(5, 3);
    await expect(
      runSimulation({ producer: world.producer, topic: 't', generator, logger: silentLogger, now: world.now, sleep: world.sleep }),
    ).rejects.toMatchObject({ code: 'KAFKA_UNAVAILABLE', message: /broker went away/ });
  });
});

describe('produceAsFast', () => {
  test('sends exactly the requested count in batches of at most batchSize, ignoring send times', async () => {
    const generator = createTrafficGenerator({ seed: 4, rate: 1000, durationMs: 60_000, startMs: START });
    const world = fakeWorld(0);
    const stats = await produceAsFast({ producer: world.producer, topic: 'bench', generator, count: 12_345, batchSize: 1000, concurrency: 3 });
    expect(stats.produced).toBe(12_345);
    expect(world.sends.reduce((n, s) => n + s.messages.length, 0)).toBe(12_345);
    expect(Math.max(...world.sends.map((s) => s.messages.length))).toBe(1000);
    expect(world.sends.length).toBe(13);
    expect(world.now()).toBe(START);
  });

  test('stops when the source runs out before the count', async () => {
    const items = [...createTrafficGenerator({ seed: 4, rate: 100, durationMs: 2_000, startMs: START })];
    const world = fakeWorld(0);
    const stats = await produceAsFast({ producer: world.producer, topic: 'bench', generator: items, count: 1e6, batchSize: 50 });
    expect(stats.produced).toBe(items.length);
  });
});
