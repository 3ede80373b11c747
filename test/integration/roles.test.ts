import { Partitioners } from 'kafkajs';
import { afterAll, describe, expect, test } from 'vitest';
import { createCaseStore } from '../../cases/index.ts';
import { silentLogger } from '../../log/index.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import { runSimulation } from '../../simulator/run.ts';
import { duplicateIds, services, spawnPipeline, storedCount, type ChildPipeline } from './helpers.ts';

/**
 * `paysentinel start --roles`: two ingest-only processes share the partitions of one consumer
 * group, a third runs detection and the scheduled jobs; together they do what one full
 * instance does.
 */
const s = services({ KAFKA_TOPIC_PARTITIONS: '4', DETECTION_TICK_MS: '300' });
const running: ChildPipeline[] = [];
afterAll(async () => {
  for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  await s.cleanup();
});

const port = () => 20_000 + Math.floor(Math.random() * 10_000);
const metrics = async (p: number) =>
  (await fetch(`http://127.0.0.1:${p}/metrics`)
    .then((r) => r.text())
    .catch(() => '')) as string;
const sample = (text: string, name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);

describe('roles', () => {
  test('two ingest-only processes share the partitions and a detect,jobs process opens the case', async () => {
    const ports = [port(), port(), port()];
    const roles = ['ingest', 'ingest', 'detect,jobs'];
    for (const [i, r] of roles.entries()) running.push(spawnPipeline({ ...s.env, HTTP_PORT: String(ports[i]) }, ['--roles', r]));
    const ready = async (i: number) => {
      // A process that exited will never answer: say why instead of waiting out the timeout.
      if (running[i]!.child.exitCode !== null) throw new Error(`the ${roles[i]} process exited: ${running[i]!.output()}`);
      return (await fetch(`http://127.0.0.1:${ports[i]}/healthz`).catch(() => null))?.status === 200;
    };
    for (const i of ports.keys()) await expect.poll(() => ready(i), { timeout: 90_000, interval: 250 }).toBe(true);
    // The group has balanced: each ingest process holds some of the 4 partitions, together all.
    await expect
      .poll(
        async () =>
          [
            sample(await metrics(ports[0]!), 'paysentinel_consumer_assigned_partitions'),
            sample(await metrics(ports[1]!), 'paysentinel_consumer_assigned_partitions'),
          ].sort(),
        { timeout: 60_000, interval: 500 },
      )
      .toEqual([2, 2]);

    const producer = s.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const generator = createTrafficGenerator({ seed: 21, rate: 100, durationMs: 12_000, startMs: Date.now(), scenarios: ['card-testing'] });
    const produced = await runSimulation({ producer, topic: s.config.eventsTopic, generator, logger: silentLogger });
    await producer.disconnect();

    await expect.poll(() => storedCount(s), { timeout: 60_000, interval: 500 }).toBe(produced.distinctEvents);
    expect(await duplicateIds(s)).toBe(0);
    const consumed = await Promise.all(ports.map(async (p) => sample(await metrics(p), 'paysentinel_ingest_consumed_total')));
    expect(consumed[0]).toBeGreaterThan(0);
    expect(consumed[1]).toBeGreaterThan(0);
    // The detect,jobs process consumes nothing itself.
    expect(consumed[2]).toBe(0);

    const [attack] = generator.labels().scenarios;
    const store = createCaseStore({
      clickhouse: s.clickhouse,
      database: s.config.clickhouseDatabase,
      producer: { send: async () => [] },
      topic: s.config.casesTopic,
    });
    await expect
      .poll(async () => (await store.list({})).map((c) => `${c.rule_id} ${c.entity_type} ${c.entity_id}`), { timeout: 60_000, interval: 500 })
      .toEqual([`${attack!.rule_id} ${attack!.entity_type} ${attack!.entity_id}`]);

    for (const p of running) p.child.kill('SIGTERM');
    for (const p of running) expect(await p.exited, p.output()).toBe(0);
  });
});
