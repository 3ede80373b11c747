import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Partitioners, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCaseStore, SYSTEM_RESOLUTION, type CaseStore } from '../../cases/index.ts';
import { startPipeline, type RunningPipeline } from '../../cli/pipeline.ts';
import { silentLogger } from '../../log/index.ts';
import { defaultRulesPath } from '../../rules/index.ts';
import { services } from './helpers.ts';

// stuck_processing as shipped, with a threshold of seconds so the test need not wait 30 minutes.
const rulesDir = mkdtempSync(join(tmpdir(), 'resolve-rules-'));
const stuck = JSON.parse(readFileSync(join(defaultRulesPath, 'stuck_processing.json'), 'utf8'));
stuck.conditions = { all: [{ fact: 'order_processing_age_24h', operator: 'olderThan', value: '2s' }] };
writeFileSync(join(rulesDir, 'stuck_processing.json'), JSON.stringify(stuck));

const s = services({ RULES_PATH: rulesDir, DETECTION_TICK_MS: '200' });
let pipeline: RunningPipeline | undefined;
let producer: Producer;
let store: CaseStore;

beforeAll(async () => {
  pipeline = await startPipeline(s.config, silentLogger);
  producer = s.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  store = createCaseStore({ clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, producer: { send: async () => [] }, topic: s.config.casesTopic });
});
afterAll(async () => {
  await producer?.disconnect();
  await pipeline?.stop();
  await s.cleanup();
  rmSync(rulesDir, { recursive: true, force: true });
});

let seq = 0;
const send = (orderId: string, attempt: number, status: 'processing' | 'succeeded', source: 'gateway_callback' | 'status_query', atMs: number) =>
  producer.send({
    topic: s.config.eventsTopic,
    messages: [
      {
        key: orderId,
        value: JSON.stringify({
          event_id: `${orderId}-${attempt}-${status}-${++seq}`,
          occurred_at: new Date(atMs).toISOString(),
          type: 'payment',
          status,
          source,
          order_id: orderId,
          attempt,
          transaction_id: `T-${orderId}-${attempt}`,
          amount_minor: 12_900,
          currency: 'CNY',
          channel: 'alipay',
          merchant_id: 'm-1',
          user_id: 'u-1',
        }),
      },
    ],
  });

describe('resolve_when: a case whose situation is over is resolved by the system', () => {
  test('a stuck order that got its result by itself is resolved with the status-query event as evidence; a later stuck attempt opens a new case', async () => {
    await expect.poll(() => pipeline!.detection!.leadership.isLeader(), { timeout: 30_000 }).toBe(true);
    const orderId = `o-${Math.random().toString(36).slice(2, 10)}`;
    await send(orderId, 1, 'processing', 'gateway_callback', Date.now() - 1_000);
    const casesOf = async () => (await store.list({ rule: 'stuck_processing' })).filter((c) => c.entity_id === orderId);
    await expect.poll(async () => (await casesOf()).map((c) => c.status), { timeout: 60_000, interval: 300 }).toEqual(['open']);
    const [first] = await casesOf();

    // The status query brings the final status: the situation is over.
    await send(orderId, 1, 'succeeded', 'status_query', Date.now());
    await expect.poll(async () => (await store.get(first!.case_id))?.status, { timeout: 60_000, interval: 300 }).toBe('resolved');
    const resolved = (await store.get(first!.case_id))!;
    expect(resolved.resolution).toBe(SYSTEM_RESOLUTION);
    expect(resolved.evidence.closed_by).toMatchObject({
      facts: { order_processing_age_24h: 0 },
      event: { status: 'succeeded', source: 'status_query', attempt: 1 },
    });
    const history = await store.history(first!.case_id);
    expect(history.at(-1)).toMatchObject({ status: 'resolved', changed_by: 'system', resolution: SYSTEM_RESOLUTION });
    expect(history.at(-1)!.note).toMatch(/resolve_when held: order_processing_age_24h = 0.*succeeded from status_query/);

    // A new episode, well within the rule's 6 h cooldown: a new case, the old one stays closed.
    await send(orderId, 2, 'processing', 'gateway_callback', Date.now() - 1_000);
    await expect.poll(async () => (await casesOf()).length, { timeout: 60_000, interval: 300 }).toBe(2);
    const after = await casesOf();
    expect(after.find((c) => c.case_id !== first!.case_id)).toMatchObject({ status: 'open', hit_count: 1 });
    expect((await store.get(first!.case_id))!.status).toBe('resolved');
  });
});
