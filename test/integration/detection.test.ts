import { spawnSync } from 'node:child_process';
import { Partitioners } from 'kafkajs';
import { afterAll, describe, expect, test } from 'vitest';
import { startPipeline, type RunningPipeline } from '../../cli/pipeline.ts';
import { createCaseStore } from '../../detection/index.ts';
import { silentLogger } from '../../log/index.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import { runSimulation } from '../../simulator/run.ts';
import { scenarioNames } from '../../simulator/scenarios.ts';
import { readTopic, repoRoot, services } from './helpers.ts';

const s = services({ KAFKA_CASES_TOPIC: `t${Math.random().toString(36).slice(2, 10)}.payments.cases`, DETECTION_TICK_MS: '300' });
let pipeline: RunningPipeline | undefined;
afterAll(async () => {
  await pipeline?.stop();
  const admin = s.kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [s.config.casesTopic] }).catch(() => {});
  await admin.disconnect();
  await s.cleanup();
});

describe('live detection on simulator traffic', () => {
  test('each injected attack becomes exactly one case for the right rule and entity; benign traffic opens none', async () => {
    pipeline = await startPipeline(s.config, silentLogger);
    await expect.poll(() => pipeline!.leadership.isLeader(), { timeout: 30_000 }).toBe(true);
    const producer = s.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const generator = createTrafficGenerator({ seed: 11, rate: 150, durationMs: 25_000, startMs: Date.now(), scenarios: scenarioNames });
    await runSimulation({ producer, topic: s.config.eventsTopic, generator, logger: silentLogger });
    await producer.disconnect();
    const expected = generator
      .labels()
      .scenarios.map((l) => `${l.rule_id} ${l.entity_type} ${l.entity_id}`)
      .sort();
    expect(expected).toHaveLength(scenarioNames.length);

    const store = createCaseStore({ clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, producer: { send: async () => [] }, topic: s.config.casesTopic });
    const keys = async () => (await store.list({})).map((c) => `${c.rule_id} ${c.entity_type} ${c.entity_id}`).sort();
    await expect.poll(keys, { timeout: 60_000, interval: 500 }).toEqual(expect.arrayContaining(expected));
    // A few more ticks over the whole run must not add any case for benign traffic.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await keys()).toEqual(expected);

    const cases = await store.list({});
    for (const c of cases) {
      expect(c.status).toBe('open');
      expect(c.recommended_action).not.toMatch(/\{[a-z_]+/);
      expect(Object.keys(c.evidence).length).toBeGreaterThan(0);
    }
    // Every stored version (open, then each update) was published, keyed by case_id.
    const versions = (await Promise.all(cases.map((c) => store.history(c.case_id)))).flat();
    const published = await readTopic(s.kafka, s.config.casesTopic, versions.length);
    expect(published).toHaveLength(versions.length);
    expect(new Set(published.map((m) => m.key))).toEqual(new Set(cases.map((c) => c.case_id)));
    for (const m of published) expect(JSON.parse(m.value)).toMatchObject({ case_id: m.key, rule_id: expect.any(String), recommended_action: expect.any(String) });

    // Support works the case from the command line; each change is recorded and published.
    const cli = (args: string[]) =>
      spawnSync(process.execPath, ['bin/paysentinel.mjs', 'cases', ...args], { cwd: repoRoot, env: { ...process.env, ...s.env }, encoding: 'utf8', timeout: 60_000 });
    const listed = cli(['list', '--status', 'open', '--json']);
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stdout.trim().split('\n').map((l) => JSON.parse(l).case_id).sort()).toEqual(cases.map((c) => c.case_id).sort());
    const target = cases.find((c) => c.rule_id === 'duplicate_charge')!;
    const ack = cli(['ack', target.case_id, '--note', 'refund started', '--by', 'alice']);
    expect(ack.status, ack.stderr).toBe(0);
    expect(ack.stdout).toContain('acknowledged');
    const shown = cli(['show', target.case_id]);
    expect(shown.stdout).toMatch(/ACKNOWLEDGED/);
    expect(shown.stdout).toMatch(/acknowledged\s+hits \d+\s+by alice: refund started/);
    const updates = await readTopic(s.kafka, s.config.casesTopic, versions.length + 1);
    expect(updates.filter((m) => m.key === target.case_id).map((m) => JSON.parse(m.value).status)).toContain('acknowledged');
    expect(cli(['ack', target.case_id]).status).toBe(2);
  });
});
