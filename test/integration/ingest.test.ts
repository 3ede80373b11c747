import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startPipeline, type RunningPipeline } from '../../cli/pipeline.ts';
import { silentLogger } from '../../log/index.ts';
import { queryRows } from '../../storage/clickhouse.ts';
import { ident } from '../../storage/sql.ts';
import { committedVsEnd, duplicateIds, makeEvent, readTopic, services, storedCount } from './helpers.ts';

/**
 * Messages produced by a plain kafkajs producer (not the project's simulator): valid events,
 * exact redeliveries, hostile strings, unicode, boundary values and malformed messages.
 */
// A port of its own for /metrics and /healthz.
const httpPort = 20_000 + Math.floor(Math.random() * 10_000);
const s = services({ HTTP_PORT: String(httpPort) });
let pipeline: RunningPipeline;

const valid = Array.from({ length: 600 }, (_, i) => makeEvent(i));
const special = [
  makeEvent(10_001, { event_id: 'quote\'\\back"slash', order_id: "'; DROP TABLE payment_events; --", merchant_id: 'nul\0byte' }),
  makeEvent(10_002, { event_id: '支付-😀-مرحبا', user_id: '用户'.repeat(64), channel: 'wechat_pay' }),
  makeEvent(10_003, { amount_minor: 0, attempt: 100, occurred_at: '1970-01-01T00:00:00Z', currency: 'USD' }),
  makeEvent(10_004, { amount_minor: 1e15, occurred_at: '2026-11-25T18:15:00.999+08:00', ip: '2001:db8::1' }),
  makeEvent(10_005, { type: 'refund', status: 'succeeded', attempt: undefined, event_id: 'x'.repeat(128) }),
  makeEvent(10_006, { status: 'timeout', failure_code: 'brand_new_code', source: 'status_query', risk: { score: 0.93, tags: ['a'] } }),
];
const malformed: { value: Buffer; reason: RegExp }[] = [
  { value: Buffer.from('{not json'), reason: /not valid JSON/ },
  { value: Buffer.from('[1,2,3]'), reason: /not a JSON object/ },
  { value: Buffer.from(JSON.stringify(makeEvent(20_001, { order_id: undefined }))), reason: /missing required field "order_id"/ },
  { value: Buffer.from(JSON.stringify(makeEvent(20_002, { occurred_at: 'yesterday' }))), reason: /RFC 3339/ },
  { value: Buffer.from(JSON.stringify(makeEvent(20_003, { ip: '300.1.2.3' }))), reason: /IPv4 or IPv6/ },
  { value: Buffer.from(JSON.stringify(makeEvent(20_004, { amount_minor: 1e15 + 1 }))), reason: /amount_minor/ },
  { value: Buffer.from(JSON.stringify(makeEvent(20_005, { status: 'failed' }))), reason: /failure_code/ },
  { value: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), reason: /not valid UTF-8/ },
  { value: Buffer.from(JSON.stringify(makeEvent(20_006, { pad: 'p'.repeat(70_000) }))), reason: /over the 65536-byte limit/ },
];

beforeAll(async () => {
  pipeline = await startPipeline(s.config, silentLogger);
  const producer = s.kafka.producer();
  await producer.connect();
  const redeliveries = valid.filter((_, i) => i % 20 === 0);
  const all = [...valid, ...special, ...redeliveries].map((e) => ({ key: String(e.order_id), value: JSON.stringify(e) }));
  const bad = malformed.map((m, i) => ({ key: `bad-${i}`, value: m.value }));
  // Interleave so malformed messages sit between valid ones on the same partitions.
  for (let i = 0; i < all.length; i += 50) {
    await producer.send({ topic: s.config.eventsTopic, acks: -1, messages: [...all.slice(i, i + 50), ...bad.splice(0, 1)] });
  }
  await producer.send({ topic: s.config.eventsTopic, acks: -1, messages: bad });
  // The same messages again, as a producer retry after a lost ack would send them.
  await producer.send({ topic: s.config.eventsTopic, acks: -1, messages: all.slice(0, 100) });
  await producer.disconnect();
});

afterAll(async () => {
  await pipeline?.stop();
  await s.cleanup();
});

