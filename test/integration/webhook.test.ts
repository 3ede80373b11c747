import { randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Partitioners } from 'kafkajs';
import { afterAll, describe, expect, test } from 'vitest';
import { startPipeline } from '../../cli/pipeline.ts';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, startCaseWebhook, verifyWebhook, type CaseWebhook } from '../../cases/index.ts';
import { createKafka } from '../../kafka/index.ts';
import { silentLogger } from '../../log/index.ts';
import { Registry } from '../../metrics/registry.ts';
import { committedVsEnd, configFor, isolatedEnv, services } from './helpers.ts';

const secret = randomUUID() + randomUUID();
const config = configFor(isolatedEnv());
const kafka = createKafka(config, silentLogger, '-test');
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

type Mode = 'ok' | 'unavailable' | 'hold';

/** A support system's endpoint: verifies every request and records what it accepted with 200. */
async function startReceiver() {
  const accepted: { case_id: string; version: number }[] = [];
  const refused: string[] = [];
  const held: ServerResponse[] = [];
  const state = { mode: 'ok' as Mode, attempts: 0, holdAfter: Number.POSITIVE_INFINITY };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.attempts++;
      if (state.mode === 'ok' && accepted.length >= state.holdAfter) state.mode = 'hold';
      if (state.mode === 'unavailable') return res.writeHead(503).end();
      if (state.mode === 'hold') return void held.push(res);
      const body = Buffer.concat(chunks);
      const check = verifyWebhook({ secret, body, timestamp: req.headers[TIMESTAMP_HEADER], signature: req.headers[SIGNATURE_HEADER] });
      const message = JSON.parse(body.toString('utf8')) as { case_id: string; version: number };
      if (!check.ok || req.headers['x-paysentinel-case-id'] !== message.case_id || req.headers['content-type'] !== 'application/json') {
        refused.push(check.ok ? 'headers' : check.reason);
        return res.writeHead(401).end();
      }
      accepted.push({ case_id: message.case_id, version: message.version });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const r of held) r.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/cases`;
  return { url, state, accepted, refused, held, unique: () => new Set(accepted.map((m) => `${m.case_id}@${m.version}`)).size };
}

/** An isolated cases topic holding `cases` x `versions` case messages, keyed by case_id like the detector's. */
async function publishedCases(cases: number, versions: number): Promise<{ topic: string; total: number }> {
  const topic = `t${randomUUID().slice(0, 8)}.payments.cases`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true });
  await admin.disconnect();
  cleanups.push(async () => {
    const a = kafka.admin();
    await a.connect();
    await a.deleteTopics({ topics: [topic] }).catch(() => {});
    await a.disconnect();
  });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const messages = [];
  for (let v = 1; v <= versions; v++) {
    for (let c = 0; c < cases; c++) messages.push({ key: `C${c}`, value: JSON.stringify({ case_id: `C${c}`, version: v, status: 'open', hit_count: v }) });
  }
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();
  return { topic, total: cases * versions };
}

async function startDelivery(topic: string, groupId: string, url: string, registry = new Registry()): Promise<CaseWebhook> {
  const webhook = await startCaseWebhook({
    kafka,
    topic,
    groupId,
    url,
    secret,
    logger: silentLogger,
    registry,
    timeoutMs: 5_000,
    initialDelayMs: 100,
    maxDelayMs: 800,
  });
  cleanups.push(() => webhook.stop());
  return webhook;
}

/** Each case's versions, in the order they first arrived, must be ascending. */
function expectOrderedPerCase(accepted: { case_id: string; version: number }[]): void {
  const seen = new Map<string, number[]>();
  for (const m of accepted) {
    const list = seen.get(m.case_id) ?? [];
    if (!list.includes(m.version)) list.push(m.version);
    seen.set(m.case_id, list);
  }
  for (const [caseId, list] of seen) expect(list, caseId).toEqual([...list].sort((a, b) => a - b));
}

const counter = async (registry: Registry, name: string): Promise<number> =>
  Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await registry.render())?.[1] ?? 0);

describe('case webhook delivery', () => {
  test('every message of the cases topic arrives signed, verifiable and in order per case; offsets are committed after the 2xx', async () => {
    const receiver = await startReceiver();
    const { topic, total } = await publishedCases(5, 4);
    const group = `t${randomUUID().slice(0, 8)}-webhook`;
    const registry = new Registry();
    await startDelivery(topic, group, receiver.url, registry);

    await expect.poll(() => receiver.unique(), { timeout: 20_000 }).toBe(total);
    expect(receiver.refused).toEqual([]);
    expectOrderedPerCase(receiver.accepted);
    await expect.poll(async () => (await committedVsEnd(kafka, group, topic)).committed, { timeout: 10_000 }).toBe(total);
    expect(await counter(registry, 'paysentinel_case_webhook_delivered_total')).toBe(receiver.accepted.length);
  });

  test('while the endpoint answers 503 nothing is committed or lost; after it recovers every message arrives', async () => {
    const receiver = await startReceiver();
    receiver.state.mode = 'unavailable';
    const { topic, total } = await publishedCases(4, 3);
    const group = `t${randomUUID().slice(0, 8)}-webhook`;
    const registry = new Registry();
    await startDelivery(topic, group, receiver.url, registry);

    await expect.poll(() => receiver.state.attempts, { timeout: 20_000 }).toBeGreaterThanOrEqual(8);
    expect(receiver.accepted).toEqual([]);
    expect((await committedVsEnd(kafka, group, topic)).committed).toBe(0);
    expect(await counter(registry, 'paysentinel_case_webhook_retries_total')).toBeGreaterThanOrEqual(8);

    receiver.state.mode = 'ok';
    await expect.poll(() => receiver.unique(), { timeout: 15_000 }).toBe(total);
    expect(receiver.refused).toEqual([]);
    expectOrderedPerCase(receiver.accepted);
    await expect.poll(async () => (await committedVsEnd(kafka, group, topic)).committed, { timeout: 10_000 }).toBe(total);
  });

  test('a delivery consumer stopped mid-way with POSTs in flight is replaced by a new one: every message still arrives', async () => {
    const receiver = await startReceiver();
    // The first 10 are answered; later requests hang, so the stop below interrupts real POSTs.
    receiver.state.holdAfter = 10;
    const { topic, total } = await publishedCases(6, 5);
    const group = `t${randomUUID().slice(0, 8)}-webhook`;
    const first = await startDelivery(topic, group, receiver.url);
    await expect.poll(() => receiver.held.length, { timeout: 20_000 }).toBeGreaterThan(0);
    await first.stop();
    expect(receiver.unique()).toBe(10);
    expect((await committedVsEnd(kafka, group, topic)).committed).toBeLessThanOrEqual(10);

    receiver.state.mode = 'ok';
    receiver.state.holdAfter = Number.POSITIVE_INFINITY;
    await startDelivery(topic, group, receiver.url);
    await expect.poll(() => receiver.unique(), { timeout: 20_000 }).toBe(total);
    expect(receiver.refused).toEqual([]);
    expectOrderedPerCase(receiver.accepted);
    await expect.poll(async () => (await committedVsEnd(kafka, group, topic)).committed, { timeout: 10_000 }).toBe(total);
  });

  test('the pipeline delivers its cases topic when CASE_WEBHOOK_URL is set, as group <KAFKA_GROUP_ID>-webhook, and stops it on shutdown', async () => {
    const receiver = await startReceiver();
    const { topic, total } = await publishedCases(2, 2);
    const s = services({ KAFKA_CASES_TOPIC: topic, CASE_WEBHOOK_URL: receiver.url, CASE_WEBHOOK_SECRET: secret });
    cleanups.push(() => s.cleanup());
    const pipeline = await startPipeline(s.config, silentLogger);
    let stopped = false;
    cleanups.push(async () => stopped || (await pipeline.stop()));
    await expect.poll(() => receiver.unique(), { timeout: 20_000 }).toBe(total);
    await expect.poll(async () => (await committedVsEnd(kafka, `${s.config.kafkaGroupId}-webhook`, topic)).committed, { timeout: 10_000 }).toBe(total);
    stopped = true;
    await pipeline.stop();
    expect(await pipeline.metrics.registry.render()).toMatch(/^paysentinel_case_webhook_delivered_total [1-9]/m);
  });
});
