import { randomUUID } from 'node:crypto';
import { Partitioners, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  automationQueries,
  createAutomation,
  createManualCommands,
  requeryScheduledJob,
  runRequery,
  startCommandResults,
  type StoredCommand,
} from '../../automation/index.ts';
import { REQUERY_SCAN_ROWS } from '../../automation/requery.ts';
import { recentRuns } from '../../analytics/index.ts';
import { createCaseStore, type Case, type CaseStore } from '../../cases/index.ts';
import { loadConfig, type Config } from '../../config/index.ts';
import { commandProblem } from '../../contract/command.ts';
import { ensureTopics } from '../../kafka/index.ts';
import { silentLogger } from '../../log/index.ts';
import { loadRuleSetOrThrow, type Hit, type RuleSet } from '../../rules/index.ts';
import { insertRows, queryRows } from '../../storage/clickhouse.ts';
import { migrate } from '../../storage/migrations.ts';
import { ident, sql, toDateTimeText } from '../../storage/sql.ts';
import { spawnSync } from 'node:child_process';
import { readTopic, repoRoot, services } from './helpers.ts';

/**
 * Automation against the real Kafka and ClickHouse: cases of the shipped automatic rules, the
 * orders' events in ClickHouse, commands on a real topic, results from a real topic.
 */
const id = randomUUID().slice(0, 8);
const s = services({ KAFKA_COMMANDS_TOPIC: `t${id}.payments.commands`, KAFKA_COMMAND_RESULTS_TOPIC: `t${id}.payments.command-results` });
const db = s.config.clickhouseDatabase;
let producer: Producer;
let ruleSet: RuleSet;
let cases: CaseStore;
const T0 = Date.now();

beforeAll(async () => {
  await migrate(s.clickhouse, db, silentLogger);
  const admin = s.kafka.admin();
  await admin.connect();
  await ensureTopics(
    admin,
    [s.config.commandsTopic, s.config.commandResultsTopic, s.config.casesTopic, s.config.dlqTopic].map((topic) => ({
      topic,
      numPartitions: 2,
      replicationFactor: 1,
    })),
  );
  await admin.disconnect();
  producer = s.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  ruleSet = await loadRuleSetOrThrow();
  cases = createCaseStore({ clickhouse: s.clickhouse, database: db, producer, topic: s.config.casesTopic });
});
afterAll(async () => {
  await producer?.disconnect();
  const admin = s.kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [s.config.commandsTopic, s.config.commandResultsTopic] }).catch(() => {});
  await admin.disconnect();
  await s.cleanup();
});

const configWith = (env: Record<string, string>): Config => loadConfig({ ...process.env, ...s.env, ...env });
const refundsOn = { AUTOMATION: 'on', AUTOMATION_REFUNDS: 'on', AUTO_REFUND_MAX_MINOR: '50000', AUTO_REFUND_DAILY_MINOR: '1000000' };
const automation = (env: Record<string, string>, send: Pick<Producer, 'send'> = producer) =>
  createAutomation({ clickhouse: s.clickhouse, database: db, producer: send, config: configWith(env), cases, ruleSet: () => ruleSet, logger: silentLogger });

let seq = 0;
type EventSpec = { attempt: number; status: string; type?: string; source?: string; amount?: number; atMs?: number; currency?: string };

/** Stores payment events of an order as ingest would. */
async function events(orderId: string, list: EventSpec[]) {
  await insertRows(s.clickhouse, ident(db, 'payment_events').text, eventRows(orderId, list));
}

/** The rows ingest would store for these events of an order. */
function eventRows(orderId: string, list: EventSpec[]) {
  return list.map((e) => ({
    event_id: `${orderId}-${++seq}`,
    occurred_at: toDateTimeText(e.atMs ?? T0),
    occurred_ms: 0,
    type: e.type ?? 'payment',
    status: e.status,
    order_id: orderId,
    attempt: e.attempt,
    transaction_id: `T-${orderId}-${e.attempt}`,
    amount_minor: e.amount ?? 12_900,
    currency: e.currency ?? 'CNY',
    channel: 'alipay',
    merchant_id: 'm-1',
    user_id: 'u-1',
    source: e.source ?? 'gateway_callback',
    extra: '',
    kafka_partition: 0,
    kafka_offset: 0,
    ingested_at: toDateTimeText(Date.now()),
  }));
}

