import { afterAll, describe, expect, test } from 'vitest';
import type { Kafka } from 'kafkajs';
import { command } from '../../storage/clickhouse.ts';
import { loadMigrations } from '../../storage/migrations.ts';
import { ident } from '../../storage/sql.ts';
import {
  committedVsEnd,
  duplicateIds,
  makeEvent,
  readTopic,
  scalar,
  services,
  spawnPipeline,
  storedCount,
  type ChildPipeline,
  type TestServices,
} from './helpers.ts';

/**
 * Traffic that is not shaped like the simulator's, against `paysentinel start` as a real process:
 * a burst of late events spread over a day, an hour of traffic caught up after a stop, and rows
 * that ClickHouse itself refuses. Ingest must store every event once (or dead-letter it with the
 * server's reason) and keep running.
 */

const randomPort = () => 20_000 + Math.floor(Math.random() * 10_000);

async function produce(kafka: Kafka, topic: string, events: readonly Record<string, unknown>[], perSend = 2_000): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  try {
    for (let i = 0; i < events.length; i += perSend) {
      const messages = events.slice(i, i + perSend).map((e) => ({ key: String(e.order_id), value: JSON.stringify(e) }));
      await producer.send({ topic, acks: -1, messages });
    }
  } finally {
    await producer.disconnect();
  }
}

async function health(port: number): Promise<{ status: string; ready: boolean; degraded?: Record<string, unknown> } | null> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null);
  return res ? ((await res.json()) as { status: string; ready: boolean }) : null;
}

/** Starts `paysentinel start` and waits until it has joined the group and answers ready. */
async function startReady(s: TestServices, port: number): Promise<ChildPipeline> {
  const p = spawnPipeline({ ...s.env, HTTP_PORT: String(port) });
  await expect.poll(async () => (await health(port))?.ready ?? (p.child.exitCode !== null ? 'exited' : false), { timeout: 90_000, interval: 250 }).toBe(true);
  return p;
}

async function stop(p: ChildPipeline): Promise<number | null> {
  p.child.kill('SIGTERM');
  return p.exited;
}

