import { afterAll, describe, expect, test } from 'vitest';
import { createCaseStore, type Case } from '../../cases/index.ts';
import { silentLogger } from '../../log/index.ts';
import type { Hit } from '../../rules/index.ts';
import { migrate } from '../../storage/migrations.ts';
import { ensureTopics } from '../../kafka/index.ts';
import { readTopic, services } from './helpers.ts';

const s = services();
afterAll(() => s.cleanup());

const hit = (i: number, value: number): Hit => ({
  ruleId: 'retry_storm',
  ruleVersion: 'v1',
  title: 'Retry storm',
  severity: 'medium',
  action: 'notify_support',
  entityType: 'user',
  entityId: `user-'${i}`,
  cooldownMs: 600_000,
  recommendedAction: `User ${i} retried ${value} times.`,
  evidence: { user_max_attempts_per_order_1m: value },
});

describe('case store on the real ClickHouse and Kafka', () => {
  const title1 =
    'a tick with 20,000 hits opens 20,000 cases, and the next tick with fresh evidence ' +
    'updates each of them: no statement too big to run, no Kafka request too big to send';
  test(title1, async () => {
    const database = s.config.clickhouseDatabase;
    await migrate(s.clickhouse, database, silentLogger);
    const topic = `${s.config.eventsTopic}.cases`;
    const admin = s.kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [{ topic, numPartitions: 1, replicationFactor: 1 }]);
    const producer = s.kafka.producer();
    await producer.connect();
    const store = createCaseStore({ clickhouse: s.clickhouse, database, producer, topic });
    const n = 20_000;
    const first = await store.applyHits(
      Array.from({ length: n }, (_, i) => hit(i, 5)),
      Date.now(),
    );
    expect(first.opened).toHaveLength(n);
    expect(first.updated).toHaveLength(0);
    const second = await store.applyHits(
      Array.from({ length: n }, (_, i) => hit(i, 6)),
      Date.now() + 1_000,
    );
    expect(second.opened).toHaveLength(0);
    expect(second.updated).toHaveLength(n);
    expect(second.updated.every((c) => c.hit_count === 2)).toBe(true);
    // Every version reached the real broker (whose default limit is 1 MB a request).
    const [end] = await admin.fetchTopicOffsets(topic);
    expect(Number(end!.high)).toBe(2 * n);
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
    expect(await store.list({ limit: 10_000 })).toHaveLength(10_000);
  });
});

/** One hit of a card-testing IP: each tick sees one more attempt. */
const probe = (attempts: number, ip = '198.51.100.23'): Hit => ({
  ruleId: 'ip_amount_probing',
  ruleVersion: 'v1',
  title: 'One IP probing many amounts',
  severity: 'high',
  action: 'notify_support',
  entityType: 'ip',
  entityId: ip,
  cooldownMs: 1_800_000,
  recommendedAction: `IP made ${attempts} attempts.`,
  evidence: { ip_attempts_10m: attempts },
});

/** An IP no other test in this file uses: the fixed ones above are 23 and 24, and the database outlives each test. */
let ipSeq = 100;
const freshIp = (prefix: string) => `${prefix}.${ipSeq++}`;

async function withTopic(run: (topic: string, producer: ReturnType<typeof s.kafka.producer>) => Promise<void>) {
  await migrate(s.clickhouse, s.config.clickhouseDatabase, silentLogger);
  const topic = `${s.config.eventsTopic}.cases.${Math.random().toString(36).slice(2, 8)}`;
  const admin = s.kafka.admin();
  await admin.connect();
  await ensureTopics(admin, [{ topic, numPartitions: 1, replicationFactor: 1 }]);
  const producer = s.kafka.producer();
  await producer.connect();
  try {
    await run(topic, producer);
  } finally {
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
  }
}

const published = async (topic: string, n: number) =>
  (await readTopic(s.kafka, topic, n, 15_000)).map((m) => JSON.parse(m.value) as Case & { changed_by: string });

describe('CASE_UPDATE_INTERVAL: fewer, better notifications', () => {
  const title2 =
    'card testing, 31 hits in 10 s: published when it opens, when support acknowledges, ' +
    'and once more at shutdown with the 31st hit count; one history line each';
  test(title2, async () => {
    await withTopic(async (topic, producer) => {
      const database = s.config.clickhouseDatabase;
      const store = createCaseStore({ clickhouse: s.clickhouse, database, producer, topic, updateIntervalMs: 300_000 });
      // A minute ago, so the shutdown (now) comes after every hit.
      const t = Date.now() - 60_000;
      let caseId = '';
      for (let i = 0; i < 31; i++) {
        const { opened } = await store.applyHits([probe(i + 1)], t + i * 330);
        if (i === 0) caseId = opened[0]!.case_id;
        if (i === 15) expect(await store.act(caseId, { action: 'acknowledge' }, 'sam', 'blocking the IP', t + i * 330 + 100)).toMatchObject({ kind: 'ok' });
      }
      // Between the opening and the shutdown only support's change was published and stored.
      expect((await published(topic, 2)).map((m) => [m.status, m.changed_by, m.hit_count])).toEqual([
        ['open', 'detector', 1],
        ['acknowledged', 'sam', 1],
      ]);
      expect(await store.history(caseId)).toHaveLength(2);

      await store.flush();
      const all = await published(topic, 3);
      expect(all).toHaveLength(3);
      // The latest state wins, and support's acknowledgement is kept.
      expect(all[2]).toMatchObject({ case_id: caseId, status: 'acknowledged', changed_by: 'detector', hit_count: 31, evidence: { ip_attempts_10m: 31 } });
      expect((await store.history(caseId)).map((h) => [h.changed_by, h.status, Number(h.hit_count)])).toEqual([
        ['detector', 'open', 1],
        ['sam', 'acknowledged', 1],
        ['detector', 'acknowledged', 31],
      ]);
      expect(await store.get(caseId)).toMatchObject({ status: 'acknowledged', hit_count: 31, evidence: { ip_attempts_10m: 31 } });
    });
  });

  test('a held update is published when its interval ends, without a further hit', async () => {
    await withTopic(async (topic, producer) => {
      const store = createCaseStore({ clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, producer, topic, updateIntervalMs: 5_000 });
      const admin = s.kafka.admin();
      await admin.connect();
      const end = async () => Number((await admin.fetchTopicOffsets(topic))[0]!.high);
      const t = Date.now();
      await store.applyHits([probe(1, '198.51.100.24')], t);
      const second = await store.applyHits([probe(2, '198.51.100.24')], t + 100);
      expect(second.updated).toEqual([]);
      expect(await end()).toBe(1);
      // About five seconds after the opening the timer publishes it, with no further hit.
      await expect.poll(end, { timeout: 20_000, interval: 250 }).toBe(2);
      expect(Date.now() - t).toBeGreaterThanOrEqual(3_900);
      expect((await published(topic, 2)).map((m) => m.hit_count)).toEqual([1, 2]);
      await store.flush();
      expect(await end()).toBe(2);
      await admin.disconnect();
    });
  });
});

