import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Partitioners, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCaseStore, SYSTEM_RESOLUTION, type CaseStore } from '../../cases/index.ts';
import { startPipeline, type RunningPipeline } from '../../cli/pipeline.ts';
import { silentLogger } from '../../log/index.ts';
import { defaultRulesPath } from '../../rules/index.ts';
import type { StoredCommand } from '../../automation/index.ts';
import { queryRows } from '../../storage/clickhouse.ts';
import { ident, sql } from '../../storage/sql.ts';
import { readTopic, services } from './helpers.ts';

// stuck_processing as shipped, with a threshold of seconds so the test need not wait 30 minutes.
const rulesDir = mkdtempSync(join(tmpdir(), 'resolve-rules-'));
const stuck = JSON.parse(readFileSync(join(defaultRulesPath, 'stuck_processing.json'), 'utf8'));
stuck.conditions = { all: [{ fact: 'order_processing_age_24h', operator: 'olderThan', value: '2s' }] };
stuck.escalate_after = '8s';
writeFileSync(join(rulesDir, 'stuck_processing.json'), JSON.stringify(stuck));

const tag = Math.random().toString(36).slice(2, 10);
const s = services({
  RULES_PATH: rulesDir,
  DETECTION_TICK_MS: '200',
  AUTOMATION: 'on',
  KAFKA_COMMANDS_TOPIC: `t${tag}.payments.commands`,
  KAFKA_COMMAND_RESULTS_TOPIC: `t${tag}.payments.command-results`,
});
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
  const admin = s.kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [s.config.commandsTopic, s.config.commandResultsTopic] }).catch(() => {});
  await admin.disconnect();
  await s.cleanup();
  rmSync(rulesDir, { recursive: true, force: true });
});

const commandsOf = (caseId: string) =>
  queryRows<StoredCommand>(s.clickhouse, sql`SELECT * FROM ${ident(s.config.clickhouseDatabase, 'commands')} WHERE case_id = ${caseId}`);

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

describe('resolve_when and automation end to end: detection, a status query to the gateway, its answer or its absence', () => {
  test('a stuck order that got its result by itself is resolved with the status-query event as evidence; a later stuck attempt opens a new case', async () => {
    await expect.poll(() => pipeline!.detection!.leadership.isLeader(), { timeout: 30_000 }).toBe(true);
    const orderId = `o-${Math.random().toString(36).slice(2, 10)}`;
    await send(orderId, 1, 'processing', 'gateway_callback', Date.now() - 1_000);
    const casesOf = async () => (await store.list({ rule: 'stuck_processing' })).filter((c) => c.entity_id === orderId);
    await expect.poll(async () => (await casesOf()).map((c) => c.status), { timeout: 60_000, interval: 300 }).toEqual(['open']);
    const [first] = await casesOf();
    // One status query for the stuck attempt, published, and the case is the system's to handle.
    await expect
      .poll(async () => (await commandsOf(first!.case_id)).map((c) => [c.type, c.attempt, c.mode, c.status]), { timeout: 30_000, interval: 300 })
      .toEqual([['requery_status', 1, 'on', 'issued']]);
    // The case records who handles it right after the command is stored and sent.
    await expect.poll(async () => (await store.get(first!.case_id))!.assignee, { timeout: 30_000, interval: 300 }).toBe('automation');
    const published = (await readTopic(s.kafka, s.config.commandsTopic, 1, 20_000)).map((m) => JSON.parse(m.value));
    expect(published).toMatchObject([{ type: 'requery_status', order_id: orderId, attempt: 1, case_id: first!.case_id, rule_id: 'stuck_processing' }]);

    // The gateway answers with a status query that brings the final status: the situation is over.
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
    await expect.poll(async () => (await commandsOf(first!.case_id))[0]?.status, { timeout: 30_000, interval: 300 }).toBe('done');

    // A new episode, well within the rule's 6 h cooldown: a new case, the old one stays closed.
    await send(orderId, 2, 'processing', 'gateway_callback', Date.now() - 1_000);
    await expect.poll(async () => (await casesOf()).length, { timeout: 60_000, interval: 300 }).toBe(2);
    const after = await casesOf();
    expect(after.find((c) => c.case_id !== first!.case_id)).toMatchObject({ status: 'open', hit_count: 1 });
    expect((await store.get(first!.case_id))!.status).toBe('resolved');
  });

  test('a stuck order whose status query gets no answer goes to support after escalate_after, with the command as evidence', async () => {
    const orderId = `o-${Math.random().toString(36).slice(2, 10)}`;
    await send(orderId, 1, 'processing', 'gateway_callback', Date.now() - 1_000);
    const casesOf = async () => (await store.list({ rule: 'stuck_processing' })).filter((c) => c.entity_id === orderId);
    await expect.poll(async () => (await casesOf()).map((c) => c.assignee), { timeout: 60_000, interval: 300 }).toEqual(['automation']);
    const [c] = await casesOf();
    await expect.poll(async () => (await store.get(c!.case_id))!.assignee, { timeout: 60_000, interval: 500 }).toBe('');
    const escalated = (await store.get(c!.case_id))!;
    expect(escalated.status).toBe('open');
    expect(escalated.evidence.automation).toMatchObject({ type: 'requery_status', status: 'expired', target: { order_id: orderId, attempt: 1 } });
    expect((await store.history(c!.case_id)).at(-1)!.note).toMatch(
      /Escalated to support: requery_status K[0-9a-f]{24} for order .* is expired \(no outcome by/,
    );
    expect(await commandsOf(c!.case_id)).toMatchObject([{ status: 'expired', escalated: 1 }]);
  });
});