/** Opens the case detection would open for a rule and entity. */
async function openCase(ruleId: string, entityType: 'order' | 'ip', entityId: string): Promise<Case> {
  const rule = ruleSet.rules.find((r) => r.id === ruleId)!;
  const hit: Hit = {
    ruleId,
    ruleVersion: rule.version,
    title: rule.title,
    severity: rule.severity,
    action: rule.action,
    entityType,
    entityId,
    cooldownMs: rule.cooldownMs,
    recommendedAction: 'act',
    evidence: { seen: 1 },
  };
  const { opened } = await cases.applyHits([hit], Date.now());
  return opened[0]!;
}

const commandsOf = (caseId: string) =>
  queryRows<StoredCommand>(s.clickhouse, sql`SELECT * FROM ${ident(db, 'commands')} WHERE case_id = ${caseId} ORDER BY command_id`);
const refundsOfOrder = (orderId: string) =>
  queryRows<StoredCommand>(s.clickhouse, sql`SELECT * FROM ${ident(db, 'commands')} WHERE type = 'refund' AND order_id = ${orderId}`);
/** Messages on the commands topic so far (all partitions). */
async function topicCount(): Promise<number> {
  const admin = s.kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(s.config.commandsTopic);
  await admin.disconnect();
  return offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
}
const order = () => `o-${randomUUID().slice(0, 8)}`;
const cli = (args: string[]) =>
  spawnSync(process.execPath, ['bin/paysentinel.mjs', ...args], { cwd: repoRoot, env: { ...process.env, ...s.env }, encoding: 'utf8', timeout: 60_000 });

