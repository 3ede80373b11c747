import { Partitioners } from 'kafkajs';
import { afterAll, describe, expect, test } from 'vitest';
import { createCaseStore } from '../../cases/index.ts';
import { silentLogger } from '../../log/index.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import { runSimulation } from '../../simulator/run.ts';
import { scenarioNames } from '../../simulator/scenarios.ts';
import { services, spawnPipeline, type ChildPipeline, type TestServices } from './helpers.ts';

const children: ChildPipeline[] = [];
const all: TestServices[] = [];
afterAll(async () => {
  for (const c of children) c.child.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  for (const s of all) await s.cleanup();
});

function setup() {
  // Debug logs: every tick an instance completes as leader logs 'tick'.
  const s = services({ KAFKA_CASES_TOPIC: `t${Math.random().toString(36).slice(2, 10)}.payments.cases`, DETECTION_TICK_MS: '300', LOG_LEVEL: 'debug' });
  all.push(s);
  const mine: ChildPipeline[] = [];
  const start = () => {
    const c = spawnPipeline(s.env);
    children.push(c);
    mine.push(c);
    return c;
  };
  /** Detection ticks completed so far by this setup's instances. */
  const ticks = () => mine.reduce((n, c) => n + (c.output().match(/"msg":"tick"/g)?.length ?? 0), 0);
  /** Waits until the instances have completed `n` more ticks: a detector that stopped ticking fails it. */
  const moreTicks = async (n: number) => {
    const from = ticks();
    await expect.poll(ticks, { timeout: 30_000, interval: 100 }).toBeGreaterThanOrEqual(from + n);
  };
  const keys = async () => {
    const store = createCaseStore({
      clickhouse: s.clickhouse,
      database: s.config.clickhouseDatabase,
      producer: { send: async () => [] },
      topic: s.config.casesTopic,
    });
    try {
      return (await store.list({})).map((c) => `${c.rule_id} ${c.entity_type} ${c.entity_id}`).sort();
    } catch {
      return [];
    }
  };
  return { s, start, keys, moreTicks };
}

async function attack(s: TestServices, seed: number, onHalf?: () => Promise<void>) {
  const producer = s.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const generator = createTrafficGenerator({ seed, rate: 150, durationMs: 20_000, startMs: Date.now(), scenarios: scenarioNames });
  const half = new AbortController();
  const first = runSimulation({ producer, topic: s.config.eventsTopic, generator, logger: silentLogger, onProgress: (p) => p.fraction >= 0.5 && half.abort() });
  if (onHalf) {
    await new Promise<void>((resolve) => half.signal.addEventListener('abort', () => resolve(), { once: true }));
    await onHalf();
  }
  await first;
  await producer.disconnect();
  return generator
    .labels()
    .scenarios.map((l) => `${l.rule_id} ${l.entity_type} ${l.entity_id}`)
    .sort();
}

describe('detection across instances and restarts', () => {
  test('two instances in one group open the same cases as one: one per attack, none for benign traffic', async () => {
    const { s, start, keys, moreTicks } = setup();
    start();
    start();
    const expected = await attack(s, 21);
    await expect.poll(keys, { timeout: 60_000, interval: 500 }).toEqual(expect.arrayContaining(expected));
    // Ten more ticks (about 3 s) must not add any case for benign traffic.
    await moreTicks(10);
    expect(await keys()).toEqual(expected);
  });

  test('killed with SIGKILL mid-attack and restarted: no duplicate case, no missed case', async () => {
    const { s, start, keys, moreTicks } = setup();
    const first = start();
    const expected = await attack(s, 22, async () => {
      first.child.kill('SIGKILL');
      await first.exited;
      start();
    });
    await expect.poll(keys, { timeout: 90_000, interval: 500 }).toEqual(expect.arrayContaining(expected));
    // Ten more ticks (about 3 s) must not add any case for benign traffic.
    await moreTicks(10);
    expect(await keys()).toEqual(expected);
  });
});
