import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultRulesPath } from '../../rules/index.ts';
import { Partitioners } from 'kafkajs';
import { afterAll, describe, expect, test } from 'vitest';
import { startPipeline, type RunningPipeline } from '../../cli/pipeline.ts';
import { createCaseStore } from '../../cases/index.ts';
import { silentLogger } from '../../log/index.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import { runSimulation } from '../../simulator/run.ts';
import { scenarioNames } from '../../simulator/scenarios.ts';
import { readTopic, repoRoot, services } from './helpers.ts';

const s = services({ KAFKA_CASES_TOPIC: `t${Math.random().toString(36).slice(2, 10)}.payments.cases`, DETECTION_TICK_MS: '300' });
let pipeline: RunningPipeline | undefined;
/** When the live run began: the backtest below replays from here. */
let liveFromMs = 0;
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
    liveFromMs = Date.now();
    pipeline = await startPipeline(s.config, silentLogger);
    await expect.poll(() => pipeline!.detection!.leadership.isLeader(), { timeout: 30_000 }).toBe(true);
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

    const store = createCaseStore({
      clickhouse: s.clickhouse,
      database: s.config.clickhouseDatabase,
      producer: { send: async () => [] },
      topic: s.config.casesTopic,
    });
    const keys = async () => (await store.list({})).map((c) => `${c.rule_id} ${c.entity_type} ${c.entity_id}`).sort();
    await expect.poll(keys, { timeout: 60_000, interval: 500 }).toEqual(expect.arrayContaining(expected));
    // Ten more completed ticks over the whole run (about 3 s) must not add any case for benign
    // traffic; a detector that stopped ticking fails here.
    const ticked = pipeline.detection!.detector.status().ticks;
    await expect.poll(() => pipeline!.detection!.detector.status().ticks, { timeout: 30_000, interval: 100 }).toBeGreaterThanOrEqual(ticked + 10);
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
    for (const m of published)
      expect(JSON.parse(m.value)).toMatchObject({ case_id: m.key, rule_id: expect.any(String), recommended_action: expect.any(String) });

    // Support works the case from the command line; each change is recorded and published.
    const cli = (args: string[]) =>
      spawnSync(process.execPath, ['bin/paysentinel.mjs', 'cases', ...args], {
        cwd: repoRoot,
        env: { ...process.env, ...s.env },
        encoding: 'utf8',
        timeout: 60_000,
      });
    const listed = cli(['list', '--status', 'open', '--json']);
    expect(listed.status, listed.stderr).toBe(0);
    expect(
      listed.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).case_id)
        .sort(),
    ).toEqual(cases.map((c) => c.case_id).sort());
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

  test('a backtest of the same events opens the cases live detection recorded; a candidate rule set shows its change without publishing', async () => {
    expect(liveFromMs).toBeGreaterThan(0);
    await pipeline?.stop();
    pipeline = undefined;
    const store = createCaseStore({
      clickhouse: s.clickhouse,
      database: s.config.clickhouseDatabase,
      producer: { send: async () => [] },
      topic: s.config.casesTopic,
    });
    const casesBefore = (await store.list({})).length;
    const from = new Date(liveFromMs - 1000).toISOString();
    const to = new Date(Date.now() + 1000).toISOString();
    const run = (args: string[]) =>
      spawnSync(process.execPath, ['bin/paysentinel.mjs', 'rules', 'backtest', '--from', from, '--to', to, ...args], {
        cwd: repoRoot,
        env: { ...process.env, ...s.env },
        encoding: 'utf8',
        timeout: 300_000,
      });

    const same = run(['--json']);
    expect(same.status, same.stderr).toBe(0);
    expect(same.stderr).toMatch(/100%/);
    const report = JSON.parse(same.stdout) as {
      rules: { rule_id: string; candidate: number; live: number | null; recorded: number; samples: { entity_id: string }[] }[];
    };
    const recorded = report.rules.filter((r) => r.recorded > 0);
    expect(recorded).toHaveLength(scenarioNames.length);
    for (const r of report.rules) expect({ rule: r.rule_id, replayed: r.candidate }).toEqual({ rule: r.rule_id, replayed: r.recorded });
    const live = await store.list({});
    for (const r of recorded) expect(r.samples.map((x) => x.entity_id)).toEqual(live.filter((c) => c.rule_id === r.rule_id).map((c) => c.entity_id));

    // The risk team's candidate: the same rules with card testing switched off.
    const dir = mkdtempSync(join(tmpdir(), 'candidate-rules-'));
    try {
      cpSync(defaultRulesPath, dir, { recursive: true });
      const file = join(dir, 'ip_amount_probing.json');
      writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), enabled: false }, null, 2));
      const candidate = run(['--rules', dir]);
      expect(candidate.status, candidate.stderr).toBe(0);
      const line = candidate.stdout.split('\n').find((l) => l.startsWith('ip_amount_probing'));
      expect(line).toMatch(/^ip_amount_probing\s+0\s+1\s+-1\s+1$/);
      expect(candidate.stdout).toMatch(/^duplicate_charge\s+1\s+1\s+=\s+1$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Nothing was stored or published.
    expect((await store.list({})).length).toBe(casesBefore);
  });
});
