import { randomUUID } from 'node:crypto';
import { Partitioners, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { StoredCommand } from '../../automation/index.ts';
import { createCaseStore, type CaseStore } from '../../cases/index.ts';
import { queryRows } from '../../storage/clickhouse.ts';
import { ident, sql } from '../../storage/sql.ts';
import { makeEvent, readWholeTopic, services, spawnPipeline, type ChildPipeline } from './helpers.ts';

/**
 * Never two refunds for one attempt, with real `paysentinel start` processes: a duplicate charge
 * with refunds on, the process SIGKILLed right after it stored the refund command, then started
 * again; and two instances started together whose leader is killed the same way. The commands
 * topic and ClickHouse must hold one refund command (one command_id) for the extra attempt.
 *
 * Delivery of commands is at least once (contract/command.ts): a process that stored a command
 * cannot know after a SIGKILL whether it also published it, so the next one publishes it again
 * under the same command_id, which the gateway carries out once. The tests count the messages
 * exactly: one more than the killed process published when it died before recording the case,
 * none more when it had recorded it, and none more on any later pass.
 */
const s = services({
  AUTOMATION: 'on',
  AUTOMATION_REFUNDS: 'on',
  AUTO_REFUND_MAX_MINOR: '50000',
  AUTO_REFUND_DAILY_MINOR: '10000000',
  DETECTION_TICK_MS: '200',
  KAFKA_TOPIC_PARTITIONS: '2',
});
const db = s.config.clickhouseDatabase;
const running: ChildPipeline[] = [];
let producer: Producer;
let store: CaseStore;

beforeAll(async () => {
  producer = s.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  store = createCaseStore({ clickhouse: s.clickhouse, database: db, producer: { send: async () => [] }, topic: s.config.casesTopic });
});
afterAll(async () => {
  for (const p of running) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await producer?.disconnect();
  await s.cleanup();
});

interface Instance {
  p: ChildPipeline;
  port: number;
}
const start = (): Instance => {
  const port = 20_000 + Math.floor(Math.random() * 10_000);
  const p = spawnPipeline({ ...s.env, HTTP_PORT: String(port) });
  running.push(p);
  return { p, port };
};
const ready = (i: Instance) =>
  expect
    .poll(
      async () => {
        // A process that exited will never answer: say why instead of waiting out the timeout.
        if (i.p.child.exitCode !== null) throw new Error(`paysentinel start exited: ${i.p.output()}`);
        return (await fetch(`http://127.0.0.1:${i.port}/healthz`).catch(() => null))?.status === 200;
      },
      { timeout: 90_000, interval: 250 },
    )
    .toBe(true);
const leads = async (i: Instance) => {
  const text = await fetch(`http://127.0.0.1:${i.port}/metrics`)
    .then((r) => r.text())
    .catch(() => '');
  return Number(/^paysentinel_detection_leader (\d+)$/m.exec(text)?.[1] ?? NaN);
};

/** Two succeeded attempts of one order, as the gateway reports a customer charged twice. */
async function duplicateCharge(): Promise<string> {
  const orderId = `o-${randomUUID().slice(0, 8)}`;
  const now = Date.now();
  const event = (n: number, attempt: number, status: string, atMs: number) =>
    makeEvent(n, {
      event_id: `${orderId}-${n}`,
      occurred_at: new Date(atMs).toISOString(),
      order_id: orderId,
      attempt,
      status,
      transaction_id: `T-${orderId}-${attempt}`,
      amount_minor: 12_900,
      currency: 'CNY',
      channel: 'alipay',
    });
  const events = [event(1, 1, 'processing', now - 20_000), event(2, 1, 'succeeded', now - 15_000), event(3, 2, 'succeeded', now - 5_000)];
  await producer.send({ topic: s.config.eventsTopic, acks: -1, messages: events.map((e) => ({ key: orderId, value: JSON.stringify(e) })) });
  return orderId;
}

/** The refund commands of an order in ClickHouse, as the commands view holds them. */
const storedRefunds = (orderId: string) =>
  queryRows<StoredCommand>(s.clickhouse, sql`SELECT * FROM ${ident(db, 'commands')} WHERE type = 'refund' AND order_id = ${orderId}`);
/** Distinct command ids among the stored versions of an order's refunds (a second id would be a second refund). */
const storedRefundIds = async (orderId: string) =>
  (
    await queryRows<{ command_id: string }>(
      s.clickhouse,
      sql`SELECT DISTINCT command_id FROM ${ident(db, 'command_versions')} WHERE type = 'refund' AND order_id = ${orderId}`,
    )
  ).map((r) => r.command_id);

/** Every message on the commands topic so far. */
const published = async (): Promise<{ command_id: string; type: string; order_id?: string; attempt?: number }[]> =>
  (await readWholeTopic(s.kafka, s.config.commandsTopic).catch(() => [])).map((m) => JSON.parse(m.value));
const publishedFor = async (orderId: string) => (await published()).filter((m) => m.order_id === orderId);

/** The duplicate-charge case of the order has been taken by automation (its handling is recorded). */
async function taken(orderId: string): Promise<boolean> {
  const [c] = (await store.list({ rule: 'duplicate_charge' })).filter((x) => x.entity_id === orderId);
  if (!c) return false;
  return (await store.history(c.case_id)).some((h) => h.changed_by === 'automation');
}

/**
 * What a killed process left: the messages for the order on the topic, and when it died. Whether
 * it recorded the case is read later from the case's history (versions it stamped before it
 * died): an insert it had sent may still land after it is gone.
 */
async function leftAtKill(orderId: string) {
  const killedAtMs = Date.now();
  return { sent: (await publishedFor(orderId)).length, killedAtMs };
}

/**
 * After the survivor took the case: one more duplicate charge, handled end to end, shows later
 * passes have run; then the first order must still have its one refund and no new message.
 */
async function expectOneRefund(orderId: string, atKill: { sent: number; killedAtMs: number }) {
  await expect.poll(() => taken(orderId), { timeout: 90_000, interval: 250 }).toBe(true);
  const later = await duplicateCharge();
  await expect.poll(() => taken(later), { timeout: 90_000, interval: 250 }).toBe(true);

  const refunds = await storedRefunds(orderId);
  expect(refunds.map((r) => [r.attempt, Number(r.amount_minor), r.currency, r.mode, r.status])).toEqual([[2, 12_900, 'CNY', 'on', 'issued']]);
  expect(await storedRefundIds(orderId)).toEqual([refunds[0]!.command_id]);
  const messages = await publishedFor(orderId);
  expect(messages.map((m) => [m.type, m.attempt])).toEqual(messages.map(() => ['refund', 2]));
  expect(new Set(messages.map((m) => m.command_id))).toEqual(new Set([refunds[0]!.command_id]));
  // Re-sent once, under the same id, exactly when the killed process had not recorded on the case that it had sent it.
  const [c] = (await store.list({ rule: 'duplicate_charge' })).filter((x) => x.entity_id === orderId);
  const history = await store.history(c!.case_id);
  const recordedBeforeDeath = history.some((h) => h.changed_by === 'automation' && Number(h.version) < atKill.killedAtMs);
  const notes = history.map((h) => `${h.version} ${h.changed_by}: ${h.note}`);
  expect(messages.length, JSON.stringify({ atKill, notes })).toBe(atKill.sent + (recordedBeforeDeath ? 0 : 1));
  // The later order got its own single refund too.
  expect(await storedRefundIds(later)).toHaveLength(1);
}

describe('never two refunds for one attempt, with real processes', () => {
  test('SIGKILL right after the refund command is stored, then a restart: one refund command for the extra attempt', async () => {
    const first = start();
    await ready(first);
    const orderId = await duplicateCharge();
    // Kill as soon as the command is in ClickHouse: before or just after it is published, before the case records it.
    await expect.poll(async () => (await storedRefunds(orderId)).length, { timeout: 90_000, interval: 20 }).toBe(1);
    first.p.child.kill('SIGKILL');
    expect(await first.p.exited).toBe(null);
    const atKill = await leftAtKill(orderId);

    const second = start();
    await ready(second);
    await expectOneRefund(orderId, atKill);
    second.p.child.kill('SIGTERM');
    expect(await second.p.exited, second.p.output()).toBe(0);
  });

  test('two instances started together, the leader SIGKILLed right after storing the refund: the other takes over, one refund command', async () => {
    const pair = [start(), start()];
    await Promise.all(pair.map(ready));
    // One of them leads detection and automation.
    await expect.poll(async () => (await Promise.all(pair.map(leads))).sort(), { timeout: 60_000, interval: 250 }).toEqual([0, 1]);
    const leader = (await leads(pair[0]!)) === 1 ? pair[0]! : pair[1]!;
    const other = leader === pair[0] ? pair[1]! : pair[0]!;

    const orderId = await duplicateCharge();
    await expect.poll(async () => (await storedRefunds(orderId)).length, { timeout: 90_000, interval: 20 }).toBe(1);
    leader.p.child.kill('SIGKILL');
    expect(await leader.p.exited).toBe(null);
    const atKill = await leftAtKill(orderId);
    // The survivor takes the lease once the dead member's session has expired.
    await expect.poll(() => leads(other), { timeout: 60_000, interval: 250 }).toBe(1);
    // The killed one comes back beside it: two instances again (serving, though the ingest group may still be balancing).
    const back = start();
    await expect.poll(async () => (await leads(back)) >= 0, { timeout: 90_000, interval: 250 }).toBe(true);
    await expectOneRefund(orderId, atKill);
    for (const i of [other, back]) i.p.child.kill('SIGTERM');
    for (const i of [other, back]) expect(await i.p.exited, i.p.output()).toBe(0);
  });
});