/** Deterministic shuffle, so a failure can be replayed. */
function shuffled<T>(items: T[], seed = 7): T[] {
  const out = [...items];
  let x = seed;
  for (let i = out.length - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const allCommitted = (s: TestServices) => async () => {
  const o = await committedVsEnd(s.kafka, s.config.kafkaGroupId, s.config.eventsTopic);
  return o.end - o.committed;
};

describe('ingest keeps running whatever the traffic looks like', () => {
  const burst = services();
  afterAll(() => burst.cleanup());

  test('a burst of 10,000 late events, each in its own second of the last 24 hours, is stored once and ingest keeps running', async () => {
    const port = randomPort();
    const p = await startReady(burst, port);
    try {
      const now = Date.now();
      const dayMs = 24 * 3600 * 1000;
      // 10,000 distinct seconds spread evenly over the last day, sent in shuffled order in one go.
      const events = shuffled(
        Array.from({ length: 10_000 }, (_, i) =>
          makeEvent(i, {
            event_id: `late-${i}`,
            order_id: `late-ord-${Math.floor(i / 3)}`,
            occurred_at: new Date(now - dayMs + Math.floor((i * dayMs) / 10_000 / 1000) * 1000 + 500).toISOString(),
          }),
        ),
      );
      expect(new Set(events.map((e) => String(e.occurred_at).slice(0, 19))).size).toBe(10_000);
      await produce(burst.kafka, burst.config.eventsTopic, events);
      await expect.poll(() => storedCount(burst), { timeout: 120_000, interval: 500 }).toBe(10_000);
      expect(await duplicateIds(burst)).toBe(0);
      await expect.poll(allCommitted(burst), { timeout: 30_000 }).toBe(0);
      expect(p.child.exitCode, p.output()).toBe(null);
      expect((await health(port))?.status).toBe('ok');
    } finally {
      expect(await stop(p), p.output()).toBe(0);
    }
  });
});

describe('catch-up after a stop', () => {
  const s = services({ KAFKA_TOPIC_PARTITIONS: '3' });
  afterAll(() => s.cleanup());

  test('an hour of traffic at 300 events/s produced while the pipeline was stopped is stored once when it starts again, without a restart', async () => {
    const port = randomPort();
    // Started once so the group exists and has committed, then stopped: the gateway keeps sending.
    const first = await startReady(s, port);
    expect(await stop(first), first.output()).toBe(0);

    const perSecond = 300;
    const seconds = 3600;
    const hourStart = Math.floor(Date.now() / 1000) * 1000 - seconds * 1000;
    const total = perSecond * seconds;
    const events = Array.from({ length: total }, (_, i) => {
      // Each order has two attempts; one report in fifty arrives as a late callback up to 10 min after the fact.
      const late = i % 50 === 0 ? Math.floor((i * 7919) % 600_000) : 0;
      const at = hourStart + Math.floor((i * 1000) / perSecond) - late;
      return makeEvent(i, {
        event_id: `hour-${i}`,
        order_id: `hour-ord-${Math.floor(i / 4)}`,
        occurred_at: new Date(Math.max(hourStart, at)).toISOString(),
        source: late ? 'gateway_callback' : 'client',
      });
    });
    const t0 = Date.now();
    await produce(s.kafka, s.config.eventsTopic, events, 5_000);
    const t1 = Date.now();

    const second = spawnPipeline({ ...s.env, HTTP_PORT: String(port) });
    try {
      await expect.poll(() => storedCount(s), { timeout: 420_000, interval: 2_000 }).toBe(total);
      console.log(
        `catch-up: ${total} events produced in ${((t1 - t0) / 1000).toFixed(1)} s, stored in ${((Date.now() - t1) / 1000).toFixed(1)} s after the start`,
      );
      expect(await duplicateIds(s)).toBe(0);
      await expect.poll(allCommitted(s), { timeout: 60_000 }).toBe(0);
      expect(second.child.exitCode, second.output()).toBe(null);
    } finally {
      expect(await stop(second), second.output()).toBe(0);
    }
  }, 600_000);
});

describe('rows ClickHouse refuses', () => {
  // `extra` (the event's unknown fields) as a FixedString too short for some of them: the server
  // refuses exactly the events whose extra fields do not fit. No view copies `extra`.
  const s = services({ KAFKA_TOPIC_PARTITIONS: '3', INGEST_BATCH_MAX_ROWS: '1000', INGEST_BATCH_MAX_MS: '200' });
  afterAll(() => s.cleanup());

  const refusedIds = ['bad-0', 'bad-1', 'bad-2', 'bad-3', 'bad-4', 'bad-5'];
  const wave = (from: number, count: number) => Array.from({ length: count }, (_, i) => makeEvent(from + i, { event_id: `ok-${from + i}` }));

  test('exactly the refused rows reach the dead-letter topic with the server reason; every other row is stored and ingest goes on', async () => {
    const db = ident(s.config.clickhouseDatabase);
    await command(s.clickhouse, `CREATE DATABASE IF NOT EXISTS ${db}`);
    const events = loadMigrations(s.config.clickhouseDatabase)[0]!.statements.find((st) => /CREATE TABLE IF NOT EXISTS .*payment_events\b/.test(st))!;
    await command(s.clickhouse, events.replace(/\bextra String\b/, 'extra FixedString(16)'));

    const port = randomPort();
    const p = await startReady(s, port);
    try {
      const first = wave(0, 3_000);
      // Refused rows sit inside otherwise good batches, on several partitions.
      refusedIds.forEach((id, k) =>
        first.splice(400 * k + 17, 0, makeEvent(90_000 + k, { event_id: id, note: `an extra field longer than sixteen bytes #${k}` })),
      );
      await produce(s.kafka, s.config.eventsTopic, first, 500);
      await expect.poll(() => storedCount(s), { timeout: 90_000, interval: 250 }).toBe(3_000);

      const dead = (await readTopic(s.kafka, s.config.dlqTopic, refusedIds.length, 30_000)).map(
        (m) => JSON.parse(m.value) as { reason: string; raw: string; source: { partition: number; offset: string } },
      );
      expect(dead.map((d) => (JSON.parse(d.raw) as { event_id: string }).event_id).sort()).toEqual(refusedIds);
      for (const d of dead) expect(d.reason).toMatch(/^rejected by ClickHouse: .*FixedString/s);
      expect(await scalar(s.clickhouse, `SELECT count() FROM ${ident(s.config.clickhouseDatabase, 'payment_events')} WHERE event_id LIKE 'bad-%'`)).toBe(0);

      // Still running: the next events are stored too.
      await produce(s.kafka, s.config.eventsTopic, wave(3_000, 500));
      await expect.poll(() => storedCount(s), { timeout: 60_000, interval: 250 }).toBe(3_500);
      await expect.poll(allCommitted(s), { timeout: 30_000 }).toBe(0);
      expect(p.child.exitCode, p.output()).toBe(null);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^paysentinel_ingest_rejected_rows_total 6$/m);
    } finally {
      expect(await stop(p), p.output()).toBe(0);
    }
  });

  test('a poison batch cannot cause a crash loop: start, stop, start again, and the offsets have moved past it', async () => {
    const before = await committedVsEnd(s.kafka, s.config.kafkaGroupId, s.config.eventsTopic);
    // A batch of nothing but refused rows, then good ones behind it.
    const poison = Array.from({ length: 50 }, (_, k) => makeEvent(95_000 + k, { event_id: `poison-${k}`, note: 'x'.repeat(40) }));
    await produce(s.kafka, s.config.eventsTopic, [...poison, ...wave(4_000, 200)]);

    const port = randomPort();
    const first = await startReady(s, port);
    await expect.poll(() => storedCount(s), { timeout: 60_000, interval: 250 }).toBe(3_700);
    await expect.poll(allCommitted(s), { timeout: 30_000 }).toBe(0);
    expect(await stop(first), first.output()).toBe(0);
    const after = await committedVsEnd(s.kafka, s.config.kafkaGroupId, s.config.eventsTopic);
    expect(after.committed).toBe(before.end + 250);

    // Started again, nothing is left to re-read: it stays up, and the poison went to the DLQ once.
    const second = await startReady(s, port);
    try {
      await produce(s.kafka, s.config.eventsTopic, wave(5_000, 100));
      await expect.poll(() => storedCount(s), { timeout: 60_000, interval: 250 }).toBe(3_800);
      await expect.poll(allCommitted(s), { timeout: 30_000 }).toBe(0);
      expect(second.child.exitCode, second.output()).toBe(null);
      const dead = await readTopic(s.kafka, s.config.dlqTopic, 6 + 50 + 1, 10_000);
      expect(dead.filter((m) => m.value.includes('poison-'))).toHaveLength(50);
      expect(dead).toHaveLength(56);
    } finally {
      expect(await stop(second), second.output()).toBe(0);
    }
  });
});
