import { afterAll, describe, expect, test } from 'vitest';
import { committedVsEnd, makeEvent, readTopic, scalar, services, spawnPipeline, storedCount } from './helpers.ts';
import { ident } from '../../storage/sql.ts';

/**
 * Messages near the size limit, valid and not, against `paysentinel start --roles ingest`: the
 * row limits (tens of thousands of rows) would let such traffic fill gigabytes, so the byte
 * limits decide instead. Batches stay under INGEST_BATCH_MAX_BYTES, fetching pauses at
 * INGEST_MAX_BUFFERED_BYTES, and every message is stored or dead-lettered once.
 */

const MiB = 1024 * 1024;
const port = 20_000 + Math.floor(Math.random() * 10_000);
const s = services({
  KAFKA_TOPIC_PARTITIONS: '3',
  INGEST_BATCH_MAX_BYTES: String(2 * MiB),
  INGEST_MAX_BUFFERED_BYTES: String(4 * MiB),
  HTTP_PORT: String(port),
});
afterAll(() => s.cleanup());

describe('large messages', () => {
  test('batches stay under the byte limit, fetching pauses at the buffer limit, and every message is stored or dead-lettered', async () => {
    const valid = Array.from({ length: 1_200 }, (_, i) => Buffer.from(JSON.stringify(makeEvent(i, { note: `${i} `.padEnd(60_000, 'x') }))));
    // Not UTF-8: each becomes a dead-letter record of about 80 KB (the bytes in base64).
    const invalid = Array.from({ length: 200 }, (_, i) => Buffer.alloc(60_000, 0xff - (i % 2)));
    const messages = valid.flatMap((v, i) => (i % 6 === 0 ? [v, invalid[i / 6]!] : [v]));
    const producer = s.kafka.producer();
    await producer.connect();
    try {
      for (let i = 0; i < messages.length; i += 8) {
        await producer.send({ topic: s.config.eventsTopic, acks: -1, messages: messages.slice(i, i + 8).map((value, k) => ({ key: `k${i + k}`, value })) });
      }
    } finally {
      await producer.disconnect();
    }

    const p = spawnPipeline({ ...s.env, LOG_LEVEL: 'debug' }, ['--roles', 'ingest']);
    try {
      await expect.poll(() => storedCount(s), { timeout: 120_000, interval: 500 }).toBe(valid.length);
      await expect
        .poll(async () => (await committedVsEnd(s.kafka, s.config.kafkaGroupId, s.config.eventsTopic)).committed, { timeout: 30_000 })
        .toBe(messages.length);
      // The notes arrived whole.
      expect(await scalar(s.clickhouse, `SELECT min(length(extra)) FROM ${ident(s.config.clickhouseDatabase, 'payment_events')}`)).toBeGreaterThan(60_000);
      const dead = await readTopic(s.kafka, s.config.dlqTopic, invalid.length, 30_000);
      expect(dead).toHaveLength(invalid.length);
      for (const d of dead) expect(JSON.parse(d.value)).toMatchObject({ reason: 'message is not valid UTF-8', raw_encoding: 'base64', raw_bytes: 60_000 });

      const lines = p
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string; bytes?: number; rows?: number; dead?: number; why?: string; bufferedBytes?: number });
      const flushed = lines.filter((l) => l.msg === 'flushed');
      // Every message went through a flush (a redelivery after a rebalance would add some).
      expect(flushed.reduce((n, l) => n + l.rows! + l.dead!, 0)).toBeGreaterThanOrEqual(messages.length);
      // Each batch: about 120 KB a valid message (as received and as a row), 160 KB a dead letter.
      for (const l of flushed) expect(l.bytes!, JSON.stringify(l)).toBeLessThanOrEqual(2 * MiB);
      expect(flushed.length).toBeGreaterThanOrEqual(Math.ceil((valid.length * 120_000) / (2 * MiB)));
      const paused = lines.filter((l) => l.msg === 'paused fetching' && l.why === 'buffer full');
      expect(paused.length, p.output().slice(-3000)).toBeGreaterThan(0);
      for (const l of paused) expect(l.bufferedBytes!).toBeGreaterThanOrEqual(4 * MiB);
      const resumed = lines.filter((l) => l.msg === 'resumed fetching' && l.why === 'buffer drained');
      expect(resumed.length).toBeGreaterThan(0);
      for (const l of resumed) expect(l.bufferedBytes!).toBeLessThan(2 * MiB);
      // Nothing is left waiting, and /metrics says so.
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^paysentinel_ingest_buffered_bytes 0$/m);
      expect(p.child.exitCode, p.output().slice(-3000)).toBe(null);
    } finally {
      p.child.kill('SIGTERM');
      expect(await p.exited, p.output().slice(-3000)).toBe(0);
    }
  });
});