describe('automatic handling with commands to the gateway', () => {
  const oneRefund = 'a duplicate charge with refunds on yields one refund of the extra attempt, also after a pass crashed half-way and with two passes at once';
  test(oneRefund, async () => {
    const o = order();
    await events(o, [
      { attempt: 1, status: 'succeeded', atMs: T0 - 60_000 },
      { attempt: 2, status: 'succeeded', atMs: T0 - 30_000 },
    ]);
    const c = await openCase('duplicate_charge', 'order', o);
    const before = await topicCount();
    // A pass that dies after storing its command and before publishing it (as a SIGKILL would leave it).
    const crashing = automation(refundsOn, {
      send: async () => {
        throw new Error('killed');
      },
    });
    await expect(crashing.run()).rejects.toThrow('killed');
    expect((await refundsOfOrder(o)).map((r) => [r.attempt, r.status])).toEqual([[2, 'issued']]);
    expect(await topicCount()).toBe(before);
    // Two instances take over at once: the stored command is sent under its one id.
    await Promise.all([automation(refundsOn).run(), automation(refundsOn).run()]);
    const refunds = await refundsOfOrder(o);
    expect(refunds).toHaveLength(1);
    expect(refunds[0]).toMatchObject({ attempt: 2, amount_minor: expect.anything(), currency: 'CNY', mode: 'on', status: 'issued', case_id: c.case_id });
    const sent = (await readTopic(s.kafka, s.config.commandsTopic, await topicCount(), 10_000)).map((m) => JSON.parse(m.value)).filter((m) => m.order_id === o);
    expect(sent.length).toBeGreaterThanOrEqual(1);
    expect(new Set(sent.map((m) => m.command_id))).toEqual(new Set([refunds[0]!.command_id]));
    for (const m of sent) expect(commandProblem(m)).toBeNull();
    expect((await cases.get(c.case_id))!.assignee).toBe('automation');
    // Later passes send nothing more.
    const settled = await topicCount();
    await automation(refundsOn).run();
    expect(await topicCount()).toBe(settled);

    // The gateway refunds: the refund event is the outcome, and the case is closed as handled.
    await events(o, [{ attempt: 2, status: 'succeeded', type: 'refund', atMs: Date.now() + 1_000 }]);
    await automation(refundsOn).run();
    expect((await refundsOfOrder(o))[0]).toMatchObject({ status: 'done' });
    expect(await cases.get(c.case_id)).toMatchObject({ status: 'resolved', resolution: 'handled_automatically' });
    // A refund is never sent again from the console.
    const manual = createManualCommands({ clickhouse: s.clickhouse, database: db, producer, config: configWith({ AUTOMATION: 'on' }), cases });
    expect(await manual.retry(c.case_id, refunds[0]!.command_id, 'bob', '', Date.now())).toMatchObject({
      kind: 'conflict',
      message: expect.stringMatching(/never sent twice/),
    });
  });

  test.each([
    ['refunds off', { AUTOMATION: 'on' }, /AUTOMATION_REFUNDS=off/],
    ['over the ceiling', { ...refundsOn, AUTO_REFUND_MAX_MINOR: '10000' }, /over the automatic ceiling of 10000/],
  ])('a duplicate charge with %s is a support case and no command', async (_name, env, reason) => {
    const o = order();
    await events(o, [
      { attempt: 1, status: 'succeeded' },
      { attempt: 2, status: 'succeeded' },
    ]);
    const c = await openCase('duplicate_charge', 'order', o);
    await automation(env).run();
    expect(await refundsOfOrder(o)).toEqual([]);
    const after = (await cases.get(c.case_id))!;
    expect(after).toMatchObject({ status: 'open', assignee: '' });
    expect((await cases.history(c.case_id)).at(-1)).toMatchObject({ changed_by: 'automation', note: expect.stringMatching(reason) });
  });

  test("a card-testing IP yields one block command and stays in support's inbox; a rejected block escalates at once", async () => {
    const ip = `203.0.113.${Math.floor(Math.random() * 250) + 1}-${id}`;
    const c = await openCase('ip_amount_probing', 'ip', ip);
    await automation({ AUTOMATION: 'on' }).run();
    const [block] = await commandsOf(c.case_id);
    expect(block).toMatchObject({ type: 'block', entity_type: 'ip', entity_id: ip, ttl_s: 3600, status: 'issued' });
    // also_notify_support: support sees the case while it is handled.
    expect((await cases.get(c.case_id))!.assignee).toBe('');

    const results = await startCommandResults({
      kafka: s.kafka,
      producer,
      clickhouse: s.clickhouse,
      database: db,
      topic: s.config.commandResultsTopic,
      groupId: `t${id}-results`,
      dlqTopic: s.config.dlqTopic,
      logger: silentLogger,
    });
    try {
      await producer.send({
        topic: s.config.commandResultsTopic,
        messages: [
          { key: 'x', value: 'not json' },
          { key: ip, value: JSON.stringify({ command_id: block!.command_id, status: 'rejected', detail: 'shared corporate proxy' }) },
        ],
      });
      await expect.poll(async () => (await commandsOf(c.case_id))[0]?.status, { timeout: 30_000, interval: 300 }).toBe('rejected');
    } finally {
      await results.stop();
    }
    await automation({ AUTOMATION: 'on' }).run();
    const escalated = (await cases.get(c.case_id))!;
    expect(escalated.evidence.automation).toMatchObject({ command_id: block!.command_id, status: 'rejected', detail: 'shared corporate proxy' });
    expect((await cases.history(c.case_id)).at(-1)!.note).toMatch(/Escalated to support: block .* is rejected \(shared corporate proxy\)/);
    expect((await commandsOf(c.case_id))[0]).toMatchObject({ escalated: 1 });
    // cases show lists the command and its outcome beside the history.
    const shown = cli(['cases', 'show', c.case_id]);
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`Commands to the gateway:\\n  ${block!.command_id}  block\\s+sent .* rejected: shared corporate proxy`));
    // The message that was not a result is on the dead-letter topic with its reason, not dropped.
    const dead = await readTopic(s.kafka, s.config.dlqTopic, 1, 20_000);
    expect(dead.map((m) => m.value)).toContain('not json');

    // Support retries the rejected block from the console (a new command), then cancels the retry; both in the history.
    const manual = createManualCommands({ clickhouse: s.clickhouse, database: db, producer, config: configWith({ AUTOMATION: 'on' }), cases });
    const sentBefore = await topicCount();
    const retried = await manual.retry(c.case_id, block!.command_id, 'bob', 'proxy list updated', Date.now());
    expect(retried).toMatchObject({ kind: 'ok', command: { type: 'block', entity_id: ip, status: 'issued' } });
    if (retried.kind !== 'ok') throw new Error('retry refused');
    expect(retried.command.command_id).not.toBe(block!.command_id);
    expect(await topicCount()).toBe(sentBefore + 1);
    expect(await manual.retry(c.case_id, retried.command.command_id, 'bob', '', Date.now())).toMatchObject({ kind: 'conflict' });
    expect(await manual.cancel(c.case_id, retried.command.command_id, 'bob', 'done by hand', Date.now() + 1)).toMatchObject({
      kind: 'ok',
      command: { status: 'cancelled' },
    });
    expect(await manual.cancel(c.case_id, retried.command.command_id, 'bob', '', Date.now() + 2)).toMatchObject({ kind: 'conflict' });
    expect(await manual.cancel('C-other', block!.command_id, 'bob', '', Date.now())).toEqual({ kind: 'not_found' });
    const notes = (await cases.history(c.case_id)).slice(-2).map((h) => `${h.changed_by}: ${h.note}`);
    expect(notes[0]).toMatch(new RegExp(`^bob: Retried block ${block!.command_id} .* as ${retried.command.command_id}: proxy list updated`));
    expect(notes[1]).toMatch(/^bob: Cancelled block .*: done by hand/);
  });

  test('dry-run records every command as "would have sent" and publishes nothing; off records nothing', async () => {
    const dry = order();
    await events(dry, [{ attempt: 1, status: 'processing' }]);
    const c = await openCase('stuck_processing', 'order', dry);
    const before = await topicCount();
    await automation({ AUTOMATION: 'dry-run' }).run();
    expect(await commandsOf(c.case_id)).toMatchObject([{ type: 'requery_status', mode: 'dry-run', attempt: 1, detail: 'dry-run: would have sent' }]);
    expect(await topicCount()).toBe(before);
    expect((await cases.history(c.case_id)).at(-1)!.note).toMatch(/Dry run .*would have sent requery_status K[0-9a-f]{24} for order .* attempt 1/);

    const off = order();
    await events(off, [{ attempt: 1, status: 'processing' }]);
    const d = await openCase('stuck_processing', 'order', off);
    await automation({ AUTOMATION: 'off' }).run();
    expect(await commandsOf(d.case_id)).toEqual([]);
    expect((await cases.history(d.case_id)).at(-1)!.note).toMatch(/Automation is off/);
    expect(await topicCount()).toBe(before);
  });

  test('the kill switch: paused from the command line, the next pass sends nothing and hands the case to support; resumed, commands flow again', async () => {
    const paused = cli(['automation', 'pause', '--note', 'gateway incident', '--by', 'alice']);
    expect(paused.status, paused.stderr).toBe(0);
    const o = order();
    await events(o, [{ attempt: 1, status: 'processing' }]);
    const c = await openCase('stuck_processing', 'order', o);
    const before = await topicCount();
    expect(await automation({ AUTOMATION: 'on' }).run()).toMatchObject({ paused: true, taken: 1 });
    expect(await commandsOf(c.case_id)).toEqual([]);
    expect(await topicCount()).toBe(before);
    expect((await cases.history(c.case_id)).at(-1)!.note).toMatch(/Automation is paused by alice \(gateway incident\)/);
    const status = cli(['automation', 'status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ paused: true, paused_by: 'alice', note: 'gateway incident' });

    expect(cli(['automation', 'resume', '--note', 'incident over']).status).toBe(0);
    const again = order();
    await events(again, [{ attempt: 1, status: 'processing' }]);
    const d = await openCase('stuck_processing', 'order', again);
    expect(await automation({ AUTOMATION: 'on' }).run()).toMatchObject({ paused: false });
    expect(await commandsOf(d.case_id)).toMatchObject([{ type: 'requery_status', mode: 'on', status: 'issued' }]);
    expect(await topicCount()).toBe(before + 1);
  });

  /** What runRequery needs, in dry-run with REQUERY_AFTER 5 minutes and this limit a minute. */
  const dryRunRequery = (limit: number) => ({
    clickhouse: s.clickhouse,
    database: db,
    producer,
    config: configWith({ AUTOMATION: 'dry-run', REQUERY_AFTER: '5m', REQUERY_MAX_PER_MINUTE: String(limit) }),
    logger: silentLogger,
  });

  /** Where the requery job's next scan by time starts (its cursor), in epoch seconds. */
  const requeryScanFrom = async () =>
    Number(
      (
        await queryRows<{ covered_from: number }>(
          s.clickhouse,
          sql`SELECT toUInt32(covered_from) AS covered_from FROM ${ident(db, 'analytics_cursors')} FINAL WHERE job = 'requery'`,
        )
      )[0]!.covered_from,
    );

  const requeryJob = 'the requery job re-checks attempts still processing after REQUERY_AFTER, oldest first, at most the limit, not again within REQUERY_AFTER';
  test(requeryJob, async () => {
    const [older, newer, fresh, done] = [order(), order(), order(), order()];
    const now = Date.now();
    await events(older, [{ attempt: 1, status: 'processing', atMs: now - 20 * 60_000 }]);
    await events(newer, [{ attempt: 2, status: 'processing', atMs: now - 10 * 60_000 }]);
    await events(fresh, [{ attempt: 1, status: 'processing', atMs: now - 60_000 }]);
    await events(done, [
      { attempt: 1, status: 'processing', atMs: now - 30 * 60_000 },
      { attempt: 1, status: 'succeeded', atMs: now - 25 * 60_000 },
    ]);
    const ours = new Set([older, newer, fresh, done]);
    const requeried = async () =>
      (await queryRows<StoredCommand>(s.clickhouse, sql`SELECT * FROM ${ident(db, 'commands')} WHERE type = 'requery_status' AND case_id = ''`))
        .filter((c) => ours.has(c.order_id))
        .map((c) => `${c.order_id === older ? 'older' : c.order_id === newer ? 'newer' : c.order_id}#${c.attempt}`)
        .sort();
    const deps = (env: Record<string, string>) => ({ clickhouse: s.clickhouse, database: db, producer, config: configWith(env), logger: silentLogger });
    const before = await topicCount();
    expect(await runRequery(deps({ AUTOMATION: 'on', REQUERY_AFTER: '5m', REQUERY_MAX_PER_MINUTE: '1' }), now)).toMatchObject({ issued: 1, limit: 1 });
    expect(await requeried()).toEqual(['older#1']);
    await runRequery(deps({ AUTOMATION: 'on', REQUERY_AFTER: '5m', REQUERY_MAX_PER_MINUTE: '100' }), now + 60_000);
    expect(await requeried()).toEqual(['newer#2', 'older#1']);
    // Within REQUERY_AFTER of the last ask: nothing more.
    expect(await runRequery(deps({ AUTOMATION: 'on', REQUERY_AFTER: '5m', REQUERY_MAX_PER_MINUTE: '100' }), now + 120_000)).toMatchObject({ issued: 0 });
    expect(await topicCount()).toBe(before + 2);
  });

  test('the requery job reads only what is new: it moves on from its last scan, finds a late report of an old attempt, and skips none the limit left', async () => {
    // Hours ahead of the other tests, so their attempts are out of this day.
    const now = Math.floor(Date.now() / 3_600_000 + 120) * 3_600_000;
    const stuck = [order(), order(), order()];
    for (const [i, o] of stuck.entries()) await events(o, [{ attempt: 1, status: 'processing', atMs: now - (30 - i) * 60_000 }]);
    const deps = dryRunRequery(1);
    const asked = async (orders: readonly string[]) =>
      (await queryRows<StoredCommand>(s.clickhouse, sql`SELECT * FROM ${ident(db, 'commands')} WHERE order_id IN ${orders} AND type = 'requery_status'`))
        .map((c) => stuck.indexOf(c.order_id))
        .sort();
    // One a minute, oldest first: the limit leaves the others for the next runs, which start where the scan stopped.
    for (const [i, at] of [now, now + 60_000, now + 120_000].entries()) {
      expect(await runRequery(deps, at)).toMatchObject({ issued: 1 });
      expect(await asked(stuck)).toEqual([0, 1, 2].slice(0, i + 1));
    }
    // Nothing left behind the scan: it has reached REQUERY_AFTER before the last run.
    expect(await requeryScanFrom()).toBe((now + 120_000 - 5 * 60_000) / 1000);

    // A processing report three hours old arrives only now: the scan by time is past it, the change log is not.
    const late = order();
    await events(late, [{ attempt: 2, status: 'processing', atMs: now - 3 * 3_600_000 }]);
    // And an old attempt that got its final status late is not asked about.
    const settled = order();
    await events(settled, [
      { attempt: 1, status: 'processing', atMs: now - 2 * 3_600_000 },
      { attempt: 1, status: 'succeeded', atMs: now - 2 * 3_600_000 + 60_000 },
    ]);
    expect(await runRequery(deps, now + 180_000)).toMatchObject({ issued: 1 });
    const recorded = await queryRows<StoredCommand>(
      s.clickhouse,
      sql`SELECT * FROM ${ident(db, 'commands')} WHERE order_id IN ${[late, settled]} AND type = 'requery_status'`,
    );
    expect(recorded.map((c) => `${c.order_id === late ? 'late' : 'settled'}#${c.attempt}`)).toEqual(['late#2']);
    // Asked within REQUERY_AFTER, every one of them: nothing more.
    expect(await runRequery(deps, now + 240_000)).toMatchObject({ issued: 0 });
  });

  test('more attempts stuck than the limit: the scan moves on at once, the ones left wait by key and are asked once each, oldest first, except one that settled', async () => {
    // A week ahead, so that the other tests' attempts are out of this day.
    const now = Math.floor(Date.now() / 3_600_000 + 168) * 3_600_000;
    const stuck = Array.from({ length: 6 }, () => order());
    for (const [i, o] of stuck.entries()) await events(o, [{ attempt: 1, status: 'processing', atMs: now - (40 - i) * 60_000 }]);
    const deps = dryRunRequery(2);
    const asked = async () =>
      (await queryRows<StoredCommand>(s.clickhouse, sql`SELECT * FROM ${ident(db, 'commands')} WHERE order_id IN ${stuck} AND type = 'requery_status'`))
        .map((c) => stuck.indexOf(c.order_id))
        .sort();
    const waiting = async () =>
      (await queryRows<{ order_id: string }>(s.clickhouse, automationQueries(db).waitingOldest(Math.floor(now / 1000) - 86_400, 100)))
        .map((a) => stuck.indexOf(a.order_id))
        .sort();

    expect(await runRequery(deps, now)).toMatchObject({ issued: 2 });
    expect(await asked()).toEqual([0, 1]);
    // The next scan starts at REQUERY_AFTER before this run, not at the oldest attempt left (which
    // made every run read again all the events since it); the four left wait by key.
    expect(await requeryScanFrom()).toBe((now - 5 * 60_000) / 1000);
    expect(await waiting()).toEqual([2, 3, 4, 5]);

    // One of them gets its final status meanwhile: it is not asked about, and leaves the list.
    await events(stuck[3]!, [{ attempt: 1, status: 'succeeded', atMs: now + 30_000 }]);
    expect(await runRequery(deps, now + 60_000)).toMatchObject({ issued: 2 });
    expect(await asked()).toEqual([0, 1, 2, 4]);
    expect(await requeryScanFrom()).toBe((now + 60_000 - 5 * 60_000) / 1000);
    expect(await waiting()).toEqual([5]);

    expect(await runRequery(deps, now + 120_000)).toMatchObject({ issued: 1 });
    expect(await asked()).toEqual([0, 1, 2, 4, 5]);
    expect(await waiting()).toEqual([]);
    // Every one still processing was asked within REQUERY_AFTER: nothing more.
    expect(await runRequery(deps, now + 180_000)).toMatchObject({ issued: 0 });
  });

  test('the hourly whole-day read does not take the scan back when the day holds more stuck attempts than one scan returns', async () => {
    // Nine days ahead, so that the other tests' attempts are out of this day.
    const now = Math.floor(Date.now() / 3_600_000 + 216) * 3_600_000;
    const n = REQUERY_SCAN_ROWS + 50;
    // n attempts stuck since 50 to 10 minutes before `now`, spread evenly, in one insert.
    const rows = Array.from({ length: n }, (_, i) =>
      eventRows(`bulk-${id}-${i}`, [{ attempt: 1, status: 'processing', atMs: now - 50 * 60_000 + Math.floor((i * 40 * 60_000) / n) }]),
    ).flat();
    await insertRows(s.clickhouse, ident(db, 'payment_events').text, rows);
    const deps = dryRunRequery(60);
    // A first run reads the day: the scan returns its cap, the next one goes on from there.
    expect(await runRequery(deps, now)).toMatchObject({ issued: 60 });
    expect(await requeryScanFrom()).toBeLessThan((now - 10 * 60_000) / 1000);
    // The next run finds the rest and reaches REQUERY_AFTER before it.
    await runRequery(deps, now + 60_000);
    const reached = (now + 60_000 - 5 * 60_000) / 1000;
    expect(await requeryScanFrom()).toBe(reached);
    // An hour later the whole day is read again, and hits the cap again: the scan stays where it was.
    expect(await runRequery(deps, now + 61 * 60_000)).toMatchObject({ issued: 60 });
    expect(await requeryScanFrom()).toBe(reached);
  });

  test('a run that reads only the front of a long waiting list asks about none newer than that front: the older waiting ones go first', async () => {
    // Eleven days ahead, so that the other tests' attempts are out of this day.
    const now = Math.floor(Date.now() / 3_600_000 + 264) * 3_600_000;
    const waiting = Array.from({ length: 110 }, (_, i) => `front-${id}-${i}`);
    // Stuck since 40 minutes before `now`, one a second, oldest first.
    const rows = waiting.flatMap((o, i) => eventRows(o, [{ attempt: 1, status: 'processing', atMs: now - 40 * 60_000 + i * 1000 }]));
    await insertRows(s.clickhouse, ident(db, 'payment_events').text, rows);
    const deps = dryRunRequery(1);
    const asked = async (orders: readonly string[]) =>
      (await queryRows<StoredCommand>(s.clickhouse, sql`SELECT * FROM ${ident(db, 'commands')} WHERE order_id IN ${orders} AND type = 'requery_status'`)).map(
        (c) => c.order_id,
      );
    // The oldest is asked about; the other 109 wait.
    expect(await runRequery(deps, now)).toMatchObject({ issued: 1 });
    // The next run reads the 103 oldest waiting ones (twice the limit, the one asked, and 100): all of them settle meanwhile.
    const settled = waiting.slice(1, 104).flatMap((o) => eventRows(o, [{ attempt: 1, status: 'succeeded', atMs: now + 10_000 }]));
    await insertRows(s.clickhouse, ident(db, 'payment_events').text, settled);
    // And a newer attempt gets stuck, which that run's scan by time finds.
    const newer = order();
    await events(newer, [{ attempt: 1, status: 'processing', atMs: now - 4.5 * 60_000 }]);
    // That run asks about nothing: the list may hold attempts older than the newer one past the
    // 103 it read, so it may not go first (fewer asks than the limit, never out of order).
    expect(await runRequery(deps, now + 60_000)).toMatchObject({ issued: 0 });
    // The next run reads the rest of the list, and asks about the oldest of the six still waiting.
    expect(await runRequery(deps, now + 120_000)).toMatchObject({ issued: 1 });
    expect((await asked([...waiting, newer])).sort()).toEqual([waiting[0], waiting[104]].sort());
  });

  test('the requery job is a scheduled job recorded in job_runs, and issues half its limit in the peak hours the retry-policy job found', async () => {
    // Hours ahead, so that nothing the other tests stored is still processing in its window.
    const now = Math.floor(Date.now() / 3_600_000 + 72) * 3_600_000 + 58 * 60_000;
    const hour = new Date(now).getUTCHours();
    await insertRows(s.clickhouse, ident(db, 'retry_policy').text, [
      { channel: 'alipay', failure_code: 'timeout', version: now, run_id: 'test', computed_at: toDateTimeText(now), action: 'retry', peak_hours: [hour] },
    ]);
    const stuck = Array.from({ length: 5 }, () => order());
    for (const [i, o] of stuck.entries()) await events(o, [{ attempt: 1, status: 'processing', atMs: now - (20 + i) * 60_000 }]);
    const deps = {
      clickhouse: s.clickhouse,
      database: db,
      logger: silentLogger,
      commands: { producer, config: configWith({ AUTOMATION: 'on', REQUERY_AFTER: '5m', REQUERY_MAX_PER_MINUTE: '4' }) },
    };
    const ours = async () =>
      (await queryRows<StoredCommand>(s.clickhouse, sql`SELECT * FROM ${ident(db, 'commands')} WHERE order_id IN ${stuck} AND type = 'requery_status'`)).length;

    // A peak hour: half of REQUERY_MAX_PER_MINUTE, the oldest first; the run is in job_runs with the commands it issued.
    const peakRun = await requeryScheduledJob.run(deps, new Date(now));
    expect(peakRun).toMatchObject({ job: 'requery', status: 'ok', rows: 2 });
    expect(await ours()).toBe(2);
    const [recorded] = await recentRuns(deps, 'requery', 1);
    expect(recorded).toMatchObject({ status: 'ok', rows: '2', window_to: toDateTimeText(now - 5 * 60_000) });

    // Four minutes later the hour is not a peak one: up to the full limit, but the two asked within REQUERY_AFTER are not asked again.
    expect(await requeryScheduledJob.run(deps, new Date(now + 4 * 60_000))).toMatchObject({ status: 'ok', rows: 3 });
    expect(await ours()).toBe(5);
    // Once REQUERY_AFTER has passed for every one of them: all five are due again, four (the limit) are asked.
    expect(await requeryScheduledJob.run(deps, new Date(now + 10 * 60_000))).toMatchObject({ status: 'ok', rows: 4 });
    expect(await ours()).toBe(9);
    expect((await recentRuns(deps, 'requery', 10)).map((r) => Number(r.rows))).toEqual([4, 3, 2]);

    // Without a producer (a process that cannot send commands) the job does nothing.
    expect(await requeryScheduledJob.run({ ...deps, commands: undefined }, new Date(now))).toBeNull();
  });

  test("automation's change to a case is stored after detection's latest version, however early its pass began: a tick cannot reopen it", async () => {
    const o = order();
    const c = await openCase('duplicate_charge', 'order', o);
    // A detection tick stamps its versions with its start: here one that began after the automation pass below.
    const tickMs = Date.now() + 2_000;
    const rule = ruleSet.rules.find((r) => r.id === 'duplicate_charge')!;
    const hit: Hit = {
      ruleId: rule.id,
      ruleVersion: rule.version,
      title: rule.title,
      severity: rule.severity,
      action: rule.action,
      entityType: 'order',
      entityId: o,
      cooldownMs: rule.cooldownMs,
      recommendedAction: 'act',
      evidence: { seen: 2 },
    };
    expect((await cases.applyHits([hit], tickMs)).updated).toHaveLength(1);
    // The pass that refunded the order began before that tick and closes the case now.
    await cases.record({ ...c, status: 'resolved', resolution: 'handled_automatically' }, 'automation', 'Handled automatically.', tickMs - 5_000);
    expect(await cases.get(c.case_id)).toMatchObject({ status: 'resolved', resolution: 'handled_automatically' });
    expect((await cases.history(c.case_id)).at(-1)).toMatchObject({ changed_by: 'automation', status: 'resolved' });
  });

  test("a refund sent by a pass killed before it recorded the case is sent again under its id, even when it used up the day's budget itself", async () => {
    const o = order();
    await events(o, [
      { attempt: 1, status: 'succeeded', currency: 'EUR', atMs: T0 - 60_000 },
      { attempt: 2, status: 'succeeded', currency: 'EUR', atMs: T0 - 30_000 },
    ]);
    const c = await openCase('duplicate_charge', 'order', o);
    // The day's EUR budget is exactly this one refund.
    const tight = { ...refundsOn, AUTO_REFUND_MAX_MINOR: 'EUR:50000,CNY:50000', AUTO_REFUND_DAILY_MINOR: 'EUR:12900,CNY:1000000' };
    const crashing = automation(tight, {
      send: async () => {
        throw new Error('killed');
      },
    });
    await expect(crashing.run()).rejects.toThrow('killed');
    const [stored] = await refundsOfOrder(o);
    expect(stored).toMatchObject({ attempt: 2, mode: 'on', status: 'issued' });
    const before = await topicCount();
    await automation(tight).run();
    // Not "over the budget" to support while the refund may be on its way: the same command again.
    expect(await refundsOfOrder(o)).toHaveLength(1);
    expect(await topicCount()).toBe(before + 1);
    expect(await cases.get(c.case_id)).toMatchObject({ status: 'open', assignee: 'automation' });
    expect((await cases.history(c.case_id)).at(-1)!.note).toMatch(new RegExp(`^Sent refund ${stored!.command_id} for order ${o} attempt 2 \\(12900 EUR\\)`));
  });
});
