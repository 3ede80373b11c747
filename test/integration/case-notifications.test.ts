import { Partitioners } from 'kafkajs';
import { afterAll, describe, expect, test } from 'vitest';
import { startPipeline, type RunningPipeline } from '../../cli/pipeline.ts';
import { createCaseStore } from '../../cases/index.ts';
import { silentLogger } from '../../log/index.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import { runSimulation } from '../../simulator/run.ts';
import { readTopic, services } from './helpers.ts';

// The default CASE_UPDATE_INTERVAL (5 minutes): far longer than this test runs. Automation's own
// changes to the case (the IP block it records in dry-run) are history lines and messages of
// their own (automation-commands.test.ts); this test counts what detection publishes.
const s = services({ KAFKA_CASES_TOPIC: `t${Math.random().toString(36).slice(2, 10)}.payments.cases`, DETECTION_TICK_MS: '300' });
const byDetector = <T extends { changed_by: string }>(rows: T[]) => rows.filter((r) => r.changed_by === 'detector');
let pipeline: RunningPipeline | undefined;

afterAll(async () => {
  await pipeline?.stop();
  const admin = s.kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [s.config.casesTopic] }).catch(() => {});
  await admin.disconnect();
  await s.cleanup();
});

describe('fewer, better notifications on the card-testing scenario', () => {
  const title =
    'the card-testing case is published when it opens and once more at shutdown with the latest hit count; its history has one line per publication';
  test(title, async () => {
    expect(s.config.caseUpdateIntervalMs).toBe(300_000);
    pipeline = await startPipeline(s.config, silentLogger);
    await expect.poll(() => pipeline!.detection!.leadership.isLeader(), { timeout: 30_000 }).toBe(true);
    const producer = s.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const generator = createTrafficGenerator({ seed: 7, rate: 60, durationMs: 15_000, startMs: Date.now(), scenarios: ['card-testing'] });
    await runSimulation({ producer, topic: s.config.eventsTopic, generator, logger: silentLogger });
    await producer.disconnect();
    const ip = generator.labels().scenarios.find((l) => l.rule_id === 'ip_amount_probing')!.entity_id;

    const store = createCaseStore({
      clickhouse: s.clickhouse,
      database: s.config.clickhouseDatabase,
      producer: { send: async () => [] },
      topic: s.config.casesTopic,
    });
    const probing = async () => (await store.list({ rule: 'ip_amount_probing' })).find((c) => c.entity_id === ip);
    await expect.poll(probing, { timeout: 60_000, interval: 500 }).toBeDefined();
    // Let detection see the rest of the attack: its hits are held, not published.
    const ticked = pipeline.detection!.detector.status().ticks;
    await expect.poll(() => pipeline!.detection!.detector.status().ticks, { timeout: 30_000, interval: 200 }).toBeGreaterThanOrEqual(ticked + 10);
    const caseId = (await probing())!.case_id;
    expect(byDetector(await store.history(caseId))).toHaveLength(1);

    await pipeline.stop();
    pipeline = undefined;
    const messages = (await readTopic(s.kafka, s.config.casesTopic, 50, 10_000)).filter((m) => m.key === caseId).map((m) => JSON.parse(m.value));
    const published = byDetector(messages);
    const stored = (await store.get(caseId))!;
    // Without the interval every hit was a message (31 in 10 s in the demo); now the opening and the shutdown's latest state.
    expect(stored.hit_count).toBeGreaterThan(1);
    expect(published.map((m) => m.hit_count)).toEqual([1, stored.hit_count]);
    expect(published.at(-1).evidence).toEqual(stored.evidence);
    expect(byDetector(await store.history(caseId)).map((h) => Number(h.hit_count))).toEqual([1, stored.hit_count]);
  });
});