describe('ingest from an outside producer', () => {
  test('every distinct valid event is stored exactly once', async () => {
    const expected = valid.length + special.length;
    await expect.poll(() => storedCount(s), { timeout: 60_000, interval: 250 }).toBe(expected);
    expect(await duplicateIds(s)).toBe(0);
    // Counted once the write that skipped them returns, a moment after its rows are visible.
    await expect.poll(() => pipeline.metrics.duplicates.get(), { timeout: 10_000 }).toBeGreaterThanOrEqual(130);
  });

  test('fields arrive intact, hostile strings and unicode verbatim, extra fields kept', async () => {
    const rows = await queryRows<Record<string, unknown>>(
      s.clickhouse,
      `SELECT * FROM ${ident(s.config.clickhouseDatabase, 'payment_events')} WHERE kafka_offset >= 0 ` +
        `AND (event_id LIKE 'evt-1000%' OR amount_minor IN (0, 1000000000000000) ` +
        `OR event_id IN ('支付-😀-مرحبا', 'quote''\\\\back"slash') OR type = 'refund' OR status = 'timeout')`,
    );
    const byId = new Map(rows.map((r) => [r.event_id as string, r]));
    const hostile = byId.get('quote\'\\back"slash')!;
    expect(hostile).toMatchObject({ order_id: "'; DROP TABLE payment_events; --", merchant_id: 'nul\0byte' });
    expect(byId.get('支付-😀-مرحبا')).toMatchObject({ user_id: '用户'.repeat(64), channel: 'wechat_pay' });
    expect(byId.get('evt-10003')).toMatchObject({ amount_minor: '0', attempt: 100, currency: 'USD' });
    // 18.16 prints epoch 0 as 0000-00-00 00:00:00, so compare the stored number itself.
    const epoch = await queryRows<{ t: number }>(
      s.clickhouse,
      `SELECT toUInt32(occurred_at) AS t FROM ${ident(s.config.clickhouseDatabase, 'payment_events')} WHERE event_id = 'evt-10003'`,
    );
    expect(epoch).toEqual([{ t: 0 }]);
    expect(byId.get('evt-10004')).toMatchObject({ amount_minor: '1000000000000000', occurred_at: '2026-11-25 10:15:00', occurred_ms: 999, ip: '2001:db8::1' });
    expect(byId.get('x'.repeat(128))).toMatchObject({ type: 'refund', attempt: null });
    const timeout = byId.get('evt-10006')!;
    expect(timeout).toMatchObject({ status: 'timeout', failure_code: 'brand_new_code', source: 'status_query' });
    expect(JSON.parse(timeout.extra as string)).toEqual({ risk: { score: 0.93, tags: ['a'] } });
    const sample = await queryRows<Record<string, unknown>>(
      s.clickhouse,
      `SELECT * FROM ${ident(s.config.clickhouseDatabase, 'payment_events')} WHERE event_id = 'evt-7'`,
    );
    const e = makeEvent(7);
    expect(sample[0]).toMatchObject({
      order_id: e.order_id,
      attempt: e.attempt,
      transaction_id: e.transaction_id,
      amount_minor: String(e.amount_minor),
      channel: e.channel,
      merchant_id: e.merchant_id,
      user_id: e.user_id,
      device_id: e.device_id,
      ip: e.ip,
      source: e.source,
      extra: '',
    });
  });

  test('every malformed message is in the dead-letter topic with a reason, its source and the original bytes', async () => {
    const dead = await readTopic(s.kafka, s.config.dlqTopic, malformed.length);
    expect(dead).toHaveLength(malformed.length);
    const letters = dead.map(
      (d) => JSON.parse(d.value) as { reason: string; source: { topic: string; partition: number; offset: string }; raw: string; raw_encoding: string },
    );
    for (const m of malformed) {
      const letter = letters.find((l) => m.reason.test(l.reason));
      expect(letter, String(m.reason)).toBeDefined();
      expect(letter!.source.topic).toBe(s.config.eventsTopic);
      expect(Number(letter!.source.offset)).toBeGreaterThanOrEqual(0);
      const original = letter!.raw_encoding === 'base64' ? Buffer.from(letter!.raw, 'base64') : Buffer.from(letter!.raw, 'utf8');
      expect(original.equals(m.value)).toBe(true);
    }
    expect(letters.find((l) => /UTF-8/.test(l.reason))!.raw_encoding).toBe('base64');
  });

  test('/healthz is ready and /metrics exposes the counters in Prometheus text', async () => {
    const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ready: true, checks: { kafka: true, clickhouse: true, assigned: true } });
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^# TYPE paysentinel_ingest_consumed_total counter$/m);
    expect(metrics).toMatch(/^paysentinel_consumer_lag\{partition="\d+",topic="[^"]+"\} \d+$/m);
    expect(metrics).toMatch(/^paysentinel_ingest_insert_seconds_count [1-9]\d*$/m);
  });

  test('offsets are committed up to the end once everything is stored', async () => {
    await expect
      .poll(async () => (await committedVsEnd(s.kafka, s.config.kafkaGroupId, s.config.eventsTopic)).committed, { timeout: 30_000 })
      .toBe((await committedVsEnd(s.kafka, s.config.kafkaGroupId, s.config.eventsTopic)).end);
    const text = await pipeline.metrics.registry.render();
    expect(text).toMatch(/paysentinel_ingest_stored_total 606/);
    expect(text).toMatch(/paysentinel_ingest_dead_lettered_total\{reason="[^"]+"\} \d+/);
  });
});