describe('automation and the system write on top of the case as stored', () => {
  test("support's resolution made while automation's pass ran is kept; a case a person took keeps its assignee", async () => {
    await withTopic(async (topic, producer) => {
      const store = createCaseStore({ clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, producer, topic });
      const t = Date.now();
      const ip = freshIp('203.0.113');
      const [opened] = (await store.applyHits([probe(1, ip)], t)).opened;
      // Automation reads the case at its pass's start ...
      const read = (await store.get(opened!.case_id))!;
      // ... support resolves it meanwhile ...
      expect((await store.act(read.case_id, { action: 'resolve', resolution: 'confirmed_fraud' }, 'ana', 'blocked at the bank', t + 10)).kind).toBe('ok');
      // ... and automation then writes its change on the copy it read.
      await store.record({ ...read, assignee: 'automation', evidence: { ...read.evidence, automation: { sent: 'block' } } }, 'automation', 'Sent block', t + 5);
      await store.resolveBySystem([{ c: read, closedBy: { event_id: 'e-1' }, note: 'cleared' }], t + 5);
      expect(await store.get(read.case_id)).toMatchObject({ status: 'resolved', resolution: 'confirmed_fraud', assignee: '' });

      const [second] = (await store.applyHits([probe(1, `${ip}1`)], t)).opened;
      const copy = (await store.get(second!.case_id))!;
      // Support acts now, after detection's and automation's writes (which this store stamps after each other).
      await store.act(copy.case_id, { action: 'assign' }, 'ben', '', Date.now() + 1_000);
      await store.record({ ...copy, assignee: 'automation', evidence: { ...copy.evidence, automation: { sent: 'block' } } }, 'automation', 'Sent block', t + 5);
      expect(await store.get(copy.case_id)).toMatchObject({ status: 'open', assignee: 'ben', evidence: { automation: { sent: 'block' } } });
    });
  });

  test("a tick that began before automation's change still updates the case: its hits are not hidden behind automation's later version", async () => {
    await withTopic(async (topic, producer) => {
      // A whole second, and a clock half a second into it: automation's change is stamped t + 500.
      const t = Math.floor(Date.now() / 1000) * 1000 - 60_000;
      const store = createCaseStore({ clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, producer, topic, now: () => t + 500 });
      const ip = freshIp('198.51.100');
      const [opened] = (await store.applyHits([probe(1, ip)], t)).opened;
      const read = (await store.get(opened!.case_id))!;
      // Automation records its command, stamped with the clock ...
      await store.record({ ...read, assignee: 'automation', evidence: { ...read.evidence, automation: { sent: 'block' } } }, 'automation', 'Sent block', t + 5);
      // ... and a tick that started before that, at t + 1, brings a further hit.
      const { updated } = await store.applyHits([probe(2, ip)], t + 1);
      expect(updated.map((c) => c.case_id)).toEqual([read.case_id]);
      expect(await store.get(read.case_id)).toMatchObject({
        hit_count: 2,
        assignee: 'automation',
        evidence: { ip_attempts_10m: 2, automation: { sent: 'block' } },
      });
    });
  });
  test("support's change is stamped when written: automation's record stored while support's request ran does not hide it", async () => {
    await withTopic(async (topic, producer) => {
      const leader = createCaseStore({ clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, producer, topic });
      const consoleStore = createCaseStore({ clickhouse: s.clickhouse, database: s.config.clickhouseDatabase, producer, topic });
      const ip = freshIp('192.0.2');
      const [opened] = (await leader.applyHits([probe(1, ip)], Date.now() - 2_000)).opened;
      // Support clicks "resolve" ...
      const clicked = Date.now();
      const read = (await leader.get(opened!.case_id))!;
      // ... automation records its command while the request runs, stamped by the clock after the click ...
      await leader.record(
        { ...read, assignee: 'automation', evidence: { ...read.evidence, automation: { sent: 'block' } } },
        'automation',
        'Sent block',
        Date.now(),
      );
      // ... and support's write lands last, though asked for at the click.
      expect((await consoleStore.act(read.case_id, { action: 'resolve', resolution: 'confirmed_fraud' }, 'ana', '', clicked)).kind).toBe('ok');
      expect(await leader.get(read.case_id)).toMatchObject({ status: 'resolved', resolution: 'confirmed_fraud' });
    });
  });
});
