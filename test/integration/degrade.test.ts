import { Partitioners } from 'kafkajs';
import { afterAll, describe, expect, test } from 'vitest';
import { createCaseStore } from '../../cases/index.ts';
import { startPipeline, type RunningPipeline } from '../../cli/pipeline.ts';
import { silentLogger } from '../../log/index.ts';
import { command } from '../../storage/clickhouse.ts';
import { ident } from '../../storage/sql.ts';
import { createTrafficGenerator } from '../../simulator/generate.ts';
import { runSimulation } from '../../simulator/run.ts';
import { duplicateIds, services, storedCount } from './helpers.ts';

/**
 * A statement of detection that fails (here: the case store's table is gone) fails the tick,
 * not the pipeline: the tick is repeated, the failure shows in /healthz and /metrics with its
 * reason, ingest goes on storing, and once the statement works again the case opens. (A job
 * whose statement fails is recorded as failed and runs again on its next tick:
 * analytics-job-metrics.test.ts.)
 */
const httpPort = 20_000 + Math.floor(Math.random() * 10_000);
const s = services({ DETECTION_TICK_MS: '300', HTTP_PORT: String(httpPort) });
let pipeline: RunningPipeline | undefined;
afterAll(async () => {
  await pipeline?.stop();
  await s.cleanup();
});

const health = async () =>
  (await (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).json()) as { status: string; degraded: { detection?: { reason: string; failedTicks: number } } };
const metric = async (name: string) =>
  Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text())?.[1] ?? NaN);

describe('detection degrades, it does not die', () => {
  test('while the case store cannot be written, ticks fail and are repeated with the reason shown; ingest goes on; then the case opens', async () => {
    pipeline = await startPipeline(s.config, silentLogger);
    await expect.poll(() => pipeline!.detection!.leadership.isLeader(), { timeout: 30_000 }).toBe(true);
    const versions = ident(s.config.clickhouseDatabase, 'case_versions');
    const away = ident(s.config.clickhouseDatabase, 'case_versions_away');
    await command(s.clickhouse, `RENAME TABLE ${versions} TO ${away}`);

    const producer = s.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const generator = createTrafficGenerator({ seed: 5, rate: 100, durationMs: 12_000, startMs: Date.now(), scenarios: ['card-testing'] });
    const produced = await runSimulation({ producer, topic: s.config.eventsTopic, generator, logger: silentLogger });
    await producer.disconnect();
    const [attack] = generator.labels().scenarios;

    // Every event is stored although detection cannot finish a tick.
    await expect.poll(() => storedCount(s), { timeout: 60_000, interval: 500 }).toBe(produced.distinctEvents);
    expect(await duplicateIds(s)).toBe(0);
    await expect.poll(() => pipeline!.detection!.detector.status().failedInARow, { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
    expect(pipeline.detection!.detector.status().lastFailure?.reason).toMatch(/case_versions/);
    const h = await health();
    expect(h.status).toBe('degraded');
    expect(h.degraded.detection?.reason).toMatch(/case_versions/);
    expect(await metric('paysentinel_detection_failed_ticks_in_a_row')).toBeGreaterThanOrEqual(3);

    // The statement works again: the repeated tick opens the attack's case, and the trouble clears.
    await command(s.clickhouse, `RENAME TABLE ${away} TO ${versions}`);
    const store = createCaseStore({
      clickhouse: s.clickhouse,
      database: s.config.clickhouseDatabase,
      producer: { send: async () => [] },
      topic: s.config.casesTopic,
    });
    await expect
      .poll(async () => (await store.list({})).map((c) => `${c.rule_id} ${c.entity_type} ${c.entity_id}`), { timeout: 60_000, interval: 500 })
      .toContain(`${attack!.rule_id} ${attack!.entity_type} ${attack!.entity_id}`);
    await expect.poll(() => pipeline!.detection!.detector.status().failedInARow, { timeout: 30_000 }).toBe(0);
    // Every part that failed on the missing table (detection, automation's pass) recovers on its next run.
    await expect.poll(async () => (await health()).status, { timeout: 30_000, interval: 250 }).toBe('ok');
    expect(await metric('paysentinel_detection_failed_ticks_in_a_row')).toBe(0);
  });
});
